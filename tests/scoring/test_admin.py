import pytest
from django.contrib import admin

from scoring.models import ImportJob
from tests.factories import UserFactory, synthetic_portfolio


@pytest.mark.django_db
def test_every_registered_model_has_a_working_changelist(client):
    synthetic_portfolio(n=50, seed=2)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url


@pytest.mark.django_db
def test_import_jobs_are_read_only_in_the_admin(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    assert client.get("/admin/scoring/importjob/add/").status_code == 403
    assert ImportJob.objects.count() == 0

"""The admin console: every model usable, records read-only, grants through the one
service, and a staff user scoped to the portfolios granted to them everywhere."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import reverse
from guardian.shortcuts import get_perms

from scoring.admin import PortfolioListFilter
from scoring.models import (
    Applicant,
    ApplicantPII,
    AuditEvent,
    BatchRun,
    DatasetSchema,
    ImportJob,
    ModelVersion,
    Outcome,
    Portfolio,
    RepaymentMonth,
    Score,
)
from scoring.services.access import portfolio_access_grant
from scoring.services.pii import pii_encrypt
from tests.factories import DEMO, UserFactory, synthetic_portfolio
from tests.scoring.api.conftest import scored_applicants

PERSON = {"full_name": "Ann Example", "national_id": "AB123456789", "email": "ann@example.com"}


def staff(username: str, *model_perms: str):
    """A staff user (not a superuser) holding the given model permissions ("view_score")."""
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="scoring", codename__in=model_perms))
    return user


@pytest.fixture
def two_books(db):
    """Portfolios A and B with scored applicants (PII for the first of A), and a staff
    analyst granted A only."""
    a = Portfolio.objects.create(name="Book A", schema=synthetic_schema())
    b = Portfolio.objects.create(name="Book B", schema=a.schema)
    versions = {p: ModelVersion.objects.create(portfolio=p, version=1, kind="mlp", status="champion", schema=a.schema)
                for p in (a, b)}  # fmt: skip
    mine = scored_applicants(a, n=3, version=versions[a], prefix="AAA")
    theirs = scored_applicants(b, n=3, version=versions[b], prefix="BBB")
    token, fingerprint = pii_encrypt(PERSON)
    ApplicantPII.objects.create(applicant=mine[0], portfolio=a, ciphertext=token, fingerprint=fingerprint)
    analyst = staff("staff_a", "view_applicant", "view_score", "view_portfolio", "view_outcome", "view_batchrun")
    portfolio_access_grant(portfolio=a, grantee=analyst, role="analyst")
    return {"a": a, "b": b, "mine": mine, "theirs": theirs, "analyst": analyst}


def synthetic_schema() -> DatasetSchema:
    from scoring.services.schemas import schema_register_file

    return schema_register_file(path=DEMO / "synthetic.schema.json")


def changelist_ids(client, model, query: str = "") -> set[int]:
    response = client.get(f"/admin/scoring/{model._meta.model_name}/{query}")
    assert response.status_code == 200, response.status_code
    return {obj.pk for obj in response.context["cl"].result_list}


@pytest.mark.django_db
def test_every_registered_model_has_a_working_changelist(client):
    synthetic_portfolio(n=50, seed=2)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    registered = {f"{m._meta.app_label}.{m._meta.model_name}" for m in admin.site._registry}
    # celery beat's schedules register their own admin: the nightly rescore is edited there.
    assert {"django_celery_beat.periodictask", "django_celery_beat.crontabschedule"} <= registered
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url
    nightly = client.get("/admin/django_celery_beat/periodictask/")
    assert b"nightly" in nightly.content.lower()


def test_records_of_what_happened_cannot_be_added_changed_or_deleted(two_books, client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    score = Score.objects.filter(portfolio=two_books["a"]).first()
    run = BatchRun.objects.create(portfolio=two_books["a"], model_version=score.model_version)
    job = ImportJob.objects.create(portfolio=two_books["a"], kind="applicants", schema=two_books["a"].schema,
                                   file_name="x.csv")  # fmt: skip
    outcome = Outcome.objects.create(portfolio=two_books["a"], applicant=two_books["mine"][0], defaulted=True,
                                     observed_on="2026-10-01")  # fmt: skip
    month = RepaymentMonth.objects.create(portfolio=two_books["a"], applicant=two_books["mine"][0],
                                          month="2026-09-01", balance=10.0, amount_paid=1.0, days_past_due=0)  # fmt: skip
    decision = score.decision
    for obj in (score, run, job, outcome, month, score.model_version, two_books["mine"][0]):
        name = obj._meta.model_name
        assert client.get(f"/admin/scoring/{name}/add/").status_code == 403, name
        change = f"/admin/scoring/{name}/{obj.pk}/change/"
        assert client.get(change).status_code == 200, name  # viewable
        assert client.post(change, {"decision": "approve", "status": "done"}).status_code == 403, name
        assert client.post(f"/admin/scoring/{name}/{obj.pk}/delete/", {"post": "yes"}).status_code == 403, name
    score.refresh_from_db()
    assert score.decision == decision and run.pk and Outcome.objects.filter(pk=outcome.pk).exists()


def test_a_staff_user_sees_only_their_portfolios_rows_in_changelists(two_books, client):
    client.force_login(two_books["analyst"])
    assert changelist_ids(client, Applicant) == {a.pk for a in two_books["mine"]}
    assert changelist_ids(client, Score) == set(
        Score.objects.filter(portfolio=two_books["a"]).values_list("id", flat=True)
    )
    assert changelist_ids(client, Portfolio) == {two_books["a"].pk}
    # Searching by another portfolio's id finds nothing; filtering by its portfolio neither.
    assert changelist_ids(client, Applicant, "?q=BBB") == set()
    assert changelist_ids(client, Applicant, f"?portfolio={two_books['b'].pk}") == set()
    assert changelist_ids(client, Applicant, "?q=AAA0001") == {two_books["mine"][1].pk}


def test_another_portfolios_row_answers_like_a_missing_one(two_books, client):
    client.force_login(two_books["analyst"])
    theirs = two_books["theirs"][0]
    hidden = client.get(f"/admin/scoring/applicant/{theirs.pk}/change/")
    missing = client.get("/admin/scoring/applicant/99999999/change/")
    assert hidden.status_code == missing.status_code == 302
    assert hidden["Location"] == missing["Location"] == reverse("admin:index")
    their_score = theirs.scores.get()
    assert client.get(f"/admin/scoring/score/{their_score.pk}/change/").status_code == 302
    assert client.get(f"/admin/scoring/portfolio/{two_books['b'].pk}/change/").status_code == 302
    mine = two_books["mine"][1]
    assert client.get(f"/admin/scoring/applicant/{mine.pk}/change/").status_code == 200


def test_the_portfolio_filter_offers_only_granted_portfolios(two_books, client):
    client.force_login(two_books["analyst"])
    for model in ("applicant", "score"):
        response = client.get(f"/admin/scoring/{model}/")
        (spec,) = [f for f in response.context["cl"].filter_specs if isinstance(f, PortfolioListFilter)]
        assert [choice[0] for choice in spec.lookup_choices] == [two_books["a"].pk], model
        assert b"Book B" not in response.content


def test_autocomplete_returns_only_granted_portfolios_applicants(two_books, client):
    client.force_login(two_books["analyst"])

    def autocomplete(term: str) -> set[str]:
        response = client.get(
            "/admin/autocomplete/",
            {"app_label": "scoring", "model_name": "score", "field_name": "applicant", "term": term},
        )
        assert response.status_code == 200, response.content
        return {row["text"] for row in json.loads(response.content)["results"]}

    assert autocomplete("AAA") == {str(a) for a in two_books["mine"]}
    assert autocomplete("BBB") == set()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    assert autocomplete("BBB") == {str(a) for a in two_books["theirs"]}


def test_personal_data_is_masked_without_the_pii_grant_and_audited_with_it(two_books, client):
    applicant = two_books["mine"][0]
    url = f"/admin/scoring/applicant/{applicant.pk}/change/"
    client.force_login(two_books["analyst"])
    page = client.get(url).content.decode()
    assert "Ann Example" not in page and "AB123456789" not in page and "A*** E***" in page
    assert not AuditEvent.objects.filter(action="pii.view").exists()
    privileged = staff("staff_pii", "view_applicant", "view_portfolio_pii")
    portfolio_access_grant(portfolio=two_books["a"], grantee=privileged, role="analyst")
    portfolio_access_grant(portfolio=two_books["a"], grantee=privileged, perms=("view_portfolio_pii",))
    client.force_login(privileged)
    page = client.get(url).content.decode()
    assert "Ann Example" in page and "AB123456789" in page
    event = AuditEvent.objects.get(action="pii.view")
    assert event.actor_id == privileged.pk and event.object_ids == [applicant.pk]


def test_grants_are_managed_through_the_access_service_by_administrators_only(two_books, client):
    a, analyst = two_books["a"], two_books["analyst"]
    newcomer = UserFactory(username="newcomer")
    url = f"/admin/scoring/portfolio/{a.pk}/permissions/user-manage/{newcomer.pk}/"
    client.force_login(analyst)  # sees the portfolio, but may not change portfolios
    assert client.get(url).status_code in (302, 403)
    administrator = staff("administrator", "view_portfolio", "change_portfolio")
    client.force_login(administrator)
    assert changelist_ids(client, Portfolio) == {a.pk, two_books["b"].pk}  # to manage grants on every book
    form = client.get(url).context["form"]
    choices = [value for value, _ in form.fields["permissions"].choices]
    assert "view_portfolio_data" in choices and "change_portfolio" not in choices  # grants, not model rights
    response = client.post(url, {"permissions": ["view_portfolio_data", "score_portfolio"]})
    assert response.status_code == 302
    assert set(get_perms(newcomer, a)) == {"view_portfolio_data", "score_portfolio"}
    grant = AuditEvent.objects.filter(action="permission.grant", object_ids=[newcomer.pk]).get()
    assert grant.actor_id == administrator.pk and grant.portfolio_id == a.pk
    client.post(url, {"permissions": ["view_portfolio_data"]})
    assert set(get_perms(newcomer, a)) == {"view_portfolio_data"}
    assert AuditEvent.objects.filter(action="permission.revoke", object_ids=[newcomer.pk]).exists()


def test_a_new_schema_version_is_validated_and_registered(client, db):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    document = json.loads((DEMO / "synthetic.schema.json").read_text())
    document["version"] = 7
    response = client.post("/admin/scoring/datasetschema/add/", {"definition": json.dumps(document)})
    assert response.status_code == 302, response.content
    stored = DatasetSchema.objects.get(name=document["name"], version=7)
    assert stored.sha256 == DatasetSchema.digest(stored.definition)
    broken = {**document, "version": 8, "columns": [{"name": "x", "role": "wizard", "type": "string"}]}
    response = client.post("/admin/scoring/datasetschema/add/", {"definition": json.dumps(broken)})
    assert response.status_code == 200 and response.context["adminform"].form.errors
    again = client.post("/admin/scoring/datasetschema/add/", {"definition": json.dumps(document)})
    assert again.status_code == 200 and "exists already" in again.content.decode()
    assert not DatasetSchema.objects.filter(version=8).exists()

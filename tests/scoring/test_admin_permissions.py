"""Every admin URL (index, each app, each registered model's change list, add form and
an object's change, history and delete pages) asked by every member of a cast, checked
against what each may do, written out by hand; and an administrator's attempts to
escalate are refused and audited."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.test import Client

from scoring.models import AuditEvent
from scoring.services.access import user_role_add
from tests.factories import UserFactory, synthetic_portfolio

pytestmark = pytest.mark.django_db

# What each staff member of the cast may open (change list), by hand, not read from scoring/roles.py.
ADMINISTRATOR_MODELS = {
    "auth.user", "auth.group", "scoring.portfolio", "scoring.datasetschema", "scoring.reasoncode",
    "scoring.apitoken", "scoring.auditevent", "scoring.auditcheckpoint", "scoring.loginthrottle",
    "scoring.policyversion",  # read-only: administrators edit cutoffs, which become policy proposals
    "scoring.webhookendpoint", "scoring.webhookdelivery",  # the log: rows of granted portfolios only
    "django_celery_beat.periodictask", "django_celery_beat.crontabschedule",
}  # fmt: skip
AUDITOR_MODELS = {"scoring.auditevent", "scoring.auditcheckpoint"}


@pytest.fixture
def cast():
    synthetic_portfolio(n=5, seed=9)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    administrator = UserFactory(username="adm", is_staff=True)
    user_role_add(user=administrator, role="administrator")
    auditor = UserFactory(username="aud", is_staff=True)
    user_role_add(user=auditor, role="auditor")
    staff_analyst = UserFactory(username="staff_ana", is_staff=True)
    user_role_add(user=staff_analyst, role="analyst")
    analyst = UserFactory(username="ana")  # not staff
    user_role_add(user=analyst, role="senior analyst")
    return {"root": root, "administrator": administrator, "auditor": auditor, "staff_analyst": staff_analyst,
            "analyst": analyst, "outsider": UserFactory(username="out"), "anonymous": None}  # fmt: skip


def admin_urls() -> list[tuple[str, str]]:
    """(model label or "", url) for every page the admin serves."""
    urls = [("", "/admin/")]
    apps = set()
    for model, _ in admin.site._registry.items():
        label = f"{model._meta.app_label}.{model._meta.model_name}"
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        apps.add(model._meta.app_label)
        urls += [(label, base), (label, f"{base}add/")]
        first = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        if first is not None:
            urls += [(label, f"{base}{first}/change/"), (label, f"{base}{first}/history/"),
                     (label, f"{base}{first}/delete/")]  # fmt: skip
    urls += [("", f"/admin/{app}/") for app in sorted(apps)]
    return urls


@pytest.mark.slow  # about 700 pages: 6 min on the loaded shared machine
def test_every_admin_url_answers_each_member_of_the_cast_as_written(cast):
    urls = admin_urls()
    assert len(urls) > 60
    for member, user in cast.items():
        client = Client()
        if user is not None:
            client.force_login(user)
        for label, url in urls:
            status = client.get(url).status_code
            assert status < 500, (member, url, status)
            if user is None or not user.is_staff:
                assert status == 302, (member, url, status)  # to the admin's sign-in, never a page
                continue
            if member == "root":
                assert status in (200, 302, 403), (member, url, status)  # 403: read-only records refuse add/delete
                continue
            if not url.endswith("/admin/") and label and url.endswith(label.split(".")[1] + "/"):  # a change list
                allowed = {"administrator": ADMINISTRATOR_MODELS, "auditor": AUDITOR_MODELS}.get(member, set())
                assert (status == 200) == (label in allowed), (member, url, status)


def test_an_administrators_escalation_attempts_are_refused_and_audited(cast):
    administrator, root = cast["administrator"], cast["root"]
    client = Client()
    client.force_login(administrator)
    everything = Group.objects.create(name="everything")
    everything.permissions.set(Permission.objects.all())
    me = f"/admin/auth/user/{administrator.pk}/change/"
    from tests.scoring.test_users import form_data

    base = form_data(client.get(me).context["adminform"].form)
    attempts = [
        client.post(me, {**base, "is_superuser": "on"}),
        client.post(me, {**base, "groups": [str(everything.pk)]}),
        client.post(me, {**base, "user_permissions": [str(Permission.objects.get(codename="delete_auditevent").pk)]}),
    ]
    assert [r.status_code for r in attempts] == [200, 200, 200]  # the form again, with the refusal
    assert client.get(f"/admin/auth/user/{root.pk}/password/").status_code == 403
    assert client.post(f"/admin/auth/user/{root.pk}/change/", {"username": "root2"}).status_code == 403
    role = Group.objects.get(name="administrator")
    group_form = form_data(client.get(f"/admin/auth/group/{role.pk}/change/").context["adminform"].form)
    group_post = client.post(f"/admin/auth/group/{role.pk}/change/",
                             {**group_form, "permissions": [str(p.pk) for p in Permission.objects.all()]})  # fmt: skip
    assert group_post.status_code in (200, 403)
    administrator.refresh_from_db()
    root.refresh_from_db()
    assert not administrator.is_superuser and not administrator.user_permissions.exists()
    assert not administrator.groups.filter(name="everything").exists() and root.username == "root"
    assert role.permissions.count() < Permission.objects.count()
    refused = AuditEvent.objects.filter(outcome="denied", actor_id=administrator.pk)
    assert refused.filter(action="user.change").count() >= 5
    assert refused.filter(action="request.denied").count() >= 2  # the 403s, by the audit middleware

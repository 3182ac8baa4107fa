"""User, group, role and schedule administration: an administrator manages them but
never escalates (superuser status, a superuser's account, rights above their own),
and every change, from any entry point, is an event in the audit log."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.forms import MultiWidget
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from scoring.models import AuditEvent
from scoring.roles import ADMINISTRATOR, ANALYST, AUDITOR
from scoring.services.access import portfolio_access_grant, user_role_add
from scoring.services.users import EscalationRefused, user_groups_set, user_permissions_set, user_update
from tests.factories import PortfolioFactory, UserFactory


def form_data(form) -> dict:
    """The POST body that submits ``form`` as it stands (what a browser sends unchanged)."""
    data: dict = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        widget = field.widget
        if isinstance(widget, MultiWidget):
            for i, part in enumerate(widget.decompress(value)):
                data[f"{name}_{i}"] = "" if part is None else str(part)
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [str(v) for v in value]
        elif value is not None:
            data[name] = str(value)
    return data


@pytest.fixture
def administrator(db):
    user = UserFactory(username="admin_role", is_staff=True)
    user_role_add(user=user, role=ADMINISTRATOR)
    return user


@pytest.fixture
def root(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def change_url(user) -> str:
    return f"/admin/auth/user/{user.pk}/change/"


def denied_events(target) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="user.change", outcome="denied", object_ids=[target.pk]))


def test_an_administrator_cannot_make_itself_a_superuser_and_the_attempt_is_audited(administrator, client):
    client.force_login(administrator)
    form = client.get(change_url(administrator)).context["adminform"].form
    data = {**form_data(form), "is_superuser": "on"}
    response = client.post(change_url(administrator), data)
    assert response.status_code == 200 and "superuser" in response.content.decode()
    administrator.refresh_from_db()
    assert not administrator.is_superuser
    [event] = denied_events(administrator)
    assert event.actor_id == administrator.pk and "superuser status" in event.details["refused"][0]


def test_an_administrator_can_neither_change_a_superuser_nor_open_its_password_form(administrator, root, client):
    client.force_login(administrator)
    assert client.get(f"/admin/auth/user/{root.pk}/password/").status_code == 403
    assert client.post(f"/admin/auth/user/{root.pk}/password/",
                       {"password1": "x-new-pass-9876", "password2": "x-new-pass-9876"}).status_code == 403  # fmt: skip
    page = client.get(change_url(root))
    assert page.status_code == 200 and not page.context["has_change_permission"]  # read-only
    assert client.post(change_url(root), {"username": "root", "is_active": ""}).status_code == 403
    root.refresh_from_db()
    assert root.is_active and root.check_password("a-long-test-password")
    assert len(denied_events(root)) == 3
    with pytest.raises(EscalationRefused):
        user_update(actor=administrator, user=root, is_active=False)


def test_an_administrator_gives_roles_but_not_a_group_or_permission_above_its_own(administrator, client):
    newcomer = UserFactory(username="newcomer", is_staff=True)
    powerful = Group.objects.create(name="schema editors")
    powerful.permissions.add(Permission.objects.get(codename="change_group"))
    client.force_login(administrator)
    url = change_url(newcomer)
    base = form_data(client.get(url).context["adminform"].form)
    analyst, auditor = Group.objects.get(name=ANALYST), Group.objects.get(name=AUDITOR)
    refused = client.post(url, {**base, "groups": [str(powerful.pk)]})
    assert refused.status_code == 200 and "auth.change_group" in refused.content.decode()
    sneaky = client.post(url, {**base, "user_permissions": [str(Permission.objects.get(codename="delete_user").pk)]})
    assert sneaky.status_code == 200
    assert not newcomer.groups.exists() and not newcomer.user_permissions.exists()
    assert len(denied_events(newcomer)) == 2
    assert client.post(url, {**base, "groups": [str(analyst.pk), str(auditor.pk)]}).status_code == 302
    assert set(newcomer.groups.values_list("name", flat=True)) == {ANALYST, AUDITOR}
    event = AuditEvent.objects.get(action="user.groups_add", object_ids=[newcomer.pk])
    assert event.actor_id == administrator.pk and event.details == {"groups": sorted([ANALYST, AUDITOR])}
    with pytest.raises(EscalationRefused):
        user_groups_set(actor=administrator, user=newcomer, groups=[powerful])
    with pytest.raises(EscalationRefused):
        user_permissions_set(actor=administrator, user=newcomer,
                             permissions=[Permission.objects.get(codename="delete_user")])  # fmt: skip


def test_a_role_above_the_actors_own_is_refused_by_the_access_service_too(db):
    actor = UserFactory(username="half_admin", is_staff=True)
    actor.user_permissions.add(Permission.objects.get(codename="change_user"))
    target = UserFactory(username="target")
    with pytest.raises(EscalationRefused):
        user_role_add(user=target, role=AUDITOR, actor=actor)  # the auditor reads the log; the actor does not
    with pytest.raises(EscalationRefused):
        portfolio_access_grant(portfolio=PortfolioFactory(), grantee=target, role=ADMINISTRATOR, actor=actor)
    assert not target.groups.exists()
    user_role_add(user=target, role=ANALYST, actor=actor)  # portfolio rights only: fine
    grant = AuditEvent.objects.get(action="permission.grant", object_ids=[target.pk])
    assert grant.details == {"role": ANALYST}
    assert not AuditEvent.objects.filter(action="user.groups_add").exists()  # the service said it, once


def test_user_changes_from_the_admin_and_commands_enter_the_audit_log(administrator, client):
    client.force_login(administrator)
    response = client.post("/admin/auth/user/add/", {"username": "fresh", "password1": "a-fresh-pass-4471",
                                                     "password2": "a-fresh-pass-4471", "usable_password": "true"})  # fmt: skip
    assert response.status_code == 302, response.content
    fresh = type(administrator).objects.get(username="fresh")
    created = AuditEvent.objects.get(action="user.create", object_ids=[fresh.pk])
    assert created.actor_id == administrator.pk and created.details["is_superuser"] is False
    call_command("createsuperuser", username="ops", email="ops@example.com", interactive=False, verbosity=0)
    event = AuditEvent.objects.filter(action="user.create").latest("id")
    assert event.actor_id is None and event.details["is_superuser"] is True
    assert "ops@example.com" not in str(event.details)  # field names, never personal data
    administrator.set_password("another-pass-1234")
    administrator.save()
    change = AuditEvent.objects.filter(action="user.change").latest("id")
    assert change.details["fields"] == ["password"] and "pbkdf2" not in str(change.details)


def test_disabling_a_beat_schedule_in_the_admin_is_an_audit_event(administrator, client):
    crontab = CrontabSchedule.objects.create(minute="0", hour="2")
    task = PeriodicTask.objects.create(name="audit checkpoint", task="scoring.tasks.x", crontab=crontab)
    client.force_login(administrator)
    url = f"/admin/django_celery_beat/periodictask/{task.pk}/change/"
    data = {**form_data(client.get(url).context["adminform"].form)}
    data.pop("enabled", None)
    assert client.post(url, data).status_code == 302
    task.refresh_from_db()
    assert not task.enabled
    event = AuditEvent.objects.filter(action="periodictask.change", object_ids=[task.pk]).latest("id")
    assert "enabled" in event.details["fields"] and event.actor_id == administrator.pk
    # What the beat scheduler writes at each run is bookkeeping, not a change.
    before = AuditEvent.objects.count()
    task.total_run_count += 1
    task.save()
    assert AuditEvent.objects.count() == before

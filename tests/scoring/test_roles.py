"""Roles say what a user may do, grants on portfolios say where; the gate allows
only where both agree."""

import pytest
from django.contrib.admin.sites import AdminSite
from django.contrib.auth.models import Group
from django.test import RequestFactory

from scoring import roles
from scoring.models import Applicant, Portfolio
from scoring.permissions import (
    RestrictedAdminMixin,
    has_portfolio_perm,
    permitted_portfolio_ids,
    restrict,
    scope_to_portfolios,
)
from scoring.services.access import (
    portfolio_access_grant,
    portfolio_access_revoke,
    user_role_add,
    user_role_remove,
)
from tests.factories import PortfolioFactory, UserFactory

pytestmark = pytest.mark.django_db

VIEW, SCORE, IMPORT, EXPORT, TRAIN, VALIDATE = (
    "view_portfolio_data", "score_portfolio", "import_portfolio", "export_portfolio", "train_portfolio",
    "validate_portfolio",
)  # fmt: skip


def group_perms(name: str) -> set[str]:
    group = Group.objects.get(name=name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_migrate_creates_every_role_with_exactly_its_capabilities():
    assert group_perms("analyst") == {f"scoring.{VIEW}", f"scoring.{SCORE}"}
    assert group_perms("senior analyst") == {
        f"scoring.{p}" for p in (VIEW, SCORE, IMPORT, EXPORT, "view_portfolio_pii")
    }
    assert group_perms("model developer") == {f"scoring.{VIEW}", f"scoring.{TRAIN}"}
    assert group_perms("model validator") == {f"scoring.{VIEW}", f"scoring.{VALIDATE}"}
    assert group_perms("auditor") == {f"scoring.{VIEW}", "scoring.view_auditevent", "scoring.view_auditcheckpoint"}
    admin = group_perms("administrator")
    assert {
        "auth.change_user",
        "scoring.change_portfolio",
        "scoring.view_auditevent",
        "scoring.delete_loginthrottle",
    } <= admin
    assert not admin & {f"scoring.{p}" for p in (VIEW, SCORE, IMPORT, EXPORT, TRAIN, VALIDATE, "view_portfolio_pii")}


def test_every_permission_a_role_declares_exists_and_is_given():
    for role in roles.ROLES.values():
        declared = {f"scoring.{p}" for p in role.portfolio_perms} | set(role.model_perms)
        assert group_perms(role.name) == declared, role.name  # a misspelt codename would be missing


def test_roles_are_ensured_idempotently_and_drift_is_corrected():
    analyst = Group.objects.get(name="analyst")
    analyst.permissions.add(*Group.objects.get(name="administrator").permissions.all())  # edited by hand
    roles.roles_ensure()
    roles.roles_ensure()
    assert group_perms("analyst") == {f"scoring.{VIEW}", f"scoring.{SCORE}"}
    assert Group.objects.filter(name__in=roles.ROLES).count() == len(roles.ROLES)


def test_a_grant_without_the_role_gives_nothing():
    portfolio, user = PortfolioFactory(), UserFactory()
    portfolio_access_grant(portfolio=portfolio, grantee=user, perms=(VIEW, SCORE))
    assert permitted_portfolio_ids(user, VIEW) == []
    assert not has_portfolio_perm(user, portfolio, SCORE)


def test_a_role_without_a_grant_gives_nothing_even_as_a_model_level_permission():
    portfolio, user = PortfolioFactory(), UserFactory()
    user_role_add(user=user, role="senior analyst")
    assert user.has_perm(f"scoring.{VIEW}")  # the role holds it globally...
    assert permitted_portfolio_ids(user, VIEW) == []  # ...and it never widens to a portfolio
    assert not restrict(Portfolio.objects.all(), user).filter(pk=portfolio.pk).exists()


def test_effective_permission_is_role_and_grant_together():
    a, b = PortfolioFactory(), PortfolioFactory()
    analyst = UserFactory()
    portfolio_access_grant(portfolio=a, grantee=analyst, role="analyst")
    # A grant beyond the role (import) is stored but has no effect until the role carries it.
    portfolio_access_grant(portfolio=a, grantee=analyst, perms=(IMPORT,))
    assert permitted_portfolio_ids(analyst, VIEW) == [a.pk]
    assert has_portfolio_perm(analyst, a, SCORE) and not has_portfolio_perm(analyst, b, SCORE)
    assert not has_portfolio_perm(analyst, a, IMPORT)
    user_role_add(user=analyst, role="senior analyst")
    analyst = type(analyst).objects.get(pk=analyst.pk)  # a new request: no permission cache
    assert has_portfolio_perm(analyst, a, IMPORT)


def test_grant_by_role_gives_the_role_and_only_the_role_permissions():
    portfolio, user = PortfolioFactory(), UserFactory()
    granted = portfolio_access_grant(portfolio=portfolio, grantee=user, role="model validator")
    assert granted == (VIEW, VALIDATE)
    assert user.groups.filter(name="model validator").exists()
    with pytest.raises(ValueError, match="does not carry"):
        portfolio_access_grant(portfolio=portfolio, grantee=user, role="analyst", perms=(TRAIN,))
    with pytest.raises(ValueError, match="Unknown role"):
        portfolio_access_grant(portfolio=portfolio, grantee=user, role="janitor")
    with pytest.raises(ValueError, match="Unknown portfolio permission"):
        portfolio_access_grant(portfolio=portfolio, grantee=user, perms=("delete_everything",))


def test_a_team_group_grant_reaches_members_as_far_as_their_roles_allow():
    portfolio = PortfolioFactory()
    team = Group.objects.create(name="Retail risk team")
    portfolio_access_grant(portfolio=portfolio, grantee=team, role="senior analyst")
    analyst, validator = UserFactory(), UserFactory()
    for user, role in ((analyst, "analyst"), (validator, "model validator")):
        user.groups.add(team)
        user_role_add(user=user, role=role)
    assert has_portfolio_perm(analyst, portfolio, SCORE) and not has_portfolio_perm(analyst, portfolio, IMPORT)
    assert has_portfolio_perm(validator, portfolio, VIEW) and not has_portfolio_perm(validator, portfolio, SCORE)


def test_revoking_a_grant_or_a_role_takes_effect_on_the_next_lookup():
    portfolio, user = PortfolioFactory(), UserFactory()
    portfolio_access_grant(portfolio=portfolio, grantee=user, role="senior analyst")
    assert has_portfolio_perm(user, portfolio, EXPORT)
    portfolio_access_revoke(portfolio=portfolio, grantee=user, perms=(EXPORT,))
    user = type(user).objects.get(pk=user.pk)
    assert not has_portfolio_perm(user, portfolio, EXPORT) and has_portfolio_perm(user, portfolio, SCORE)
    user_role_remove(user=user, role="senior analyst")
    user = type(user).objects.get(pk=user.pk)
    assert permitted_portfolio_ids(user, VIEW) == []
    user_role_add(user=user, role="analyst")
    portfolio_access_revoke(portfolio=portfolio, grantee=user)
    user = type(user).objects.get(pk=user.pk)
    assert permitted_portfolio_ids(user, VIEW) == []


def test_superusers_see_everything_unless_a_token_narrows_them():
    a, b = PortfolioFactory(), PortfolioFactory()
    admin = UserFactory(is_superuser=True)
    assert permitted_portfolio_ids(admin, VALIDATE) is None
    scope_to_portfolios(admin, [b.pk])
    assert permitted_portfolio_ids(admin, VALIDATE) == [b.pk]
    assert not has_portfolio_perm(admin, a, VIEW)


def test_a_token_scope_narrows_but_never_widens():
    a, b, c = PortfolioFactory(), PortfolioFactory(), PortfolioFactory()
    user = UserFactory()
    for portfolio in (a, b):
        portfolio_access_grant(portfolio=portfolio, grantee=user, role="analyst")
    scope_to_portfolios(user, [b.pk, c.pk])
    assert permitted_portfolio_ids(user, VIEW) == [b.pk]
    scope_to_portfolios(user, [])
    assert permitted_portfolio_ids(user, VIEW) == []
    scope_to_portfolios(user, None)
    assert permitted_portfolio_ids(user, VIEW) == sorted([a.pk, b.pk])


def test_inactive_and_anonymous_users_see_nothing():
    from django.contrib.auth.models import AnonymousUser

    portfolio, user = PortfolioFactory(), UserFactory(is_active=False)
    portfolio_access_grant(portfolio=portfolio, grantee=user, role="analyst")
    assert permitted_portfolio_ids(user) == [] and permitted_portfolio_ids(AnonymousUser()) == []


def test_restrict_finds_the_portfolio_column_and_filters_by_portfolio_id_in(django_assert_max_num_queries):
    a, b = PortfolioFactory(), PortfolioFactory()
    for portfolio in (a, b):
        Applicant.objects.create(portfolio=portfolio, external_id=f"X{portfolio.pk}", schema=portfolio.schema)
    user = UserFactory()
    portfolio_access_grant(portfolio=a, grantee=user, role="auditor")
    queryset = restrict(Applicant.objects.all(), user)
    sql = str(queryset.query)
    assert '"portfolio_id" IN (' in sql and "guardian" not in sql  # the indexed column, no generic join
    assert list(queryset.values_list("portfolio_id", flat=True)) == [a.pk]
    assert list(restrict(Portfolio.objects.all(), user).values_list("id", flat=True)) == [a.pk]
    with pytest.raises(ValueError, match="no portfolio column"):
        restrict(Group.objects.all(), user)


def test_the_admin_mixin_scopes_a_model_admin_to_the_users_portfolios():
    from django.contrib import admin

    a, b = PortfolioFactory(), PortfolioFactory()
    for portfolio in (a, b):
        Applicant.objects.create(portfolio=portfolio, external_id=f"X{portfolio.pk}", schema=portfolio.schema)
    staff = UserFactory(is_staff=True)
    portfolio_access_grant(portfolio=b, grantee=staff, role="analyst")

    class ApplicantAdmin(RestrictedAdminMixin, admin.ModelAdmin):
        pass

    class PortfolioAdmin(RestrictedAdminMixin, admin.ModelAdmin):
        pass

    request = RequestFactory().get("/admin/")
    request.user = staff
    site = AdminSite()
    applicants = ApplicantAdmin(Applicant, site).get_queryset(request)
    assert set(applicants.values_list("portfolio_id", flat=True)) == {b.pk}
    assert list(PortfolioAdmin(Portfolio, site).get_queryset(request).values_list("id", flat=True)) == [b.pk]


def test_demo_users_hold_their_roles_on_the_demo_portfolios():
    from django.contrib.auth import get_user_model

    from scoring.services.demo import GERMAN, SYNTHETIC, demo_users_ensure, portfolio_with_schema
    from tests.factories import DEMO

    german = portfolio_with_schema(name=GERMAN, schema_file=DEMO / "german_credit.schema.json")
    synthetic = portfolio_with_schema(name=SYNTHETIC, schema_file=DEMO / "synthetic.schema.json")
    users = {u.username: u for u in demo_users_ensure()}
    assert {"admin", "analyst", "senior_analyst", "analyst_other", "developer", "validator", "auditor"} <= set(users)
    assert all(u.password and len(u.password) >= 12 for u in users.values())

    def get(name):
        return get_user_model().objects.get(username=name)

    assert has_portfolio_perm(get("analyst"), german, SCORE) and not has_portfolio_perm(get("analyst"), german, IMPORT)
    assert has_portfolio_perm(get("senior_analyst"), synthetic, EXPORT)
    assert permitted_portfolio_ids(get("analyst_other")) == [synthetic.pk]
    assert has_portfolio_perm(get("developer"), synthetic, TRAIN)
    assert has_portfolio_perm(get("validator"), german, VALIDATE)
    auditor = get("auditor")
    assert auditor.has_perm("scoring.view_auditevent") and not has_portfolio_perm(auditor, german, SCORE)
    assert not has_portfolio_perm(auditor, german, "view_portfolio_pii")  # an auditor sees no PII
    assert not has_portfolio_perm(get("analyst"), german, "view_portfolio_pii")
    assert has_portfolio_perm(get("senior_analyst"), german, "view_portfolio_pii")
    # The README's administrator: runs the admin, sees no applicant data without a data role.
    admin = get("admin")
    assert admin.is_staff and not get_user_model().objects.filter(is_superuser=True).exists()
    assert permitted_portfolio_ids(admin) == [] and not has_portfolio_perm(admin, german, "view_portfolio_data")
    assert all(u.password is None for u in demo_users_ensure())  # again: passwords kept, nothing fails

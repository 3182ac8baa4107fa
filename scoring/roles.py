"""Roles: what a user may do. A role is a Django group holding model-level
("global") permissions; a grant on a portfolio (guardian object permission, made
only by ``scoring.services.access.portfolio_access_grant``) says where. A
portfolio action is allowed only when both agree (``scoring.permissions``): a role
never widens access to a portfolio, and a grant without the role does nothing.

The groups are created, and their permissions set to exactly what is declared
here, after every ``migrate`` (and test-database flush), so code is the one source
of truth for what a role can do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from scoring.models import Portfolio

logger = logging.getLogger(__name__)

VIEW = "view_portfolio_data"
SCORE = "score_portfolio"
IMPORT = "import_portfolio"
EXPORT = "export_portfolio"
TRAIN = "train_portfolio"
VALIDATE = "validate_portfolio"
VIEW_PII = "view_portfolio_pii"
POLICY = "manage_portfolio_policy"
REVIEW = "review_portfolio"
# Every permission a grant on a portfolio can carry: Portfolio.Meta.permissions, read from
# the model so a permission added there is grantable at once (and given to roles below).
PORTFOLIO_PERMS: tuple[str, ...] = tuple(codename for codename, _ in Portfolio._meta.permissions)

ANALYST = "analyst"
SENIOR_ANALYST = "senior analyst"
MODEL_DEVELOPER = "model developer"
MODEL_VALIDATOR = "model validator"
AUDITOR = "auditor"
ADMINISTRATOR = "administrator"
CREDIT_RISK_OFFICER = "credit risk officer"
UNDERWRITER = "underwriter"


@dataclass(frozen=True)
class Role:
    """Role: a job in the lender's process, and the capabilities it carries."""

    name: str  # the Group's name
    description: str
    # What the role may do inside a portfolio; effective only where the user is granted the portfolio.
    portfolio_perms: tuple[str, ...]
    # Other model-level permissions ("app_label.codename"), outside portfolio data.
    model_perms: tuple[str, ...] = ()


ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role(ANALYST, "Views and scores the applicants of the portfolios granted.", (VIEW, SCORE)),
        # The one role that may see applicants' personal data unmasked (where its grant includes it).
        Role(
            SENIOR_ANALYST,
            "An analyst who also imports and exports data, and sees personal data unmasked, in the portfolios granted.",
            (VIEW, SCORE, IMPORT, EXPORT, VIEW_PII),
        ),
        Role(MODEL_DEVELOPER, "Trains and tunes models of the portfolios granted.", (VIEW, TRAIN)),
        Role(
            MODEL_VALIDATOR,
            "Approves and promotes models of the portfolios granted; never those they trained (four eyes).",
            (VIEW, VALIDATE),
        ),
        # Owns the credit policy: proposes cutoffs, scale, reason texts and strategy rules, and
        # approves a colleague's proposal (never their own: scoring.services.policy).
        Role(
            CREDIT_RISK_OFFICER,
            "Proposes and approves the credit policy (cutoffs, rules, reason texts) of the portfolios granted.",
            (VIEW, POLICY),
            ("scoring.view_policyversion",),
        ),
        # Decides the applications the policy refers to a person.
        Role(
            UNDERWRITER,
            "Takes referred applications of the portfolios granted and approves or declines them.",
            (VIEW, REVIEW),
        ),
        # Decisions are what an auditor checks, so it reads scores and models of the portfolios
        # granted; it holds no permission on personal data (PII) and acts on nothing.
        Role(
            AUDITOR,
            "Reads the audit log and the decisions of the portfolios granted.",
            (VIEW,),
            ("scoring.view_auditevent", "scoring.view_auditcheckpoint"),
        ),
        # Runs the service: users, roles and grants, portfolios, schemas, API tokens, schedules.
        # Sees applicant data only where also granted a portfolio with a data role.
        Role(
            ADMINISTRATOR,
            "Manages users, grants, portfolios, schemas, API tokens, webhooks and schedules; reads the audit log.",
            (),
            (
                "auth.add_user",
                "auth.change_user",
                "auth.view_user",
                "auth.view_group",
                "scoring.add_portfolio",
                "scoring.change_portfolio",
                "scoring.view_portfolio",
                "scoring.add_datasetschema",
                "scoring.view_datasetschema",
                "scoring.view_reasoncode",
                "scoring.view_policyversion",
                "scoring.change_reasoncode",
                "scoring.add_apitoken",
                "scoring.change_apitoken",
                "scoring.view_apitoken",
                "scoring.view_auditevent",
                "scoring.view_auditcheckpoint",
                # Where each portfolio's final decisions are announced (its delivery log holds
                # applicant ids: seen only where also granted the portfolio's data).
                "scoring.add_webhookendpoint",
                "scoring.change_webhookendpoint",
                "scoring.view_webhookendpoint",
                "scoring.view_webhookdelivery",
                # Lifting a login lockout is deleting its row.
                "scoring.view_loginthrottle",
                "scoring.delete_loginthrottle",
                "django_celery_beat.view_periodictask",
                "django_celery_beat.change_periodictask",
                "django_celery_beat.view_crontabschedule",
            ),
        ),
    )
}


def role_get(name: str) -> Role:
    try:
        return ROLES[name]
    except KeyError:
        raise ValueError(f"Unknown role {name!r}; known: {sorted(ROLES)}") from None


def roles_ensure(**kwargs) -> None:
    """Create the role groups and set each one's permissions to exactly the declared
    ones. Idempotent; connected to ``post_migrate`` (kwargs are the signal's)."""
    from django.contrib.auth.models import Group, Permission

    from scoring.services.users import recorded_by_service

    # Like a migration, this applies what the code declares: the deploy is the record, not the log.
    with recorded_by_service():
        _roles_set(Group, Permission)


def _roles_set(Group, Permission) -> None:
    for role in ROLES.values():
        wanted = [f"scoring.{perm}" for perm in role.portfolio_perms] + list(role.model_perms)
        found = {
            f"{p.content_type.app_label}.{p.codename}": p
            for p in Permission.objects.select_related("content_type").filter(
                codename__in=[w.split(".", 1)[1] for w in wanted]
            )
        }
        missing = [w for w in wanted if w not in found]
        if missing:
            # An app not migrated yet; the next post_migrate completes the group.
            logger.warning("Role %r: permissions not found yet: %s", role.name, ", ".join(missing))
        group, _ = Group.objects.get_or_create(name=role.name)
        group.permissions.set([found[w] for w in wanted if w in found])


_undeclared = {perm for role in ROLES.values() for perm in role.portfolio_perms} - set(PORTFOLIO_PERMS)
if _undeclared:  # a typo here would silently grant nothing
    raise RuntimeError(f"Roles name portfolio permissions Portfolio.Meta does not declare: {sorted(_undeclared)}")

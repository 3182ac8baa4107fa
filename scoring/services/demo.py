"""Setting up the demo: the German credit portfolio, a synthetic portfolio, demo
users with generated passwords, and a trained model for each portfolio."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from scoring import roles
from scoring.models import ImportJob, Portfolio
from scoring.services.access import portfolio_access_grant, user_role_add
from scoring.services.errors import ConflictError
from scoring.services.ingestion import import_file_run
from scoring.services.schemas import schema_register_file
from scoring.services.synthetic import synthetic_files_write

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
GERMAN = "German credit"
SYNTHETIC = "Synthetic"

# username -> (staff, superuser, role, portfolios granted with that role). Each user
# holds one role; the grant says where it applies (scoring/roles.py).
DEMO_USERS: dict[str, tuple[bool, bool, str, tuple[str, ...]]] = {
    "admin": (True, True, roles.ADMINISTRATOR, ()),
    "analyst": (False, False, roles.ANALYST, (GERMAN, SYNTHETIC)),
    "senior_analyst": (False, False, roles.SENIOR_ANALYST, (GERMAN, SYNTHETIC)),
    "analyst_other": (False, False, roles.ANALYST, (SYNTHETIC,)),
    "developer": (False, False, roles.MODEL_DEVELOPER, (GERMAN, SYNTHETIC)),
    "validator": (False, False, roles.MODEL_VALIDATOR, (GERMAN, SYNTHETIC)),
    "auditor": (False, False, roles.AUDITOR, (GERMAN, SYNTHETIC)),
}


class DemoError(ConflictError, RuntimeError):
    """The demo set-up cannot go on (an import of its files failed)."""


@dataclass
class DemoUser:
    username: str
    password: str | None  # None: the user existed and keeps its password
    role: str = ""


def _checked(job: ImportJob) -> ImportJob:
    if job.status != ImportJob.STATUS_SUCCEEDED:
        raise DemoError(f"Import of {job.file_name} {job.status}: {job.message}")
    return job


def portfolio_with_schema(*, name: str, schema_file: Path, description: str = "") -> Portfolio:
    schema = schema_register_file(path=schema_file)
    portfolio, _ = Portfolio.objects.get_or_create(name=name, defaults={"schema": schema, "description": description})
    return portfolio


def german_credit_load() -> ImportJob:
    portfolio = portfolio_with_schema(
        name=GERMAN,
        schema_file=DEMO_DIR / "german_credit.schema.json",
        description="UCI Statlog German Credit data (Hofmann 1994, CC BY 4.0): 1,000 applicants, no history.",
    )
    return _checked(import_file_run(portfolio=portfolio, kind="applicants", path=DEMO_DIR / "german_credit.csv"))


def synthetic_load(
    *, name: str = SYNTHETIC, count: int, seed: int, sex_income_gap: float = 0.0,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[ImportJob, ImportJob]:  # fmt: skip
    """Generate ``count`` applicants to files under var/, then import them through the
    ingestion service (the path real files take)."""
    portfolio = portfolio_with_schema(
        name=name,
        schema_file=DEMO_DIR / "synthetic.schema.json",
        description=f"Seeded synthetic applicants (models/synthetic.py, seed {seed}) with 24-month histories.",
    )
    directory = Path(settings.VAR_DIR) / "generated" / f"seed{seed}-n{count}-gap{sex_income_gap:g}"
    files = synthetic_files_write(
        directory=directory, count=count, seed=seed, sex_income_gap=sex_income_gap,
        progress=(lambda done, total: progress(done, total, "generating")) if progress else None,
    )  # fmt: skip
    applicants = _checked(
        import_file_run(portfolio=portfolio, kind="applicants", path=files.applicants, progress=progress)
    )
    history = _checked(import_file_run(portfolio=portfolio, kind="history", path=files.history, progress=progress))
    return applicants, history


@transaction.atomic
def demo_users_ensure(*, reset_passwords: bool = False) -> list[DemoUser]:
    """Create the demo users (passwords generated here, returned once, never stored in
    clear), give each its role and grant it the demo portfolios."""
    User = get_user_model()
    out = []
    for username, (staff, superuser, role, portfolios) in DEMO_USERS.items():
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"is_staff": staff, "is_superuser": superuser, "email": f"{username}@example.com"},
        )
        password = None
        if created or reset_passwords:
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save()
        user_role_add(user=user, role=role)
        for name in portfolios:
            portfolio = Portfolio.objects.filter(name=name).first()
            if portfolio is not None:
                portfolio_access_grant(portfolio=portfolio, grantee=user, role=role)
        out.append(DemoUser(username, password, role))
    return out

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

from models.scaling import APPROVE, DECLINE, REFER
from scoring import roles
from scoring.models import BatchRun, ImportJob, Outcome, Portfolio, Score
from scoring.services.access import portfolio_access_grant, user_role_add
from scoring.services.errors import ConflictError
from scoring.services.ingestion import import_file_run
from scoring.services.schemas import schema_register, schema_register_file
from scoring.services.synthetic import synthetic_files_write, synthetic_hard_file_write

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
GERMAN = "German credit"
SYNTHETIC = "Synthetic"

# Decision cutoffs of each demo book (approve at or above, decline below; between, refer),
# chosen on the demo champions' scores of the whole book (seed 7), where the outcomes are known:
# German credit (30 % bad): approves 67 % with a 15 % bad rate among them, declines 20 % (71 % bad);
# Synthetic (9.1 % bad): approves 74 % with 3.0 % bad, declines 14 % (40 % bad).
# setup_demo prints the rates its own initial batch run gives.
DEMO_CUTOFFS: dict[str, tuple[float, float]] = {GERMAN: (500.0, 480.0), SYNTHETIC: (555.0, 530.0)}

# username -> (staff, superuser, role, portfolios granted with that role). Each user
# holds one role; the grant says where it applies (scoring/roles.py). No demo user is a
# superuser: the administrator runs the admin through its role and, as the README says,
# sees no applicant data without a data role on a portfolio.
DEMO_USERS: dict[str, tuple[bool, bool, str, tuple[str, ...]]] = {
    "admin": (True, False, roles.ADMINISTRATOR, ()),
    "analyst": (False, False, roles.ANALYST, (GERMAN, SYNTHETIC)),
    "senior_analyst": (False, False, roles.SENIOR_ANALYST, (GERMAN, SYNTHETIC)),
    "analyst_other": (False, False, roles.ANALYST, (SYNTHETIC,)),
    "developer": (False, False, roles.MODEL_DEVELOPER, (GERMAN, SYNTHETIC)),
    "validator": (False, False, roles.MODEL_VALIDATOR, (GERMAN, SYNTHETIC)),
    "auditor": (False, False, roles.AUDITOR, (GERMAN, SYNTHETIC)),
    # Decides the refers of the initial batch runs (about 12-13 % of each book) in the review queue.
    "underwriter": (False, False, roles.UNDERWRITER, (GERMAN, SYNTHETIC)),
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
    defaults = {"schema": schema, "description": description}
    if name in DEMO_CUTOFFS:
        defaults["approve_min_score"], defaults["decline_below_score"] = DEMO_CUTOFFS[name]
    portfolio, _ = Portfolio.objects.get_or_create(name=name, defaults=defaults)
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


def synthetic_hard_load(
    *, name: str, count: int, seed: int, progress: Callable[[int, int, str], None] | None = None
) -> ImportJob:
    """The hard synthetic mode as a portfolio (its schema ``models.synthetic.hard_schema``,
    registered here), imported through the ingestion service like a lender's file."""
    from models.synthetic import hard_schema

    schema = schema_register(document=hard_schema())
    portfolio, _ = Portfolio.objects.get_or_create(
        name=name,
        defaults={"schema": schema, "description": f"Hard synthetic applications (models/synthetic.py, seed {seed})."},
    )
    directory = Path(settings.VAR_DIR) / "generated" / f"hard-seed{seed}-n{count}"
    files = synthetic_hard_file_write(directory=directory, count=count, seed=seed)
    return _checked(import_file_run(portfolio=portfolio, kind="applicants", path=files.applicants, progress=progress))


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
        if user.is_superuser != superuser:  # a demo database from before the admin lost it
            user.is_superuser = superuser
            user.save(update_fields=["is_superuser"])
        user_role_add(user=user, role=role)
        for name in portfolios:
            portfolio = Portfolio.objects.filter(name=name).first()
            if portfolio is not None:
                portfolio_access_grant(portfolio=portfolio, grantee=user, role=role)
        out.append(DemoUser(username, password, role))
    return out


@dataclass
class DecisionRates:
    """What a run's decisions give on a book with known outcomes."""

    rows: int
    bad_rate: float | None  # of the applicants with an outcome
    shares: dict[str, float]  # decision -> share of the rows
    bad_rates: dict[str, float | None]  # decision -> bad rate among those with an outcome


def run_decision_rates(*, run: BatchRun) -> DecisionRates:
    """Approval, refer and decline shares of a run and the bad rate in each (the latest
    outcome of each applicant), to state what the cutoffs give."""
    outcomes = dict(
        Outcome.objects.filter(applicant__portfolio_id=run.portfolio_id)
        .order_by("applicant_id", "observed_on")
        .values_list("applicant_id", "defaulted")
    )
    rows = list(Score.objects.filter(run=run, is_shadow=False).values_list("applicant_id", "decision"))
    shares: dict[str, float] = {}
    bad_rates: dict[str, float | None] = {}
    for decision in (APPROVE, REFER, DECLINE):
        ids = [a for a, d in rows if d == decision]
        known = [outcomes[a] for a in ids if a in outcomes]
        shares[decision] = len(ids) / len(rows) if rows else 0.0
        bad_rates[decision] = sum(known) / len(known) if known else None
    known_all = [outcomes[a] for a, _ in rows if a in outcomes]
    return DecisionRates(
        rows=len(rows), bad_rate=sum(known_all) / len(known_all) if known_all else None,
        shares=shares, bad_rates=bad_rates,
    )  # fmt: skip

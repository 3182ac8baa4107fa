"""A small world for the portal's tests (the crawler, the page tests, the browser
tests): two portfolios, the fixed cast of users, a champion model, a finished batch
run, a real-time decision and a rejected import in the first portfolio.

Portfolio "Bravo book" is the one analyst A must never see: its applicants' external
ids all start with ``BRAVO-`` and its import file is named ``bravo-...``, so a leak is
a plain substring search of a page."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import F, Value
from django.db.models.functions import Concat

from scoring.models import Applicant, BatchRun, ImportJob, ModelVersion, Portfolio
from scoring.services.access import portfolio_access_grant, user_role_add
from scoring.services.batch import batch_run_create, score_chunk_run
from scoring.services.ingestion import import_file_run
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.scoring import score_realtime
from scoring.services.training import model_version_create, model_version_train
from tests.factories import UserFactory, synthetic_portfolio

PASSWORD = "a-long-test-password"  # UserFactory's
FAST = {"max_epochs": 6, "patience": 3, "batch_size": 128}
ALPHA, BRAVO = "Alpha book", "Bravo book"
BRAVO_PREFIX = "BRAVO-"


@dataclass
class PortalWorld:
    alpha: Portfolio
    bravo: Portfolio
    users: dict = field(default_factory=dict)
    champion: ModelVersion | None = None
    run: BatchRun | None = None
    applicant: Applicant | None = None  # of Alpha, scored in real time as well
    bravo_applicant: Applicant | None = None
    rejected_import: ImportJob | None = None


def bad_applicants_csv(path, portfolio: Portfolio, *, rows: int = 5):
    """A CSV of the portfolio's schema with one invalid row (a negative income, a
    category the schema does not know)."""
    columns = [c["name"] for c in portfolio.schema.definition["columns"]]
    good = {
        "applicant_id": "NEW-0", "income": "42000", "loan_amount": "9000", "duration_months": "36",
        "debt_to_income": "0.31", "employment_years": "4.5", "num_credit_lines": "3", "home_ownership": "rent",
        "purpose": "car", "region": "north", "sex": "F", "age_band": "36-50", "full_name": "Test Person",
        "national_id": "123456789", "email": "t@example.com", "phone": "+44 7700 000000",
        "address": "1 Test Road Bath", "date_of_birth": "1980-01-01", "defaulted": "no",
    }  # fmt: skip
    lines = [",".join(columns)]
    for i in range(rows):
        row = {**good, "applicant_id": f"NEW-{i}"}
        if i == 2:
            row["income"], row["home_ownership"] = "-5", "castle"
        lines.append(",".join(row.get(c, "") for c in columns))
    path.write_text("\n".join(lines) + "\n")
    return path


def portal_world(tmp_path, *, n: int = 600, champion: bool = True) -> PortalWorld:
    alpha = synthetic_portfolio(n=n, seed=3, name=ALPHA)
    bravo = synthetic_portfolio(n=120, seed=4, name=BRAVO)
    Applicant.objects.filter(portfolio=bravo).update(external_id=Concat(Value(BRAVO_PREFIX), F("external_id")))
    world = PortalWorld(alpha=alpha, bravo=bravo)
    users = world.users
    users["analyst_a"] = UserFactory(username="analyst_a")
    users["analyst_b"] = UserFactory(username="analyst_b")
    users["developer"] = UserFactory(username="developer")
    users["validator"] = UserFactory(username="validator")
    users["auditor"] = UserFactory(username="auditor")
    users["underwriter"] = UserFactory(username="underwriter")
    users["admin"] = UserFactory(username="admin", is_staff=True, is_superuser=True)
    portfolio_access_grant(portfolio=alpha, grantee=users["analyst_a"], role="senior analyst")
    portfolio_access_grant(portfolio=bravo, grantee=users["analyst_b"], role="senior analyst")
    for p in (alpha, bravo):
        portfolio_access_grant(portfolio=p, grantee=users["developer"], role="model developer")
        portfolio_access_grant(portfolio=p, grantee=users["validator"], role="model validator")
    user_role_add(user=users["auditor"], role="auditor")
    portfolio_access_grant(portfolio=alpha, grantee=users["auditor"], role="auditor")
    portfolio_access_grant(portfolio=alpha, grantee=users["underwriter"], role="underwriter")

    world.applicant = Applicant.objects.filter(portfolio=alpha).order_by("id").first()
    world.bravo_applicant = Applicant.objects.filter(portfolio=bravo).order_by("id").first()
    world.rejected_import = import_file_run(
        portfolio=alpha, kind="applicants", path=bad_applicants_csv(tmp_path / "alpha-bad.csv", alpha),
        created_by=users["analyst_a"],
    )  # fmt: skip
    import_file_run(
        portfolio=bravo, kind="applicants", path=bad_applicants_csv(tmp_path / "bravo-secret-file.csv", bravo),
        created_by=users["analyst_b"],
    )  # fmt: skip
    # A queued model of Bravo: listed in the registry for Bravo's users only.
    model_version_create(portfolio=bravo, kind="mlp", hyperparameters=FAST, requested_by=users["developer"])
    if champion:
        version = model_version_create(portfolio=alpha, kind="mlp", seed=1, hyperparameters=FAST,
                                       requested_by=users["developer"])  # fmt: skip
        version = model_version_train(model_version_id=version.pk)
        model_version_approve(version=version, user=users["validator"])
        world.champion = model_version_promote(version=version, user=users["validator"])
        run = batch_run_create(portfolio=alpha, chunk_size=max(n // 2, 1), requested_by=users["analyst_a"])
        for chunk_id in run.chunks.values_list("id", flat=True):
            score_chunk_run(chunk_id=chunk_id)
        run.refresh_from_db()
        world.run = run
        score_realtime(portfolio=alpha, applicant=world.applicant, requested_by=users["analyst_a"])
    return world


@dataclass
class GermanWorld:
    """German credit (the demo's real book, long feature names and values) with a
    champion and an initial batch run; the same cast as the synthetic world."""

    portfolio: Portfolio
    champion: ModelVersion
    run: BatchRun
    applicant: Applicant
    users: dict = field(default_factory=dict)


def german_world(users: dict | None = None) -> GermanWorld:
    from scoring.services.demo import GERMAN, german_credit_load

    portfolio = german_credit_load().portfolio
    users = users if users is not None else {}
    for name in ("analyst_a", "developer", "validator", "auditor"):
        users.setdefault(name, UserFactory(username=name))
    portfolio_access_grant(portfolio=portfolio, grantee=users["analyst_a"], role="senior analyst")
    portfolio_access_grant(portfolio=portfolio, grantee=users["developer"], role="model developer")
    portfolio_access_grant(portfolio=portfolio, grantee=users["validator"], role="model validator")
    user_role_add(user=users["auditor"], role="auditor")
    portfolio_access_grant(portfolio=portfolio, grantee=users["auditor"], role="auditor")
    version = model_version_create(
        portfolio=portfolio, kind="mlp", seed=7, hyperparameters=FAST, requested_by=users["developer"]
    )
    version = model_version_train(model_version_id=version.pk)
    model_version_approve(version=version, user=users["validator"])
    # German credit's fairness report fails on purpose (the 1994 data); the demo overrides it.
    champion = model_version_promote(version=version, user=users["validator"], override_reason="test: demo data")
    run = batch_run_create(portfolio=portfolio, chunk_size=500, requested_by=users["analyst_a"])
    for chunk_id in run.chunks.values_list("id", flat=True):
        score_chunk_run(chunk_id=chunk_id)
    run.refresh_from_db()
    applicant = Applicant.objects.filter(portfolio=portfolio).order_by("id").first()
    assert portfolio.name == GERMAN
    return GermanWorld(portfolio=portfolio, champion=champion, run=run, applicant=applicant, users=users)

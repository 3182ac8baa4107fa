"""factory_boy factories and builders of whole portfolios for tests."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import factory
import numpy as np
from django.contrib.auth import get_user_model

from models.synthetic import generate_all
from scoring.models import Applicant, ApplicantPII, DatasetSchema, Outcome, Portfolio, RepaymentMonth
from scoring.services.pii import pii_encrypt_many, pii_text
from scoring.services.schemas import schema_register

DEMO = Path(__file__).resolve().parent.parent / "scoring" / "demo"


def demo_schema(name: str) -> DatasetSchema:
    return schema_register(document=json.loads((DEMO / f"{name}.schema.json").read_text()))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("a-long-test-password")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # A test's cast is set-up, not an administrator's action: it stays out of the audit
        # log, so tests of the log see only the events they cause (tests/scoring/test_users.py
        # checks that real user changes are recorded).
        from scoring.services.users import recorded_by_service

        with recorded_by_service():
            return super()._create(model_class, *args, **kwargs)


class PortfolioFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Portfolio

    name = factory.Sequence(lambda n: f"Portfolio {n}")
    schema = factory.LazyFunction(lambda: demo_schema("synthetic"))


def synthetic_portfolio(
    *,
    n: int = 2000,
    seed: int = 1,
    name: str | None = None,
    sex_income_gap: float = 0.0,
    schema: DatasetSchema | None = None,
) -> Portfolio:
    """A portfolio of ``n`` seeded synthetic applicants with histories and outcomes,
    written with bulk inserts (the ingestion service has its own tests). ``schema``: a
    variant of the synthetic schema (the same columns) instead of the demo one."""
    options = {k: v for k, v in (("name", name), ("schema", schema)) if v is not None}
    portfolio = PortfolioFactory(**options)
    schema = portfolio.schema
    block = generate_all(n, seed=seed, sex_income_gap=sex_income_gap)
    frame = block.applicants
    roles = {c["name"]: c["role"] for c in schema.definition["columns"]}
    features = [c for c, r in roles.items() if r in ("numeric", "categorical")]
    protected = [c for c, r in roles.items() if r == "protected"]
    pii = [c for c, r in roles.items() if r == "pii"]
    records = frame.to_dict("records")
    applicants = Applicant.objects.bulk_create(
        [
            Applicant(
                portfolio=portfolio,
                external_id=r["applicant_id"],
                schema=schema,
                features={c: r[c] for c in features},
                protected_attributes={c: r[c] for c in protected},
            )
            for r in records
        ],
        batch_size=2000,
    )
    tokens, fingerprints = pii_encrypt_many([pii_text({c: r[c] for c in pii}) for r in records])
    ApplicantPII.objects.bulk_create(
        [
            ApplicantPII(applicant=a, portfolio=portfolio, ciphertext=t, fingerprint=f)
            for a, t, f in zip(applicants, tokens, fingerprints, strict=True)
        ],
        batch_size=2000,
    )
    Outcome.objects.bulk_create(
        [
            Outcome(portfolio=portfolio, applicant=a, defaulted=r["defaulted"] == "yes", observed_on=date(2026, 10, 1))
            for a, r in zip(applicants, records, strict=True)
        ],
        batch_size=2000,
    )
    history = block.history
    RepaymentMonth.objects.bulk_create(
        [
            RepaymentMonth(
                portfolio=portfolio,
                applicant=a,
                month=m,
                balance=float(history[i, t, 0]),
                amount_paid=float(history[i, t, 1]),
                days_past_due=int(history[i, t, 2]),
            )
            for i, a in enumerate(applicants)
            for t, m in enumerate(block.months)
        ],
        batch_size=5000,
    )
    return portfolio


def default_rate(portfolio: Portfolio) -> float:
    flags = np.array(Outcome.objects.filter(portfolio=portfolio).values_list("defaulted", flat=True))
    return float(flags.mean())

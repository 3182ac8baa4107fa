"""The world ``make schemathesis`` fuzzes: a synthetic portfolio with a trained, promoted
champion, and two API tokens (a senior analyst; one user who is both model developer
and model validator). Run with the environment of the server under test; prints the
tokens as JSON. Idempotent enough for a fresh VAR_DIR (the Makefile target makes one)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskapp.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from scoring.services.access import portfolio_access_grant  # noqa: E402
from scoring.services.registry import model_version_approve, model_version_promote  # noqa: E402
from scoring.services.tokens import api_token_create  # noqa: E402
from scoring.services.training import model_version_create, model_version_train  # noqa: E402


def main() -> None:
    from tests.factories import synthetic_portfolio

    User = get_user_model()
    portfolio = synthetic_portfolio(n=400, seed=41, name="Fuzzed")
    analyst = User.objects.create_user("fuzz_analyst", password=None)
    developer = User.objects.create_user("fuzz_developer", password=None)
    trainer = User.objects.create_user("fuzz_trainer", password=None)
    checker = User.objects.create_user("fuzz_checker", password=None)
    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="senior analyst")
    for role in ("model developer", "model validator"):
        portfolio_access_grant(portfolio=portfolio, grantee=developer, role=role)
    portfolio_access_grant(portfolio=portfolio, grantee=trainer, role="model developer")
    portfolio_access_grant(portfolio=portfolio, grantee=checker, role="model validator")
    version = model_version_train(
        model_version_id=model_version_create(
            portfolio=portfolio, kind="mlp", hyperparameters={"max_epochs": 3, "patience": 2}, requested_by=trainer
        ).pk
    )
    model_version_approve(version=version, user=checker)
    model_version_promote(version=version, user=checker, override_reason="schemathesis world")
    # A second trained version the developer+validator did not train: approvable by them.
    spare = model_version_train(
        model_version_id=model_version_create(
            portfolio=portfolio, kind="mlp", hyperparameters={"max_epochs": 2, "patience": 1}, requested_by=trainer
        ).pk
    )
    _, analyst_key = api_token_create(user=analyst, name="schemathesis analyst")
    _, developer_key = api_token_create(user=developer, name="schemathesis developer+validator")
    print(json.dumps({"analyst": analyst_key, "developer_validator": developer_key, "spare_version": spare.pk}))


if __name__ == "__main__":
    main()

"""Monitoring jobs on real trained models: stability, backtest and fairness reports,
their alerts, the nightly chain, the promotion gate and the dashboard selector."""

from __future__ import annotations

import logging

import pytest
from django.core import mail
from django.core.management import call_command

from models import monitoring as m
from riskapp.celery import app as celery_app
from scoring.models import Applicant, AuditEvent, BatchRun, ModelVersion, MonitoringReport
from scoring.selectors import monitoring_latest
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import batch_run_create, score_chunk_run
from scoring.services.monitoring import monitoring_run, promotion_blockers
from scoring.services.registry import PromotionBlocked, model_version_approve, model_version_promote
from scoring.services.training import model_version_create, model_version_train
from tests.factories import PortfolioFactory, UserFactory, synthetic_portfolio

FAST = {"max_epochs": 6, "patience": 3, "batch_size": 128}
FEATURES = [
    "income", "loan_amount", "duration_months", "debt_to_income", "employment_years", "num_credit_lines",
    "home_ownership", "purpose", "region",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _own_artifact_dir(settings, tmp_path):
    """Artifacts of this test only: other test runs on the machine number portfolios alike."""
    settings.ARTIFACT_DIR = tmp_path / "artifacts"


def _cast(portfolio):
    developer = UserFactory(username=f"dev-{portfolio.pk}")
    validator = UserFactory(username=f"val-{portfolio.pk}", email=f"validator{portfolio.pk}@example.com")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    version = model_version_create(
        portfolio=portfolio, kind="mlp", seed=1, hyperparameters=FAST, requested_by=developer
    )
    version = model_version_train(model_version_id=version.pk)
    assert version.status == ModelVersion.STATUS_TRAINED
    model_version_approve(version=version, user=validator)
    version.refresh_from_db()
    return version, validator


@pytest.fixture
def fair_book(db):
    portfolio = synthetic_portfolio(n=2500, seed=31)
    version, validator = _cast(portfolio)
    return portfolio, version, validator


@pytest.fixture
def unfair_book(db):
    # Women's incomes drawn e^-1.2 (about 0.3) times men's: a model that reads income approves them less.
    portfolio = synthetic_portfolio(n=2500, seed=32, sex_income_gap=1.2)
    portfolio.approve_min_score = 600.0  # a tighter policy, so the gap shows in approvals
    portfolio.save()
    version, validator = _cast(portfolio)
    return portfolio, version, validator


def test_training_stores_the_reference_profile_of_the_score_and_every_feature(fair_book):
    _, version, _ = fair_book
    reference = version.monitoring_reference
    assert reference["format"] == 1 and reference["rows"] < version.training_rows  # the train split only
    assert set(reference["features"]) == set(FEATURES)
    assert reference["score"]["type"] == "numeric" and len(reference["score"]["edges"]) == 9
    assert reference["features"]["region"]["categories"] == ["east", "north", "south", "west"]
    for profile in [reference["score"], *reference["features"].values()]:
        assert sum(profile["shares"]) == pytest.approx(1.0)


def test_a_fair_stable_model_is_promoted_without_override_and_its_reports_are_kept(fair_book):
    _portfolio, version, validator = fair_book
    promoted = model_version_promote(version=version, user=validator)
    assert promoted.status == ModelVersion.STATUS_CHAMPION and promoted.promotion_override_reason == ""
    reports = {r.kind: r for r in MonitoringReport.objects.filter(model_version=version)}
    assert set(reports) == {"stability", "backtest", "fairness"}
    assert reports["stability"].status == "pass", reports["stability"].alerts
    assert reports["fairness"].status != "fail", reports["fairness"].alerts
    sex = {g["group"]: g for g in reports["fairness"].results["attributes"]["sex"]["groups"]}
    assert sex["F"]["adverse_impact_ratio"] > 0.8 or sex["M"]["adverse_impact_ratio"] > 0.8
    backtest = reports["backtest"].results
    assert [c["cohort"] for c in backtest["cohorts"]] == ["2026-10"]  # synthetic outcomes are observed 2026-10-01
    assert backtest["cohorts"][0]["auc"] > 0.6 and backtest["cohorts"][0]["ks"] > 0.1
    assert not AuditEvent.objects.filter(action="model.promote_override").exists()


def test_a_shift_in_one_feature_fails_stability_on_that_feature_only_and_raises_an_alert(fair_book, caplog):
    portfolio, version, validator = fair_book
    model_version_promote(version=version, user=validator)
    applicants = list(Applicant.objects.filter(portfolio=portfolio))
    for applicant in applicants:
        applicant.features["debt_to_income"] = round(applicant.features["debt_to_income"] + 0.15, 3)
    Applicant.objects.bulk_update(applicants, ["features"], batch_size=1000)
    mail.outbox.clear()

    with caplog.at_level(logging.WARNING, logger="scoring.services.monitoring"):
        reports = {r.kind: r for r in monitoring_run(portfolio=portfolio, model_version=version)}

    stability = reports["stability"]
    csi = {name: result["psi"] for name, result in stability.results["features"].items()}
    assert csi["debt_to_income"] > m.PSI_ACT
    assert [name for name, value in csi.items() if value >= m.PSI_ACT] == ["debt_to_income"], csi
    assert stability.status == "fail"
    assert any("CSI of feature debt_to_income" in alert for alert in stability.alerts)
    assert not any("CSI of feature income" in alert for alert in stability.alerts)
    # The alert: a log line, an audit event naming the report, a mail to the validator.
    assert any("monitoring alert" in r.message and "debt_to_income" in r.message for r in caplog.records)
    event = AuditEvent.objects.get(action="monitoring.alert", object_ids=[stability.pk])
    assert event.portfolio_id == portfolio.pk and event.details["kind"] == "stability"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [validator.email]
    assert "debt_to_income" in mail.outbox[0].body


def test_approvals_differing_by_sex_block_promotion_until_a_validator_overrides_with_a_reason(unfair_book):
    _portfolio, version, validator = unfair_book
    with pytest.raises(PromotionBlocked, match="override reason") as blocked:
        model_version_promote(version=version, user=validator)
    (report,) = blocked.value.reports
    assert report.kind == "fairness" and report.status == "fail"
    sex = {g["group"]: g for g in report.results["attributes"]["sex"]["groups"]}
    assert report.results["attributes"]["sex"]["reference_group"] == "M"
    assert sex["F"]["adverse_impact_ratio"] < 0.8
    assert sex["F"]["approval_rate"] < sex["M"]["approval_rate"] and sex["F"]["smd"] < 0
    assert any(alert.startswith("sex = F") for alert in report.alerts)
    version.refresh_from_db()
    assert version.status == ModelVersion.STATUS_APPROVED

    # A blank reason is no reason.
    with pytest.raises(PromotionBlocked):
        model_version_promote(version=version, user=validator, override_reason="   ")
    promoted = model_version_promote(
        version=version, user=validator, override_reason="Income proxy reviewed; policy exception VAL-12."
    )
    assert promoted.status == ModelVersion.STATUS_CHAMPION
    promoted.refresh_from_db()
    assert promoted.promotion_override_reason == "Income proxy reviewed; policy exception VAL-12."
    assert promoted.promotion_override_by == validator and promoted.promotion_override_at is not None
    event = AuditEvent.objects.get(action="model.promote_override")
    assert event.actor_id == validator.pk and event.object_ids == [version.pk]
    assert event.details == {"reports": [report.pk], "kinds": ["fairness"]}
    # The gate reads the stored report: it was computed once, not again.
    assert MonitoringReport.objects.filter(model_version=version, kind="fairness").count() == 1


def test_the_promote_api_takes_an_override_reason(unfair_book):
    from rest_framework.test import APIClient

    _portfolio, version, validator = unfair_book
    client = APIClient()
    client.force_authenticate(validator)
    url = f"/api/v1/models/{version.pk}/promote/"
    refused = client.post(url, {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "conflict" and "Fairness" in refused.json()["error"]["message"]
    done = client.post(url, {"override_reason": "Reviewed with the credit committee."}, format="json")
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "champion"
    version.refresh_from_db()
    assert version.promotion_override_reason == "Reviewed with the credit committee."


@pytest.mark.slow  # two models trained, two scored runs
def test_a_finished_nightly_run_queues_monitoring_of_its_champion_and_challenger(
    fair_book, django_capture_on_commit_callbacks
):
    portfolio, version, validator = fair_book
    model_version_promote(version=version, user=validator)
    challenger = model_version_train(
        model_version_id=model_version_create(
            portfolio=portfolio, kind="mlp", seed=2, hyperparameters=FAST, requested_by=UserFactory(username="dev2")
        ).pk
    )
    model_version_approve(version=challenger, user=validator)
    challenger.refresh_from_db()
    run = batch_run_create(portfolio=portfolio, challenger=challenger, trigger="nightly", chunk_size=1000)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for chunk_id in run.chunks.order_by("index").values_list("id", flat=True):
            score_chunk_run(chunk_id=chunk_id)
    run.refresh_from_db()
    assert run.status == BatchRun.STATUS_DONE
    assert not MonitoringReport.objects.filter(run=run).exists()  # queued, not run inline
    # Run what the commit sends, through Celery in this process (eager), on the run's scores.
    celery_app.conf.task_always_eager = True
    try:
        for callback in callbacks:
            callback()
    finally:
        celery_app.conf.task_always_eager = False
    reports = MonitoringReport.objects.filter(run=run)
    assert sorted((r.model_version_id, r.kind) for r in reports) == sorted(
        (v.pk, kind) for v in (version, challenger) for kind in ("stability", "backtest", "fairness")
    )
    assert all(r.rows == 2500 for r in reports)
    assert reports.get(model_version=version, kind="stability").results["population"] == f"scores of batch run {run.pk}"


def test_a_manual_run_does_not_queue_monitoring(fair_book, django_capture_on_commit_callbacks):
    portfolio, version, validator = fair_book
    model_version_promote(version=version, user=validator)
    run = batch_run_create(portfolio=portfolio, trigger="command", chunk_size=5000)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        score_chunk_run(chunk_id=run.chunks.get().pk)
    assert callbacks == []


def test_monitor_portfolio_command_prints_each_report(fair_book, capsys):
    portfolio, version, validator = fair_book
    model_version_promote(version=version, user=validator)
    call_command("monitor_portfolio", "--portfolio", portfolio.name, "--no-alert")
    out = capsys.readouterr().out
    assert f"model v{version.version} (mlp), 2,500 applicants" in out
    for kind in ("Stability (PSI/CSI)", "Backtest", "Fairness"):
        assert kind in out


def test_a_version_without_reports_is_judged_on_demand_and_reports_are_reused(fair_book):
    _, version, _ = fair_book
    assert promotion_blockers(model_version=version) == []
    assert MonitoringReport.objects.filter(model_version=version).count() == 3
    assert promotion_blockers(model_version=version) == []
    assert MonitoringReport.objects.filter(model_version=version).count() == 3


def test_monitoring_latest_returns_the_newest_report_per_kind_and_hides_other_portfolios(fair_book):
    portfolio, version, validator = fair_book
    model_version_promote(version=version, user=validator)
    newer = monitoring_run(portfolio=portfolio, model_version=version, alert=False)
    latest = monitoring_latest(user=validator, portfolio=portfolio)
    assert list(latest) == ["stability", "backtest", "fairness"]
    assert {kind: r.pk for kind, r in latest.items()} == {r.kind: r.pk for r in newer}
    stranger = UserFactory(username="stranger")
    portfolio_access_grant(portfolio=PortfolioFactory(), grantee=stranger, role="model validator")
    assert monitoring_latest(user=stranger, portfolio=portfolio) == {
        "stability": None, "backtest": None, "fairness": None,
    }  # fmt: skip

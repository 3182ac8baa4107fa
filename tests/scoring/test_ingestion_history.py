"""RepaymentMonth.portfolio_id is denormalised without a database FK (speed): its
integrity rests on the one writer and on Django's cascade, both tested here."""

import pytest
from django.db.models import F

from models.synthetic import generate_all
from scoring.models import ImportJob, Portfolio, RepaymentMonth
from scoring.services.ingestion import import_file_run

pytestmark = pytest.mark.django_db


def test_history_portfolio_matches_its_applicant_and_goes_with_the_portfolio(synthetic_schema, tmp_path):
    a = Portfolio.objects.create(name="A", schema=synthetic_schema)
    b = Portfolio.objects.create(name="B", schema=synthetic_schema)
    block = generate_all(60, seed=2)
    applicants, history = tmp_path / "applicants.csv", tmp_path / "history.csv"
    block.applicants.to_csv(applicants, index=False)
    block.history_frame().to_csv(history, index=False)
    for portfolio in (a, b):  # the same external ids in two portfolios
        assert import_file_run(portfolio=portfolio, kind="applicants", path=applicants).status == "succeeded"
    job = import_file_run(portfolio=b, kind="history", path=history)
    assert job.status == ImportJob.STATUS_SUCCEEDED and job.rows_created > 0

    months = RepaymentMonth.objects.all()
    assert months.count() == job.rows_created
    assert not months.exclude(portfolio_id=F("applicant__portfolio_id")).exists()
    assert set(months.values_list("portfolio_id", flat=True)) == {b.pk}

    b.delete()
    assert not RepaymentMonth.objects.exists()

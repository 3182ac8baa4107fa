"""RepaymentMonth.portfolio_id is denormalised without a database FK (speed): its
integrity rests on the one writer and on Django's cascade, both tested here.
RepaymentMonth.applicant_id has no FK either: statement-level triggers (migration
0024) refuse a month of a missing applicant and delete an applicant's months with it,
also when the delete is issued in SQL or waited on an import's lock."""

import datetime
import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from models.synthetic import generate_all
from scoring.models import Applicant, ImportJob, Portfolio, RepaymentMonth
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


def _month(applicant_id: int, portfolio_id: int, month: int = 1) -> RepaymentMonth:
    return RepaymentMonth(
        applicant_id=applicant_id,
        portfolio_id=portfolio_id,
        month=datetime.date(2024, month, 1),
        balance=100.0,
        amount_paid=10.0,
        days_past_due=0,
    )


def _applicant(portfolio: Portfolio, external_id: str = "A-1") -> Applicant:
    return Applicant.objects.create(portfolio=portfolio, external_id=external_id, schema=portfolio.schema)


def test_the_database_refuses_a_month_of_a_missing_applicant(synthetic_schema):
    portfolio = Portfolio.objects.create(name="A", schema=synthetic_schema)
    applicant = _applicant(portfolio)
    with pytest.raises(IntegrityError), transaction.atomic():
        _month(applicant.pk + 1000, portfolio.pk).save()
    with pytest.raises(IntegrityError), transaction.atomic():
        RepaymentMonth.objects.bulk_create(
            [_month(applicant.pk, portfolio.pk, 1), _month(applicant.pk + 1000, portfolio.pk, 2)]
        )
    month = _month(applicant.pk, portfolio.pk)
    month.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        RepaymentMonth.objects.filter(pk=month.pk).update(applicant_id=applicant.pk + 1000)
    assert list(RepaymentMonth.objects.values_list("applicant_id", flat=True)) == [applicant.pk]


def test_an_applicant_deleted_in_sql_takes_its_months(synthetic_schema):
    portfolio = Portfolio.objects.create(name="A", schema=synthetic_schema)
    gone, kept = _applicant(portfolio, "gone"), _applicant(portfolio, "kept")
    RepaymentMonth.objects.bulk_create([_month(a.pk, portfolio.pk, m) for a in (gone, kept) for m in (1, 2, 3)])
    with connection.cursor() as cursor:  # not through Django's cascade
        cursor.execute(f"DELETE FROM {Applicant._meta.db_table} WHERE id = %s", [gone.pk])
    assert set(RepaymentMonth.objects.values_list("applicant_id", flat=True)) == {kept.pk}


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="SQLite has one writer at a time")
@pytest.mark.django_db(transaction=True)
def test_an_applicant_deleted_while_its_months_are_written_leaves_no_orphan(synthetic_schema):
    """The deleting transaction collects the applicant's months before the import
    commits them; it waits on the import's lock of the applicant, and the trigger
    then deletes the months it could not see."""
    portfolio = Portfolio.objects.create(name="A", schema=synthetic_schema)
    applicant = _applicant(portfolio)
    deleted = threading.Event()

    def delete() -> None:
        try:
            Applicant.objects.filter(pk=applicant.pk).delete()
            deleted.set()
        finally:
            connection.close()

    with transaction.atomic():
        RepaymentMonth.objects.bulk_create([_month(applicant.pk, portfolio.pk, m) for m in (1, 2)])
        deleter = threading.Thread(target=delete)
        deleter.start()
        time.sleep(1.0)
        assert not deleted.is_set()  # waiting on the lock the months' check took
    deleter.join(timeout=30)
    assert deleted.is_set()
    assert not Applicant.objects.filter(pk=applicant.pk).exists()
    assert not RepaymentMonth.objects.exists()

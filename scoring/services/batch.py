"""Batch scoring runs: a portfolio split into chunks of applicant ids, each chunk an
idempotent Celery task on the ``score`` queue.

Idempotent: score rows are unique per (run, applicant, model version) and are
inserted with ON CONFLICT DO NOTHING, so a redelivered chunk (a worker killed
mid-chunk, a visibility timeout) writes nothing twice. A chunk is claimed by a
conditional update; the first worker to finish it moves it to done and adds its
rows to the run's progress, so progress never counts a chunk twice. A cancelled
run's chunks stop at their next claim; resuming re-enqueues the chunks not done.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import orjson
import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from scoring.metrics import scores_written
from scoring.models import Applicant, BatchRun, ModelVersion, Portfolio, Score, ScoreChunk
from scoring.services.datasets import portfolio_data
from scoring.services.errors import ConflictError
from scoring.services.policy import policy_current, policy_in_force, policy_of
from scoring.services.scoring import decide_rows, scorable_version, score_from_values, score_values

logger = logging.getLogger(__name__)

DEFAULT_CHUNK = 5000


class BatchError(ConflictError, ValueError):
    """The batch run cannot start, resume or be cancelled in its current state."""


def _chunk_bounds(ids: np.ndarray, size: int) -> list[tuple[int, int, int]]:
    return [
        (int(ids[i]), int(ids[min(i + size, len(ids)) - 1]), min(size, len(ids) - i)) for i in range(0, len(ids), size)
    ]


@transaction.atomic
def batch_run_create(
    *,
    portfolio: Portfolio,
    model_version: ModelVersion | None = None,
    challenger: ModelVersion | None = None,
    requested_by=None,
    trigger: str = "command",
    chunk_size: int = DEFAULT_CHUNK,
) -> BatchRun:
    from scoring.services.registry import RegistryError, challenger_check

    version = scorable_version(portfolio=portfolio, model_version=model_version)
    try:
        challenger_check(portfolio=portfolio, challenger=challenger, champion=version)
    except RegistryError as error:
        raise BatchError(str(error)) from None
    if chunk_size < 1:
        raise BatchError("chunk_size must be positive")
    ids = np.fromiter(
        Applicant.objects.filter(portfolio=portfolio).order_by("id").values_list("id", flat=True), dtype=np.int64
    )
    bounds = _chunk_bounds(ids, chunk_size)
    # Every row of the run is decided under the policy in force now, even if it changes mid-run.
    policy = policy_current(portfolio=portfolio)
    run = BatchRun.objects.create(
        portfolio=portfolio, model_version=version, challenger_version=challenger, trigger=trigger, policy_version=policy,
        chunk_size=chunk_size, rows_total=len(ids), chunks_total=len(bounds), requested_by=requested_by,
    )  # fmt: skip
    ScoreChunk.objects.bulk_create(
        [
            ScoreChunk(run=run, index=i, first_applicant_id=a, last_applicant_id=b, rows=n)
            for i, (a, b, n) in enumerate(bounds)
        ],
        batch_size=5000,
    )
    if not bounds:
        BatchRun.objects.filter(pk=run.pk).update(status=BatchRun.STATUS_DONE, finished_at=timezone.now())
        run.refresh_from_db()
    _audit("batch.create", run, requested_by, model_version=version.pk, challenger=challenger and challenger.pk,
           trigger=trigger, rows=len(ids), policy_version=policy.version)  # fmt: skip
    return run


def _audit(action: str, run: BatchRun, actor, **details) -> None:
    from scoring.audit import audit_record

    audit_record(
        action=action, actor=actor, portfolio_id=run.portfolio_id, object_type="batchrun", object_ids=[run.pk],
        details=details,
    )  # fmt: skip


def _enqueue(run: BatchRun, *, only_pending: bool = False) -> int:
    from scoring.tasks import score_chunk

    chunks = ScoreChunk.objects.filter(run=run).exclude(status="done")
    if only_pending:
        chunks = chunks.filter(status="pending")
    chunk_ids = list(chunks.values_list("id", flat=True))
    for chunk_id in chunk_ids:
        score_chunk.delay(chunk_id)
    return len(chunk_ids)


def batch_run_start(**kwargs) -> BatchRun:
    """Create a run and enqueue its chunks (after the transaction commits)."""
    with transaction.atomic():
        run = batch_run_create(**kwargs)
        if run.chunks_total:
            transaction.on_commit(lambda: _enqueue(run))
    return run


def batch_run_cancel(*, run: BatchRun, actor=None) -> BatchRun:
    BatchRun.objects.filter(pk=run.pk, status__in=[BatchRun.STATUS_PENDING, BatchRun.STATUS_RUNNING]).update(
        status=BatchRun.STATUS_CANCELLED
    )
    run.refresh_from_db()
    _audit("batch.cancel", run, actor, status=run.status)
    return run


def batch_run_resume(*, run: BatchRun, actor=None) -> BatchRun:
    """Re-enqueue every chunk not done (after a cancel, or chunks lost with their worker)."""
    with transaction.atomic():
        BatchRun.objects.filter(pk=run.pk).exclude(status=BatchRun.STATUS_DONE).update(status=BatchRun.STATUS_RUNNING)
        ScoreChunk.objects.filter(run=run, status="running").update(status="pending")
        transaction.on_commit(lambda: _enqueue(run))
    run.refresh_from_db()
    _audit("batch.resume", run, actor, status=run.status)
    return run


def batch_runs_recover() -> int:
    """Re-enqueue the unfinished chunks of unfinished runs: stale claims (a worker was
    killed) go back to pending. Runs at worker start and every minute from beat.
    Extra messages are harmless: a chunk is claimed once and its rows written once."""
    enqueued = 0
    for run in BatchRun.objects.filter(status__in=[BatchRun.STATUS_PENDING, BatchRun.STATUS_RUNNING]):
        ScoreChunk.objects.filter(run=run, status="running", claimed_at__lt=_stale_before()).update(status="pending")
        enqueued += _enqueue(run, only_pending=True)
    return enqueued


def _stale_before():
    # A chunk takes seconds; one claimed longer ago than this lost its worker.
    return timezone.now() - timezone.timedelta(seconds=settings.SCORE_CHUNK_STALE_SECONDS)


def _claim(chunk_id: int) -> ScoreChunk | None:
    """pending → running; a stale running claim (its worker died) may be taken over."""
    claimed = ScoreChunk.objects.filter(
        Q(status="pending") | Q(status="running", claimed_at__lt=_stale_before()), pk=chunk_id
    ).update(status="running", claimed_at=timezone.now(), attempts=F("attempts") + 1)
    if not claimed:
        return None
    return ScoreChunk.objects.select_related(
        "run__portfolio__schema", "run__model_version", "run__challenger_version"
    ).get(pk=chunk_id)


_SCORE_COLUMNS = [
    "portfolio_id", "applicant_id", "run_id", "model_version_id", "is_shadow", "pd", "score", "decision",
    "base_log_odds", "reasons", "contributions", "input_features", "input_history", "input_hash",
    "requested_by_id", "policy_version_id", "created_at",
]  # fmt: skip


def _json_text(value) -> str:
    # orjson: about ten times the standard library's speed on these lists of floats.
    return orjson.dumps(value).decode()


def _insert(scores: list[dict]) -> None:
    """Write a chunk's scores; rows already there (a chunk taken over from a stalled
    worker that committed after all) are skipped.

    On PostgreSQL the rows go straight into the table by COPY, inside a savepoint:
    an ORM bulk insert spends most of a chunk's time building and parsing a
    statement with 80,000 parameters. COPY cannot skip conflicts, so when one of
    the rows exists already the savepoint is rolled back and the chunk goes
    through a temporary table and INSERT ... ON CONFLICT DO NOTHING instead."""
    if connection.vendor != "postgresql":
        Score.objects.bulk_create([score_from_values(v) for v in scores], batch_size=2000, ignore_conflicts=True)
        return
    now = timezone.now()
    rows = [
        (
            s["portfolio_id"], s["applicant_id"], s["run_id"], s["model_version_id"], s["is_shadow"], s["pd"],
            s["score"], s["decision"], s["base_log_odds"], _json_text(s["reasons"]), _json_text(s["contributions"]),
            s["input_features_json"], s["input_history"], s["input_hash"], s["requested_by_id"], s["policy_version_id"],
            now,
        )
        for s in scores
    ]  # fmt: skip
    table = Score._meta.db_table
    columns = ", ".join(_SCORE_COLUMNS)
    try:
        with transaction.atomic():
            _copy(rows, f"{table} ({columns})")
        return
    except psycopg.errors.UniqueViolation:
        logger.info("chunk rows exist already; writing the missing ones only")
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS _score_chunk ON COMMIT DELETE ROWS "
            f"AS SELECT {columns} FROM {table} WITH NO DATA"
        )
        _copy(rows, f"_score_chunk ({columns})")
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _score_chunk "
            "ON CONFLICT (run_id, applicant_id, model_version_id) DO NOTHING"
        )


def _copy(rows: list[tuple], target: str) -> None:
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def score_chunk_run(*, chunk_id: int) -> str:
    """Score one chunk. Safe to run twice: rows already written are skipped."""
    chunk = ScoreChunk.objects.select_related("run").filter(pk=chunk_id).first()
    if chunk is None or chunk.status == "done":
        return "skipped"
    if chunk.run.status in (BatchRun.STATUS_CANCELLED, BatchRun.STATUS_FAILED):
        return "cancelled"
    chunk = _claim(chunk_id)
    if chunk is None:
        # Running elsewhere (or done meanwhile). The caller retries later: if that
        # worker died, the claim will be stale by then and this message takes over.
        return "busy"
    run = chunk.run
    BatchRun.objects.filter(pk=run.pk, status=BatchRun.STATUS_PENDING).update(
        status=BatchRun.STATUS_RUNNING, started_at=timezone.now()
    )
    started = time.perf_counter()
    version = run.model_version
    data = portfolio_data(
        portfolio=run.portfolio,
        with_history=ModelVersion.KIND_CNN in (version.kind, getattr(run.challenger_version, "kind", None)),
        id_range=(chunk.first_applicant_id, chunk.last_applicant_id),
    )
    scores = []
    policy = policy_of(run.policy_version_id) if run.policy_version_id else policy_in_force(run.portfolio)
    for model, shadow in ((version, False), (run.challenger_version, True)):
        if model is None:
            continue
        _, rows = decide_rows(version=model, data=data, mode="batch", policy=policy)
        scores += score_values(
            version=model, data=data, features=data.features, rows=rows, run_id=run.pk, is_shadow=shadow
        )
    with transaction.atomic():
        _insert(scores)
        finished = ScoreChunk.objects.filter(pk=chunk.pk, status="running").update(
            status="done", finished_at=timezone.now(), seconds=time.perf_counter() - started
        )
        if finished:
            BatchRun.objects.filter(pk=run.pk).update(
                rows_done=F("rows_done") + chunk.rows, chunks_done=F("chunks_done") + 1
            )
    if finished:
        for model in (version, run.challenger_version):
            if model is not None:
                scores_written(portfolio=run.portfolio, version=model, count=len(data), mode="batch")
        _finish_if_complete(run.pk)
    return "done"


def _finish_if_complete(run_id: int) -> None:
    run = BatchRun.objects.get(pk=run_id)
    if run.chunks_done < run.chunks_total:
        return
    differ = None
    if run.challenger_version_id:
        differ = _decisions_differ(run)
    finished = BatchRun.objects.filter(pk=run_id, status=BatchRun.STATUS_RUNNING).update(
        status=BatchRun.STATUS_DONE, finished_at=timezone.now(), decisions_differ=differ
    )
    if finished and run.trigger == "nightly":
        from scoring.services.monitoring import monitoring_enqueue

        monitoring_enqueue(run=run)  # the one worker that finished the run queues the monitoring


def _decisions_differ(run: BatchRun) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM scoring_score c JOIN scoring_score s ON s.run_id = c.run_id AND s.applicant_id = c.applicant_id "
            "WHERE c.run_id = %s AND c.is_shadow = %s AND s.is_shadow = %s AND c.decision <> s.decision",
            [run.pk, False, True],
        )
        return int(cursor.fetchone()[0])


def batch_run_progress(run: BatchRun) -> dict:
    """Rows done/total, rows/s and ETA, for the console, the API and the portal."""
    elapsed = ((run.finished_at or timezone.now()) - run.started_at).total_seconds() if run.started_at else 0.0
    rate = run.rows_done / elapsed if elapsed > 0 else 0.0
    remaining = run.rows_total - run.rows_done
    return {
        "status": run.status,
        "rows_done": run.rows_done,
        "rows_total": run.rows_total,
        "chunks_done": run.chunks_done,
        "chunks_total": run.chunks_total,
        "fraction": run.rows_done / run.rows_total if run.rows_total else 1.0,
        "rows_per_second": round(rate, 1),
        "eta_seconds": round(remaining / rate, 1) if rate > 0 and remaining else 0.0,
        "elapsed_seconds": round(elapsed, 1),
        "decisions_differ": run.decisions_differ,
    }


def nightly_runs_start() -> list[BatchRun]:
    """Rescore every active portfolio that has a champion (its challenger, if any,
    shadow-scores the same rows). Portfolios with a run still going are skipped."""
    from scoring.services.registry import RegistryError, challenger_check, champion_of

    started = []
    for portfolio in Portfolio.objects.filter(is_active=True).select_related("challenger_version"):
        if champion_of(portfolio) is None:
            continue
        if BatchRun.objects.filter(
            portfolio=portfolio, status__in=[BatchRun.STATUS_PENDING, BatchRun.STATUS_RUNNING]
        ).exists():
            logger.warning("nightly run for %s skipped: a run is still going", portfolio)
            continue
        challenger = portfolio.challenger_version
        try:
            challenger_check(portfolio=portfolio, challenger=challenger, champion=champion_of(portfolio))
        except RegistryError as error:
            # The champion's run still goes ahead: the nightly decisions must not wait on a bad challenger.
            logger.warning("nightly run for %s: challenger dropped: %s", portfolio, error)
            challenger = None
        started.append(batch_run_start(portfolio=portfolio, challenger=challenger, trigger="nightly"))
    return started

"""Batch scoring runs: a portfolio split into chunks of applicant ids, each chunk an
idempotent Celery task on the ``score`` queue.

Idempotent: score rows are unique per (run, applicant, model version) and are
inserted with ON CONFLICT DO NOTHING, so a redelivered chunk (a worker killed
mid-chunk, a visibility timeout) writes nothing twice. A chunk is claimed by a
conditional update that also bumps ``attempts``: the claim's fencing token. The
chunk's rows, its move to done, the run's progress and, for the last chunk, the
run's finish are one transaction that first locks the chunk row and checks the
token, so a stalled owner whose chunk was taken over has its late commit refused.
Finishing cannot be skipped: if it fails, the whole chunk rolls back and runs again.
A cancelled run's chunks stop at their next claim; resuming re-enqueues the chunks
not done. Stale claims and lost messages are repaired by the supervisor
(``scoring.services.supervisor``).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import orjson
import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
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


def chunks_enqueue(chunk_ids: list[int]) -> int:
    """Send one message per chunk and note when (the supervisor re-sends lost ones)."""
    from scoring.tasks import score_chunk

    ScoreChunk.objects.filter(pk__in=chunk_ids).update(enqueued_at=timezone.now())
    for chunk_id in chunk_ids:
        score_chunk.delay(chunk_id)
    return len(chunk_ids)


def _enqueue(run: BatchRun, *, only_pending: bool = False) -> int:
    chunks = ScoreChunk.objects.filter(run=run).exclude(status="done")
    if only_pending:
        chunks = chunks.filter(status="pending")
    return chunks_enqueue(list(chunks.values_list("id", flat=True)))


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
    """Re-enqueue the unfinished chunks of unfinished runs: stale claims, lost messages,
    complete runs not finished. The supervisor's batch repairs, kept under the name
    the worker start-up and older beat schedules call."""
    from scoring.services.supervisor import chunks_lost_requeue, chunks_stale_requeue, runs_complete_finish

    return chunks_stale_requeue() + chunks_lost_requeue() + runs_complete_finish()


def stale_before():
    # A chunk takes seconds; one claimed longer ago than this lost its worker.
    return timezone.now() - timezone.timedelta(seconds=settings.SCORE_CHUNK_STALE_SECONDS)


def _claim(chunk_id: int) -> ScoreChunk | None:
    """pending → running; a stale running claim (its worker died) may be taken over.
    The new ``attempts`` is this claim's fencing token."""
    claimed = ScoreChunk.objects.filter(
        Q(status="pending") | Q(status="running", claimed_at__lt=stale_before()), pk=chunk_id
    ).update(status="running", claimed_at=timezone.now(), attempts=F("attempts") + 1)
    if not claimed:
        return None
    return ScoreChunk.objects.select_related(
        "run__portfolio__schema", "run__model_version", "run__challenger_version"
    ).get(pk=chunk_id)


def _write_timeouts() -> None:
    """Bound this write transaction on PostgreSQL: a stalled owner (a paused process,
    a lost network) has its transaction cancelled, and its row locks released, before
    its claim is stale; a writer waits a few seconds at most for a lock, then retries."""
    if connection.vendor != "postgresql":
        return
    write_ms = settings.SCORE_WRITE_TIMEOUT_SECONDS * 1000
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true), "
            "set_config('idle_in_transaction_session_timeout', %s, true)",
            [str(write_ms), str(settings.SCORE_LOCK_TIMEOUT_SECONDS * 1000), str(write_ms)],
        )


def _claim_held(chunk: ScoreChunk) -> bool:
    """Lock the chunk row and check the claim is still ours (no takeover since)."""
    return (
        ScoreChunk.objects.select_for_update().filter(pk=chunk.pk, status="running", attempts=chunk.attempts).exists()
    )


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
        # Running elsewhere (or done meanwhile). If that worker died, the supervisor
        # sends the chunk again once its claim is stale.
        return "busy"
    try:
        return _score_claimed(chunk)
    except (OperationalError, InterfaceError):
        _claim_release(chunk)
        raise


def _claim_release(chunk: ScoreChunk) -> None:
    """After a transient error, give the claim back so the task's retry can take the
    chunk at once instead of after the stale limit; if the database is still away,
    the claim ages and the supervisor re-queues it."""
    try:
        ScoreChunk.objects.filter(pk=chunk.pk, status="running", attempts=chunk.attempts).update(status="pending")
    except (OperationalError, InterfaceError):
        logger.info("chunk %s: claim not released (database unreachable); it will go stale", chunk.pk)


def _score_claimed(chunk: ScoreChunk) -> str:
    run = chunk.run
    BatchRun.objects.filter(pk=run.pk, status=BatchRun.STATUS_PENDING).update(
        status=BatchRun.STATUS_RUNNING, started_at=timezone.now()
    )
    started = time.perf_counter()
    version = run.model_version
    data = portfolio_data(
        portfolio=run.portfolio,
        with_history=version.family.needs_history
        or bool(run.challenger_version and run.challenger_version.family.needs_history),
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
        _write_timeouts()
        if not _claim_held(chunk):
            # Taken over after this worker stalled past the stale limit: the new owner
            # writes the rows; this late attempt writes nothing.
            logger.warning("chunk %s: claim %s was taken over; nothing written", chunk.pk, chunk.attempts)
            return "taken over"
        _insert(scores)
        ScoreChunk.objects.filter(pk=chunk.pk).update(
            status="done", finished_at=timezone.now(), seconds=time.perf_counter() - started
        )
        progress = {"rows_done": F("rows_done") + chunk.rows, "chunks_done": F("chunks_done") + 1}
        if run.challenger_version_id:
            progress["decisions_differ"] = Coalesce(F("decisions_differ"), 0) + _differing(scores)
        BatchRun.objects.filter(pk=run.pk).update(**progress)
        # Part of the last chunk's transaction: a run is never left complete but unfinished.
        batch_run_finish(run_id=run.pk)
    for model in (version, run.challenger_version):
        if model is not None:
            scores_written(portfolio=run.portfolio, version=model, count=len(data), mode="batch")
    return "done"


def batch_run_finish(*, run_id: int) -> bool:
    """Finish a run whose chunks are all done; idempotent (True when this call did it).
    Called in the last chunk's transaction, and by the supervisor for older runs."""
    finished = BatchRun.objects.filter(
        pk=run_id,
        status__in=[BatchRun.STATUS_PENDING, BatchRun.STATUS_RUNNING],
        chunks_done__gte=F("chunks_total"),
    ).update(status=BatchRun.STATUS_DONE, finished_at=timezone.now())
    if finished:
        run = BatchRun.objects.get(pk=run_id)
        if run.challenger_version_id and run.decisions_differ is None:
            BatchRun.objects.filter(pk=run_id).update(decisions_differ=_decisions_differ(run))
        if run.trigger == "nightly":
            from scoring.services.monitoring import monitoring_enqueue

            # It queues on the commit of the one transaction that finished the run (a second
            # on_commit around it would defer the sending to a transaction that never commits).
            monitoring_enqueue(run=run)
    return bool(finished)


def _differing(scores: list[dict]) -> int:
    """Applicants of a chunk whose challenger decision differs from the champion's."""
    champion = {s["applicant_id"]: s["decision"] for s in scores if not s["is_shadow"]}
    return sum(1 for s in scores if s["is_shadow"] and champion.get(s["applicant_id"]) != s["decision"])


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
        # The run is pinned to this version from its start, even if it retires meanwhile.
        "model_version": run.model_version_id,
        "model_retired_at": run.model_retired_at.isoformat() if run.model_retired_at else None,
    }


def nightly_runs_start() -> list[BatchRun]:
    """Rescore every active portfolio that has a champion (its challenger, if any,
    shadow-scores the same rows). Portfolios with a run still going are skipped."""
    from scoring.services.registry import RegistryError, challenger_check, champion_of

    started = []
    for portfolio in Portfolio.objects.filter(is_active=True).select_related("challenger_version"):
        if champion_of(portfolio) is None:
            continue
        going = BatchRun.objects.filter(
            portfolio=portfolio, status__in=[BatchRun.STATUS_PENDING, BatchRun.STATUS_RUNNING]
        )
        for run_id in going.values_list("id", flat=True):
            batch_run_finish(run_id=run_id)  # a complete run left unfinished does not block the night
        if going.exists():
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

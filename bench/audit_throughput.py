"""Audited writes per second with 8 concurrent writers: the old design (one advisory
lock around "read the chain head, hash, insert") against the new one (a plain INSERT;
a sealer process seals in signed Merkle batches meanwhile), in the same run, on the
same fresh PostgreSQL database; the whole chain (old events, then sealed ones) is
verified after.

    .venv/bin/python bench/audit_throughput.py [--writers 8] [--events 400] [--database riskapp_audit_bench]

The old writer lives only here (``old_audit_record``: the code of main before the
sealer, line for line), so no caller of the service can reach it. Each event is its
own transaction, as an audited request's would be. Writers are processes, not
threads (a web server's workers are). Results: bench/results/audit_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _env import bench_environment  # noqa: E402  (bench/ is on sys.path)

RESULTS = ROOT / "bench" / "results" / "audit_throughput.json"
CHAIN_LOCK_KEY = 0x5249534B41554454  # the old global lock ("RISKAUDT")


def old_audit_record(**fields):
    """main before the sealer: every writer takes one advisory lock, reads the head."""
    from django.db import connection, transaction
    from django.utils import timezone

    from scoring.audit import GENESIS_HASH, event_hash
    from scoring.models import AuditEvent

    event = AuditEvent(**fields)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        event.seq, event.prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        event.occurred_at = timezone.now()
        event.hash = event_hash(event)
        event.save(force_insert=True)
    return event


def new_audit_record(**fields):
    from scoring.audit import audit_record

    return audit_record(**fields)


WRITERS = {"old": old_audit_record, "new": new_audit_record}


def writer(design: str, n: int, index: int, barrier, done) -> None:
    from django.db import connection

    record = WRITERS[design]
    barrier.wait()
    for i in range(n):
        record(action="applicant.view", portfolio_id=1, object_type="applicant", object_ids=[index, i],
               details={"writer": index, "i": i})  # fmt: skip
    connection.close()
    done.put(time.perf_counter())


def sealer(stop, sealed_at) -> None:
    """The beat task's work, back to back while the writers write (beat runs it every 5 s)."""
    from django.db import connection

    from scoring.audit import audit_seal

    total = 0
    while not stop.is_set():
        total += audit_seal()
        time.sleep(0.05)
    total += audit_seal()
    connection.close()
    sealed_at.put((total, time.perf_counter()))


def run(design: str, writers: int, per_writer: int) -> dict:
    from django.db import connection

    from scoring.models import AuditEvent

    connection.close()  # never share a connection with the children
    ctx = mp.get_context("fork")
    barrier, done, stop, sealed_at = ctx.Barrier(writers + 1), ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(design, per_writer, i, barrier, done)) for i in range(writers)]
    seal_proc = ctx.Process(target=sealer, args=(stop, sealed_at)) if design == "new" else None
    for proc in procs:
        proc.start()
    if seal_proc is not None:
        seal_proc.start()
    load_before = os.getloadavg()
    barrier.wait()
    started = time.perf_counter()
    finished = max(done.get() for _ in procs)
    for proc in procs:
        proc.join()
    result = {"design": design, "writers": writers, "events": writers * per_writer}
    result["write_seconds"] = round(finished - started, 3)
    result["writes_per_second"] = round(result["events"] / (finished - started), 1)
    if seal_proc is not None:
        stop.set()
        sealed, sealed_time = sealed_at.get()
        seal_proc.join()
        result["sealed"] = sealed
        # Writes until the last of them was sealed: what the chain keeps up with.
        result["sealed_per_second"] = round(result["events"] / (sealed_time - started), 1)
    result["loadavg_before"] = [round(x, 2) for x in load_before]
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["unsealed_left"] = AuditEvent.objects.filter(seq__isnull=True).count()
    connection.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--events", type=int, default=400, help="events per writer and design")
    parser.add_argument("--database", default="riskapp_audit_bench")
    args = parser.parse_args()

    pg = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["dropdb", *pg, "--if-exists", args.database], check=True)
    subprocess.run(["createdb", *pg, args.database], check=True)
    bench_environment(args.database)
    os.environ.setdefault("AUDIT_HEAD_FILE", str(ROOT / "var" / "bench" / f"audit-heads-{os.getpid()}.jsonl"))
    import django

    django.setup()
    from django.core.management import call_command

    from scoring.audit import append_only_problems, audit_log_verify

    call_command("migrate", verbosity=0)
    assert not append_only_problems()
    # Old first: its events carry the pre-sealer hash form; the sealer continues the chain.
    results = [run("old", args.writers, args.events), run("new", args.writers, args.events)]
    verify_started = time.perf_counter()
    verified = audit_log_verify()
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "results": results,
        "ratio_writes": round(results[1]["writes_per_second"] / results[0]["writes_per_second"], 2),
        "ratio_sealed": round(results[1]["sealed_per_second"] / results[0]["writes_per_second"], 2),
        "verify": {
            "ok": verified.ok,
            "problem": verified.problem,
            "events_checked": verified.events_checked,
            "seals_verified": verified.seals_verified,
            "seconds": round(time.perf_counter() - verify_started, 2),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for row in results:
        print(
            f"{row['design']:>3}: {row['events']} events, {args.writers} writers: {row['writes_per_second']:8.1f} "
            f"writes/s"
            + (f", all sealed at {row['sealed_per_second']:.1f}/s" if "sealed_per_second" in row else "")
            + f"  (load average {row['loadavg_before']} -> {row['loadavg_after']})"
        )
    print(f"new / old: {report['ratio_writes']}x written, {report['ratio_sealed']}x written and sealed")
    print(f"chain verified: {verified.ok} ({verified.events_checked} events, {verified.seals_verified} seals) "
          f"{verified.problem}")  # fmt: skip
    return 0 if verified.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`make bench`: every published figure, one script each; results land in bench/results/*.json.

The PostgreSQL benches need a local PostgreSQL (DATABASE host 127.0.0.1, user postgres;
scale_out.py also Redis on 127.0.0.1:6379); they are skipped with a message when none answers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("cv_german.py", []),
    ("synthetic_models.py", []),
    ("explain_speed.py", []),
    ("load_synthetic.py", ["--count", "1000000"]),
    ("scale_out.py", ["--count", "100000"]),
    ("batch_e2e.py", []),  # scores the database load_synthetic.py just loaded
    ("batch_breakdown.py", ["--kind", "mlp"]),
    ("batch_breakdown.py", ["--kind", "cnn"]),
    ("realtime_latency.py", []),
    ("list_latency.py", []),
    ("audit_throughput.py", []),
]
# Benches that need the local PostgreSQL (scale_out.py and batch_e2e.py also the local Redis).
NEEDS_POSTGRES = {
    "load_synthetic.py", "scale_out.py", "batch_e2e.py", "batch_breakdown.py", "realtime_latency.py", "list_latency.py",
    "audit_throughput.py",
}  # fmt: skip


def postgres_available() -> bool:
    return (
        shutil.which("pg_isready") is not None
        and subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0
    )


def main() -> int:
    failed = []
    for script, args in BENCHES:
        if script in NEEDS_POSTGRES and not postgres_available():
            print(f"== {script}: skipped (no PostgreSQL on 127.0.0.1)")
            continue
        print(f"== {script} {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script), *args]).returncode != 0:
            failed.append(script)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""A private PostgreSQL cluster and Redis server for the fault tests, on ports of their
own (default 15701 and 15702), so the tests can stop, kill and restart them without
touching the machine's shared services.

``python -m tests.faults.servers COMMAND...`` starts both, runs COMMAND with
DATABASE_URL, CELERY_BROKER_URL and the FAULT_* variables the tests use to torture
the servers, then stops both (``make fault-tests``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("FAULT_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(args: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI containers often are.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PrivatePostgres:
    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.data = root / "pg"
        self.log = root / "pg.log"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def start(self) -> None:
        subprocess.run(
            _as_postgres([
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
            ]),
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: as a crash (connections cut, no checkpoint)."""
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
            check=False, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/riskapp_faults"


class PrivateRedis:
    """Without persistence: a restart comes back empty, every message lost."""

    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root)],
            stdout=(self.root / "redis.log").open("a"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise RuntimeError("private redis did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def main(command: list[str]) -> int:
    root = Path(tempfile.mkdtemp(prefix="riskapp-faults-"))
    postgres = PrivatePostgres(root, int(os.environ.get("FAULT_PG_PORT", "15701")))
    redis = PrivateRedis(root, int(os.environ.get("FAULT_REDIS_PORT", "15702")))
    postgres.init()
    postgres.start()
    redis.start()
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "CELERY_BROKER_URL": redis.url,
        "FAULT_ROOT": str(root),
        "FAULT_PG_PORT": str(postgres.port),
        "FAULT_REDIS_PORT": str(redis.port),
    }
    if not env.get("PII_ENCRYPTION_KEYS"):
        from cryptography.fernet import Fernet

        env["PII_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()  # synthetic people only
    try:
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        # The tests restart the servers themselves: stop whatever runs now.
        subprocess.run(["redis-cli", "-p", str(redis.port), "shutdown", "nosave"], capture_output=True)
        redis.kill()
        postgres.stop("fast")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A console progress bar with rate and ETA, without dependencies."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, total: int, *, label: str = "", unit: str = "rows", stream=None, width: int = 30):
        self.total = max(int(total), 0)
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.last_draw = 0.0

    def update(self, done: int, *, suffix: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_draw < 0.2 and done < self.total:
            return
        self.last_draw = now
        elapsed = now - self.started
        fraction = min(done / self.total, 1.0) if self.total else 1.0
        filled = int(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        # A rate measured over a fraction of a second is noise: show it once it means something.
        if elapsed >= 0.5 and done > 0:
            rate = done / elapsed
            speed = f"{rate:,.1f} {self.unit}/s ETA {max(self.total - done, 0) / rate:5.0f}s"
        else:
            speed = f"-- {self.unit}/s ETA    --"
        self.stream.write(
            f"\r{self.label} [{bar}] {done:,}/{self.total:,} {self.unit} {fraction:6.1%} {speed} {suffix}"
        )
        self.stream.flush()

    def finish(self, done: int | None = None, *, suffix: str = "") -> None:
        self.update(self.total if done is None else done, suffix=suffix, force=True)
        self.stream.write("\n")
        self.stream.flush()


def refresh_patiently(obj, *, stream=None, budget: float | None = None) -> None:
    """``obj.refresh_from_db()`` that waits out a database blip: a command following a
    run or a training must not die while the work goes on without it. Gives up (raises)
    after ``budget`` seconds (TASK_RETRY_BUDGET_SECONDS) of errors in a row."""
    from django.conf import settings
    from django.db import InterfaceError, OperationalError, close_old_connections

    budget = settings.TASK_RETRY_BUDGET_SECONDS if budget is None else budget
    first_error = None
    while True:
        try:
            obj.refresh_from_db()
            return
        except (OperationalError, InterfaceError) as exc:
            first_error = first_error or time.monotonic()
            if time.monotonic() - first_error > budget:
                raise
            (stream or sys.stderr).write(f"\ndatabase unreachable ({exc.__class__.__name__}); waiting...\n")
            close_old_connections()
            time.sleep(2)

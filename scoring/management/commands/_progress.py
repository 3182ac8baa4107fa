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
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        fraction = min(done / self.total, 1.0) if self.total else 1.0
        filled = int(self.width * fraction)
        eta = (self.total - done) / rate if rate > 0 and self.total else 0.0
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {done:,}/{self.total:,} {self.unit} {fraction:6.1%} "
            f"{rate:,.0f} {self.unit}/s ETA {eta:5.0f}s {suffix}"
        )
        self.stream.flush()

    def finish(self, done: int | None = None, *, suffix: str = "") -> None:
        self.update(self.total if done is None else done, suffix=suffix, force=True)
        self.stream.write("\n")
        self.stream.flush()

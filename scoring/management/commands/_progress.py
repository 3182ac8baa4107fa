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

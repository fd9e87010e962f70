"""Progress of long work (days simulated, dates of a backfill) as log lines: how far, how long it has
taken, and about how long is left.

Log lines rather than a redrawn terminal bar, so that the same progress reads well in a terminal, in
an Airflow task log and in a file; ``every`` keeps a fast loop from flooding them::

    progress = Progress(365, "simulate", unit="days")
    for month in months:
        ...
        progress.advance(days_in(month), note=f"up to {month}")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """``4s``, ``3m 05s``, ``1h 02m``: short, and precise enough for a wait."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class Progress:
    """``total`` units of work named ``what``; :meth:`advance` (or :meth:`update`) logs a line like
    ``simulate: 90/365 days (25%), 12s elapsed, about 37s left (up to 2025-04-01)``.

    The time left is the rate so far applied to what remains: a straight line, good enough for work
    made of similar pieces. Lines come at most every ``every`` seconds, except the last one.
    """

    def __init__(
        self,
        total: float,
        what: str,
        *,
        unit: str = "",
        every: float = 0.0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total <= 0:
            raise ValueError(f"Progress of {what!r} needs a total above 0, got {total}")
        self.total = total
        self.what = what
        self.unit = unit
        self.every = every
        self.done: float = 0
        self._log = logger or log
        self._clock = clock
        self._started = clock()
        self._last_line: float | None = None

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    @property
    def remaining(self) -> float | None:
        """Seconds left at the rate so far (None before any work is done)."""
        if self.done <= 0:
            return None
        return self.elapsed / self.done * (self.total - self.done)

    def line(self, note: str = "") -> str:
        unit = f" {self.unit}" if self.unit else ""
        text = (
            f"{self.what}: {_count(self.done)}/{_count(self.total)}{unit} "
            f"({self.done / self.total:.0%}), {duration(self.elapsed)} elapsed"
        )
        if self.done >= self.total:
            text += ", done"
        elif (remaining := self.remaining) is not None:
            text += f", about {duration(remaining)} left"
        return text + (f" ({note})" if note else "")

    def update(self, done: float, note: str = "") -> None:
        """Set how much is done and log a line (unless one was logged less than ``every`` s ago)."""
        self.done = min(done, self.total)
        now = self._clock()
        finished = self.done >= self.total
        if finished or self._last_line is None or now - self._last_line >= self.every:
            self._last_line = now
            self._log.info("%s", self.line(note))

    def advance(self, step: float = 1, note: str = "") -> None:
        """``step`` more units done."""
        self.update(self.done + step, note)


def _count(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"

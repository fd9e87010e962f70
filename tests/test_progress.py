"""The progress helper: how far, how long so far, about how long left, without flooding the log."""

from __future__ import annotations

import logging

import pytest

from boomerang.progress import Progress, duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (4.4, "4s"), (59.6, "1m 00s"), (185, "3m 05s"), (3720, "1h 02m")]
)
def test_durations_read_like_a_wait(seconds, text):
    assert duration(seconds) == text


def test_elapsed_and_time_left_follow_the_rate_so_far(caplog):
    clock = Clock()
    progress = Progress(365, "simulate", unit="days", clock=clock)
    clock.now += 10
    with caplog.at_level(logging.INFO, logger="boomerang.progress"):
        progress.advance(73, note="world up to 2025-03-14")
        clock.now += 40
        progress.advance(292)
    first, last = (record.getMessage() for record in caplog.records)
    assert first == "simulate: 73/365 days (20%), 10s elapsed, about 40s left (world up to 2025-03-14)"
    assert last == "simulate: 365/365 days (100%), 50s elapsed, done"


def test_lines_come_at_most_every_so_often_but_the_last_always(caplog):
    clock = Clock()
    progress = Progress(100, "backfill", unit="dates", every=5, clock=clock)
    with caplog.at_level(logging.INFO, logger="boomerang.progress"):
        for _ in range(100):
            clock.now += 0.5
            progress.advance()
    lines = [record.getMessage() for record in caplog.records]
    assert 9 <= len(lines) <= 12 and lines[-1].startswith("backfill: 100/100 dates (100%)")


def test_a_total_of_nothing_is_refused():
    with pytest.raises(ValueError, match="above 0"):
        Progress(0, "simulate")

"""`make demo`'s summary of the grant amounts, on a small ledger written by hand: the rules, the
miles granted against predicted, and what the customers earned in the grant's window."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from conftest import make_settings
from ledger_helpers import holdout, open_warehouse, pregrant

from devtools.demo import amounts_summary

FIRST, SECOND = date(2025, 3, 1), date(2025, 3, 20)  # the first cohort's 14-day windows close on 03-15


def _earn(con, event_id: str, customer_id: str, at: datetime, points: int) -> None:
    con.execute(
        "insert into raw.mileage_events (event_id, customer_id, occurred_at, kind, points) "
        "values (?, ?, ?::timestamp at time zone 'UTC', 'earn', ?)",
        [event_id, customer_id, at, points],
    )


def _grant(customer: str, day: date, points: int, predicted: float | None, rule: str):
    return pregrant(
        customer,
        day,
        points=points,
        expiry_days=14,
        predicted_miles=predicted,
        mileage_model_version=None if predicted is None else "mm1",
        amount_rule=rule,
    )


def test_the_summary_sets_amounts_against_predicted_and_earned_miles(tmp_path):
    from boomerang.rewards import ledger

    settings = make_settings(tmp_path, BOOMERANG_CAMPAIGN="test-campaign")
    settings.warehouse_path.parent.mkdir(parents=True)
    con = open_warehouse(settings.warehouse_path)
    first = [
        _grant("C1", FIRST, 100, 100.0, "predicted"),
        _grant("C2", FIRST, 20, 5.0, "predicted (floor)"),
        _grant("C3", FIRST, 1000, 3000.0, "predicted (cap)"),
        _grant("C4", FIRST, 500, None, "flat (no prediction)"),
    ]
    control = holdout("C5", FIRST)
    control = ledger.Entry(
        **{
            **control.row(),
            "predicted_miles": 50.0,
            "mileage_model_version": "mm1",
            "amount_rule": "predicted",
        }
    )
    ledger.record(con, [*first, control], run_date=FIRST)
    ledger.record(con, [_grant("C6", SECOND, 200, 200.0, "predicted")], run_date=SECOND)
    for number, (customer, at, points) in enumerate(
        [
            ("C1", datetime(2025, 3, 2, 10), 60),
            ("C1", datetime(2025, 3, 14, 23), 30),
            ("C1", datetime(2025, 3, 15, 0), 1000),  # the day the window closed: not in it
            ("C1", datetime(2025, 2, 28, 12), 1000),  # before the grant
            ("C3", datetime(2025, 3, 5, 9), 2500),
            ("C5", datetime(2025, 3, 5, 9), 40),  # the holdout, in its cohort's window
            ("C6", datetime(2025, 3, 21, 9), 10),  # a window still open
        ]
    ):
        _earn(con, f"E{number}", customer, at, points)
    con.close()

    text = amounts_summary(settings)
    print(text)
    lines = {line.split("  ")[1].strip(): line for line in text.splitlines()[2:] if line.startswith("  ")}
    assert "5 pre-grants up to 2025-03-20" in text.splitlines()[0]
    assert lines["predicted"].split()[1:4] == ["2", "40%", "300"]
    assert lines["predicted (floor)"].split()[2:5] == ["1", "20%", "20"]
    assert lines["predicted (cap)"].split()[2:5] == ["1", "20%", "1,000"]
    assert lines["flat (no prediction)"].split()[3:6] == ["1", "20%", "500"]
    assert "bound by the floor 20%, by the cap 20%" in text
    # quantiles (linear): granted 20 100 200 500 1000; predicted 5 100 200 3000; earned 0 0 90 2500
    assert lines["miles granted"].split()[2:6] == ["52", "200", "800", "364"]
    assert lines["miles predicted"].split()[2:6] == ["34", "150", "2,160", "826"]
    assert lines["miles earned in the window"].split()[5:9] == ["0", "45", "1,777", "648"]
    assert "4 (those whose window has closed)" in lines["miles earned in the window"]
    # over closed windows: (90 + 0 + 2500) / (100 + 5 + 3000) granted, 40 / 50 held out
    assert "granted 0.83 (3 grants); held out: 0.80 (1 customer, no grant)" in text


def test_the_summary_before_any_decision(tmp_path):
    settings = make_settings(tmp_path)
    settings.warehouse_path.parent.mkdir(parents=True)
    open_warehouse(settings.warehouse_path).close()
    assert amounts_summary(settings) == "Grant amounts: no pre-grant decided yet."


@pytest.mark.slow
@pytest.mark.timeout(1500)  # builds the shared campaign when it runs first (see test_end_to_end_rewards)
def test_a_backfill_through_airflow_prints_a_progress_line_per_date(campaign):
    """`make demo`'s daily runs (and any dags_test_dates backfill) say after each date how long it
    took, how long the whole backfill has run and about how long is left."""
    lines = [
        line for line in campaign.log.read_text().splitlines() if line.startswith("[run] boomerang_daily: ")
    ]
    total = len(campaign.run_dates)
    assert len(lines) == total
    for number, (line, day) in enumerate(zip(lines, campaign.run_dates, strict=True), start=1):
        assert line.startswith(f"[run] boomerang_daily: {number}/{total} days ("), line
        assert " elapsed" in line and f"({day}: success in " in line, line
        assert ("about " in line and " left" in line) if number < total else ", done" in line, line

"""Building blocks for ledger tests: a bare warehouse, pre-grant entries, redemptions."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb

from boomerang.rewards import ledger
from boomerang.warehouse.schema import ensure_schemas

CAMPAIGN = "test-campaign"


def open_warehouse(path) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute("set TimeZone = 'UTC'")
    ensure_schemas(con)
    return con


def midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def pregrant(
    customer_id: str, as_of: date, points: int = 500, expiry_days: int = 30, **extra
) -> ledger.Entry:
    key = ledger.pregrant_key(CAMPAIGN, customer_id, as_of)
    decision = {
        "arm": "treatment",
        "grant_rule": "promotional",
        "churn_probability": 0.5,
        "model_version": "m-test",
        "channel": "email",
        "message": f"{points} miles",
    }
    return ledger.Entry(
        entry_key=key,
        kind="pregrant",
        customer_id=customer_id,
        lot_id=key,
        points=points,
        effective_at=midnight(as_of),
        expires_at=midnight(as_of) + timedelta(days=expiry_days),
        campaign_id=CAMPAIGN,
        policy_version="p-test",
        as_of_date=as_of,
        **(decision | extra),
    )


def holdout(customer_id: str, as_of: date) -> ledger.Entry:
    return ledger.Entry(
        entry_key=ledger.holdout_key(CAMPAIGN, customer_id, as_of),
        kind="holdout",
        customer_id=customer_id,
        points=0,
        effective_at=midnight(as_of),
        campaign_id=CAMPAIGN,
        policy_version="p-test",
        as_of_date=as_of,
        arm="control",
    )


def redeem(
    con: duckdb.DuckDBPyConnection, event_id: str, customer_id: str, at: datetime, points: int
) -> None:
    """A redemption as the loader would have put it in raw.mileage_events."""
    con.execute(
        "insert into raw.mileage_events (event_id, customer_id, occurred_at, kind, points) "
        "values (?, ?, ?::timestamp at time zone 'UTC', 'redeem', ?)",
        [event_id, customer_id, at, points],
    )


def entries(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, int]]:
    return {
        key: (kind, points)
        for key, kind, points in con.execute("select entry_key, kind, points from ledger.entries").fetchall()
    }

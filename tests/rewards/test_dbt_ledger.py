"""The rewards ledger in dbt: pre-grant lots, pre-grant-first allocation and the ledger marts.

A tiny world is loaded, a scenario of ledger entries and redemptions is written for real customers,
and the run is played as the daily pipeline plays it: the daily build, then today's grants and
clawbacks, then the ledger step (``dbt build --select tag:ledger``).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from types import SimpleNamespace

import pytest
from conftest import TINY_AS_OF, copy_warehouse, query

from boomerang import pipeline
from boomerang.rewards.ledger import (
    Entry,
    check_invariants,
    clawback_key,
    holdout_key,
    lot_positions,
    pregrant_key,
    record,
)
from boomerang.warehouse.db import connect
from boomerang.warehouse.dbt import run_dbt

pytestmark = pytest.mark.slow

AS_OF = TINY_AS_OF  # 2025-03-17
CAMPAIGN = "test-campaign"
EXPIRY = timedelta(days=30)

# lot name -> (decision date, points); each on its own customer (one open pre-grant per customer)
LOTS = {
    "split": (date(2025, 2, 10), 100),  # a redemption of 120 in the window: 100 pre-grant + 20 earn
    "partial": (date(2025, 2, 1), 100),  # 40 used, expired 03-03: 60 clawed back by today's run
    "after_expiry": (date(2025, 1, 20), 100),  # redeemed only after expiry; clawed back on 02-19
    "open": (date(2025, 3, 5), 100),  # 10 redeemed before the window (earn), 30 in it (pre-grant)
    "on_as_of": (date(2025, 3, 5), 100),  # redeemed on the as-of date itself: not used yet
    "unused": (date(2025, 2, 1), 100),  # never redeemed, expired 03-03: clawed back by today's run
    "today_1": (AS_OF, 200),  # granted by today's run, after the daily build
    "today_2": (AS_OF, 300),
}
HOLDOUTS = {"holdout_1": date(2025, 3, 5), "holdout_2": date(2025, 3, 5), "holdout_today": AS_OF}
# (lot name, points, when): redemptions written into raw.mileage_events
REDEMPTIONS = [
    ("split", 120, datetime(2025, 2, 20, 12)),
    ("partial", 40, datetime(2025, 2, 10, 9)),
    ("after_expiry", 30, datetime(2025, 2, 25, 15)),
    ("open", 10, datetime(2025, 3, 1, 8)),
    ("open", 30, datetime(2025, 3, 10, 18)),
    ("on_as_of", 25, datetime.combine(AS_OF, time(10))),
]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def _pregrant(name: str, customer_id: str) -> Entry:
    decided, points = LOTS[name]
    return Entry(
        entry_key=pregrant_key(CAMPAIGN, customer_id, decided),
        kind="pregrant",
        customer_id=customer_id,
        points=points,
        effective_at=_midnight(decided),
        expires_at=_midnight(decided) + EXPIRY,
        campaign_id=CAMPAIGN,
        policy_version="test-policy",
        as_of_date=decided,
        lot_id=pregrant_key(CAMPAIGN, customer_id, decided),
        arm="treatment",
        grant_rule="promotional",
        churn_probability=0.6,
        model_version="test-model",
        reason_1="days_since_last_purchase",
        expected_value=12.5,
        decision_rank=1,
        budget_used_points=points,
        tenure_days=100,
        channel="email",
        message="test grant",
    )


def _holdout(name: str, customer_id: str) -> Entry:
    decided = HOLDOUTS[name]
    return Entry(
        entry_key=holdout_key(CAMPAIGN, customer_id, decided),
        kind="holdout",
        customer_id=customer_id,
        points=0,
        effective_at=_midnight(decided),
        campaign_id=CAMPAIGN,
        policy_version="test-policy",
        as_of_date=decided,
        arm="control",
        grant_rule="promotional",
        churn_probability=0.5,
        model_version="test-model",
        expected_value=10.0,
        decision_rank=2,
        budget_used_points=0,
        tenure_days=90,
        channel="sms",
    )


def _clawback(lot: Entry, points: int) -> Entry:
    """As boomerang.rewards writes one: effective at the lot's expiry, dated the day it fell due."""
    assert lot.expires_at is not None
    return Entry(
        entry_key=clawback_key(lot.entry_key),
        kind="clawback",
        customer_id=lot.customer_id,
        points=points,
        effective_at=lot.expires_at,
        campaign_id=CAMPAIGN,
        policy_version="test-policy",
        as_of_date=lot.expires_at.date(),
        lot_id=lot.entry_key,
        message="test clawback",
    )


def _lot_positions(settings, as_of: date) -> list[dict]:
    with connect(settings.warehouse_path, read_only=True) as con:
        return lot_positions(con, as_of)


# Every column of the ledger's own lot positions (boomerang.rewards.ledger.LOT_POSITIONS_SQL): the
# mart must have each one, under the same name, with the same values.
POSITION_COLUMNS = [
    "lot_id", "customer_id", "campaign_id", "decision_date", "granted_at", "expires_at", "is_expired",
    "granted_points", "used_points", "clawed_back_points", "clawback_count", "clawed_back_at",
    "outstanding_points", "awaiting_clawback_points", "unsettled_points",
]  # fmt: skip


def _fct_pregrant_lots(settings) -> list[dict]:
    rows = query(
        settings, f"select {', '.join(POSITION_COLUMNS)} from marts.fct_pregrant_lots order by lot_id"
    )
    return [dict(zip(POSITION_COLUMNS, row, strict=True)) for row in rows]


def _statuses(settings, table: str) -> dict[str, str]:
    return dict(
        query(settings, f"select lot_id, lot_status from marts.{table} where lot_id like 'pregrant:%'")
    )


@pytest.fixture(scope="module")
def ledger_run(tiny_loaded, tmp_path_factory):
    """The tiny world with the scenario, after the daily build (``before``) and the ledger step."""
    settings = copy_warehouse(tiny_loaded, tmp_path_factory.mktemp("dbt_ledger"))
    names = [*LOTS, *HOLDOUTS]
    with connect(settings.warehouse_path) as con:
        # customers with some earned mileage to spend and no redemptions of their own
        customers = [
            customer_id
            for (customer_id,) in con.execute(
                """
                select customer_id from raw.mileage_events
                group by customer_id
                having sum(points) filter (where kind = 'earn' and occurred_at < timestamptz '2025-01-20 00:00+00') >= 50
                    and count(*) filter (where kind = 'redeem') = 0
                order by customer_id
                limit ?
                """,
                [len(names)],
            ).fetchall()
        ]
        assert len(customers) == len(names), "the tiny world has too few customers with earned mileage"
        who = dict(zip(names, customers, strict=True))
        lots = {name: _pregrant(name, who[name]) for name in LOTS}
        for number, (name, points, at) in enumerate(REDEMPTIONS):
            con.execute(
                "insert into raw.mileage_events values (?, ?, ?, 'redeem', ?, null, 'test', 'test')",
                [f"TEST-R{number}", who[name], at.isoformat() + "+00:00", points],
            )
        earlier = [lot for name, lot in lots.items() if not name.startswith("today")]
        earlier += [_holdout(name, who[name]) for name in HOLDOUTS if name != "holdout_today"]
        earlier.append(_clawback(lots["after_expiry"], 100))
        record(con, earlier, run_date=AS_OF - timedelta(days=1))  # the earlier runs' entries, in one write

    pipeline.dbt_build(settings, AS_OF)  # the daily build, before today's grants and clawbacks
    # the ledger marts as they stand before them (the daily build leaves the marts to the ledger step)
    run_dbt(settings, "build", AS_OF, ["--select", "tag:ledger"])
    before = SimpleNamespace(
        lots=_fct_pregrant_lots(settings),
        positions=_lot_positions(settings, AS_OF),
        lot_statuses=_statuses(settings, "fct_pregrant_lots"),
        balance_statuses=_statuses(settings, "fct_mileage_lot_balances"),
    )

    with connect(settings.warehouse_path) as con:  # the rewards steps: clawbacks, then today's grants
        # (the lots expired on 03-03; no run recorded their clawbacks since: a gap the clawback step fills)
        record(con, [_clawback(lots["partial"], 60), _clawback(lots["unused"], 100)], run_date=AS_OF)
        today = [lots["today_1"], lots["today_2"], _holdout("holdout_today", who["holdout_today"])]
        record(con, today, run_date=AS_OF)
    run_dbt(settings, "build", AS_OF, ["--select", "tag:ledger"])  # the ledger step
    return SimpleNamespace(settings=settings, who=who, lots=lots, before=before)


def test_the_ledger_marts_build_with_their_tests(ledger_run):
    settings = ledger_run.settings
    assert query(settings, "select count(*), count(distinct lot_id) from marts.fct_pregrant_lots") == [(8, 8)]
    assert query(
        settings,
        "select arm, count(*), sum(granted_points) from marts.fct_pregrant_decisions group by 1 order by 1",
    ) == [("control", 3, 0), ("treatment", 8, sum(points for _, points in LOTS.values()))]
    columns = {
        row[0]
        for row in query(
            settings,
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name in ('fct_pregrant_decisions', 'fct_pregrant_lots', 'rewards_daily')",
        )
    }
    assert columns and not columns & {"email", "phone", "birth_year"}


def test_fct_pregrant_lots_agrees_with_the_ledgers_lot_positions(ledger_run):
    """dbt's lot positions (int_mileage_lot_positions, through the mart) and the ledger's own check
    agree on every column the check computes, before the ledger step and after it."""
    after = _lot_positions(ledger_run.settings, AS_OF)
    assert sorted(after[0]) == sorted(POSITION_COLUMNS)  # a column added to the check is compared too
    for mart, positions in (
        (ledger_run.before.lots, ledger_run.before.positions),
        (_fct_pregrant_lots(ledger_run.settings), after),
    ):
        assert mart == positions
    assert len(ledger_run.before.lots) == 6 and len(after) == 8  # today's grants came with the ledger step
    awaiting = {row["awaiting_clawback_points"] > 0 for row in ledger_run.before.positions}
    assert awaiting == {True, False}  # the scenario has lots awaiting their clawback, and others


def test_the_ledger_balances_after_the_ledger_step(ledger_run):
    with connect(ledger_run.settings.warehouse_path, read_only=True) as con:
        broken = [result for result in check_invariants(con, AS_OF) if not result.holds]
    assert broken == []


def test_a_redemption_uses_the_pregrant_first_and_the_rest_goes_to_earn_lots(ledger_run):
    settings, lots = ledger_run.settings, ledger_run.lots

    def allocations(redemption_id: str) -> list[tuple]:
        return query(
            settings,
            "select lot_kind, sum(allocated_points) from intermediate.int_mileage_redemption_allocations "
            "where redemption_id = ? group by 1 order by 1",
            [redemption_id],
        )

    assert allocations("TEST-R0") == [("earn", 20), ("pregrant", 100)]  # 120 in the window of 100
    assert allocations("TEST-R1") == [("pregrant", 40)]
    assert allocations("TEST-R2") == [("earn", 30)]  # after the pre-grant's expiry
    assert allocations("TEST-R3") == [("earn", 10)]  # before the pre-grant's window
    assert allocations("TEST-R4") == [("pregrant", 30)]

    balances = {
        row[0]: row[1:]
        for row in query(
            settings,
            "select lot_id, lot_kind, granted_points, used_points, outstanding_points, clawed_back_points, lot_status "
            "from marts.fct_mileage_lot_balances where customer_id in (?, ?)",
            [ledger_run.who["split"], ledger_run.who["open"]],
        )
    }
    assert balances[lots["split"].entry_key] == ("pregrant", 100, 100, 0, 0, "used")
    assert balances[lots["open"].entry_key] == ("pregrant", 100, 30, 70, 0, "open")
    earn_used = sum(row[2] for row in balances.values() if row[0] == "earn")
    assert earn_used == 20 + 10


def test_expired_pregrants_await_their_clawback_until_the_ledger_step(ledger_run):
    lots = ledger_run.lots
    expected_before = {
        lots["split"].entry_key: "used",
        lots["partial"].entry_key: "awaiting_clawback",
        lots["after_expiry"].entry_key: "clawed_back",
        lots["open"].entry_key: "open",
        lots["on_as_of"].entry_key: "open",
        lots["unused"].entry_key: "awaiting_clawback",
    }
    assert ledger_run.before.lot_statuses == expected_before
    assert ledger_run.before.balance_statuses == expected_before
    expected_after = {
        **expected_before,
        lots["partial"].entry_key: "clawed_back",
        lots["unused"].entry_key: "clawed_back",
        lots["today_1"].entry_key: "open",
        lots["today_2"].entry_key: "open",
    }
    assert _statuses(ledger_run.settings, "fct_pregrant_lots") == expected_after
    assert _statuses(ledger_run.settings, "fct_mileage_lot_balances") == expected_after
    assert _statuses(ledger_run.settings, "fct_pregrant_decisions") == expected_after


def test_rewards_daily_counts_add_up(ledger_run):
    rows = query(
        ledger_run.settings,
        "select decision_date, customers_treated, customers_held_out, points_granted, points_redeemed, "
        "points_clawed_back, points_outstanding, points_awaiting_clawback, redemption_rate, "
        "clawbacks_recorded, clawback_points_recorded from marts.rewards_daily order by decision_date",
    )
    assert rows == [
        # decision_date, treated, held out, granted, redeemed, clawed back, outstanding, awaiting, rate, clawbacks
        (date(2025, 1, 20), 1, 0, 100, 0, 100, 0, 0, 0.0, 0, 0),
        (date(2025, 2, 1), 2, 0, 200, 40, 160, 0, 0, 0.2, 0, 0),
        (date(2025, 2, 10), 1, 0, 100, 100, 0, 0, 0, 1.0, 0, 0),
        (date(2025, 2, 19), 0, 0, 0, 0, 0, 0, 0, None, 1, 100),
        (date(2025, 3, 3), 0, 0, 0, 0, 0, 0, 0, None, 2, 160),  # clawbacks are dated by their lot's expiry
        (date(2025, 3, 5), 2, 2, 200, 30, 0, 170, 0, 0.15, 0, 0),
        (AS_OF, 2, 1, 500, 0, 0, 500, 0, 0.0, 0, 0),
    ]
    [(granted, redeemed, clawed, outstanding)] = query(
        ledger_run.settings,
        "select sum(granted_points), sum(used_points), sum(clawed_back_points), sum(outstanding_points) "
        "from marts.fct_pregrant_lots",
    )
    assert sum(row[3] for row in rows) == granted == redeemed + clawed + outstanding

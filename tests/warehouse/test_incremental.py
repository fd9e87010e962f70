"""The incremental warehouse: the mileage lots and their allocations move forward by customer, the
customers' activity (the churn features' counts and sums) by day.

int_mileage_lots and int_mileage_redemption_allocations are dbt incremental models
(macros/incremental.sql): a build recomputes only the customers whose lots or redemptions changed,
and swaps their rows in. int_customer_activity (macros/customer_activity.sql) moves the previous
build's windows forward by the days between. These tests hold an incremental history equal to a full
refresh, with back-dated events and a re-run of an earlier date in it; show that an increment
carries the previous rows (it is an increment, not a rebuild); and that lost source rows fail the
build.
"""

from __future__ import annotations

import logging
import random
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from conftest import (
    ML_CUSTOMERS,
    TINY_AS_OF,
    Campaign,
    copy_warehouse,
    make_settings,
    query,
    table_checksums,
    write_file,
)

from boomerang import cli, pipeline
from boomerang.config import Settings
from boomerang.warehouse.dbt import DbtError, run_dbt

INCREMENTAL = ("int_mileage_lots", "int_mileage_redemption_allocations")
# what reads them and is not tagged for training or scoring: rebuilt from the incremental tables,
# so compared too
POSITIONS = ("int_mileage_lot_positions", "fct_mileage_lot_balances")
MILEAGE_HEADER = "event_id,customer_id,occurred_at,kind,points,transaction_id\n"
TRANSACTION_HEADER = "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
INTERACTION_HEADER = "interaction_id,customer_id,occurred_at,channel,kind,campaign_id\n"
ACTIVITY = ("int_customer_activity", "fct_customer_features")


def _own_copy(campaign: Campaign, home: Path) -> Settings:
    """The campaign's warehouse and landing folder, copied: this module writes landing files."""
    for name in ("warehouse", "landing"):
        shutil.copytree(campaign.settings.warehouse_path.parents[1] / name, home / name)
    settings = make_settings(
        home, BOOMERANG_WORLD_CUSTOMERS=str(ML_CUSTOMERS), BOOMERANG_GRANT_EXPIRY_DAYS="6"
    ).with_(world_dir=campaign.settings.world_dir)
    assert settings.dbt_vars() == campaign.settings.dbt_vars()  # dbt sees the campaign's settings
    return settings


def _rows(settings: Settings, table: str) -> list[tuple]:
    return sorted(query(settings, f"select * from intermediate.{table}"), key=repr)


def _when(moment: str) -> str:
    return moment.replace(" ", "T") + "Z"


def test_day_by_day_increments_equal_a_full_refresh_with_back_dated_events_and_a_re_run(
    campaign: Campaign, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Five campaign days through Airflow built the lots and allocations as increments. Then a
    back-dated earn event (before a customer's first redemption) and back-dated redemptions arrive,
    an earlier date is re-run, and one more day runs: every table of the daily build and the lot
    positions equal what a full refresh of all of them builds from the same data."""
    settings = _own_copy(campaign, tmp_path / "home")
    last = campaign.run_dates[-1]

    # a customer whose first redemption drew on earn lots: an earn lot arriving late, dated before
    # it, takes the first place in the consumption order and moves every later range
    [(earner, first_redeemed_at, first_granted_at)] = query(
        settings,
        """
        select allocations.customer_id, min(allocations.redeemed_at), min(lots.granted_at)
        from intermediate.int_mileage_redemption_allocations as allocations
        inner join intermediate.int_mileage_lots as lots using (customer_id)
        where allocations.lot_kind = 'earn' and lots.lot_kind = 'earn'
        group by allocations.customer_id
        order by allocations.customer_id
        limit 1
        """,
    )
    # a customer who holds a pre-grant still open (not clawed back): a redemption dated inside its
    # window, arriving late
    day = last + timedelta(days=1)
    [(holder, window_start)] = query(
        settings,
        """
        select customer_id, granted_at from intermediate.int_mileage_lots
        where lot_kind = 'pregrant' and granted_at < ? and expires_at > ?
        order by lot_id limit 1
        """,
        [day - timedelta(hours=2), day],
    )
    back_dated_earn = first_granted_at - timedelta(days=1)
    write_file(
        settings.landing_dir,
        "mileage_events/late-corrections.csv",
        MILEAGE_HEADER
        + f"LATE-EARN,{earner},{_when(str(back_dated_earn))},earn,500,\n"
        + f"LATE-REDEEM,{holder},{_when(str(window_start + timedelta(hours=1)))},redeem,5,\n",
    )
    ranges_before = query(
        settings,
        "select lot_id, consumption_start from intermediate.int_mileage_lots "
        "where customer_id = ? and lot_kind = 'earn' order by lot_id",
        [earner],
    )
    pipeline.load_landing(settings, day)
    caplog.set_level(logging.INFO, logger="boomerang.warehouse.dbt")
    pipeline.dbt_build(settings, day)
    # the late lot is dated before the table's newest: the lots were compared one by one, not
    # looked for after the newest
    assert (
        'int_mileage_lots": compared every lot with its sources: the landing mileage events hold'
        in caplog.text
    )
    assert "(events that arrived late for a time already built)" in caplog.text
    # the late lot came first: it starts the order, and the customer's other lots moved up by 500
    ranges_after = dict(
        query(
            settings,
            "select lot_id, consumption_start from intermediate.int_mileage_lots where customer_id = ?",
            [earner],
        )
    )
    assert ranges_after.pop("LATE-EARN") == 0
    assert ranges_after == {lot: start + 500 for lot, start in ranges_before}
    assert query(
        settings,
        "select count(*) from intermediate.int_mileage_redemption_allocations "
        "where lot_id = 'LATE-EARN' and redeemed_at = ?",
        [first_redeemed_at],
    ) == [(1,)]
    assert query(
        settings,
        "select lot_kind from intermediate.int_mileage_redemption_allocations where redemption_id = 'LATE-REDEEM'",
    ) == [("pregrant",)]

    # a re-run of an earlier date: the lots and allocations do not depend on the date
    lots, allocations = _rows(settings, INCREMENTAL[0]), _rows(settings, INCREMENTAL[1])
    pipeline.dbt_build(settings, campaign.run_dates[2])
    assert (_rows(settings, INCREMENTAL[0]), _rows(settings, INCREMENTAL[1])) == (lots, allocations)

    # one more day, with a back-dated redemption of the customer whose lots moved
    write_file(
        settings.landing_dir,
        "mileage_events/later.csv",
        MILEAGE_HEADER
        + f"LATE-REDEEM-2,{earner},{_when(str(first_redeemed_at + timedelta(minutes=1)))},redeem,7,\n",
    )
    day += timedelta(days=1)
    pipeline.load_landing(settings, day)
    pipeline.dbt_build(settings, day)
    run_dbt(settings, "build", day, ["--select", *POSITIONS])
    incremental = table_checksums(settings.warehouse_path, ("intermediate", "marts"))

    pipeline_selection = ["--exclude", *pipeline.DAILY_BUILD_EXCLUDES, "--exclude-resource-type", "unit_test"]
    run_dbt(settings, "build", day, [*pipeline_selection, "--full-refresh"])
    run_dbt(settings, "build", day, ["--select", *POSITIONS, "--full-refresh"])
    rebuilt = table_checksums(settings.warehouse_path, ("intermediate", "marts"))
    assert {f"intermediate.{name}" for name in INCREMENTAL} <= set(rebuilt)
    assert "marts.fct_customer_features" in rebuilt and "marts.fct_mileage_lot_balances" in rebuilt
    assert incremental == rebuilt


def _tiny_copy(tiny_built: Settings, home: Path) -> Settings:
    """tiny_built's warehouse and landing folder, copied (these tests write both)."""
    settings = copy_warehouse(tiny_built, home)
    shutil.copytree(tiny_built.landing_dir, home / "landing")
    return settings.with_(landing_dir=home / "landing")


def _incremental_rows(settings: Settings, customer: str) -> tuple[list[tuple], list[tuple]]:
    """The customer's (lot_id, granted_points) and (redemption_id, lot_id, allocated_points)."""
    lots = query(
        settings,
        "select lot_id, granted_points from intermediate.int_mileage_lots where customer_id = ? order by all",
        [customer],
    )
    allocations = query(
        settings,
        "select redemption_id, lot_id, allocated_points from intermediate.int_mileage_redemption_allocations "
        "where customer_id = ? order by all",
        [customer],
    )
    return lots, allocations


def test_an_increment_recomputes_only_the_customers_whose_mileage_changed(
    tiny_built: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A mark left on two customers' lots and allocations (a point more than their sources say):
    a build that brings one of them a new earn event and redemption recomputes that one and leaves
    the other's mark, so it moved the tables forward rather than rebuilding them. A full refresh
    (`boomerang dbt run --full-refresh`) wipes the mark."""
    settings = _tiny_copy(tiny_built, tmp_path / "home")
    [(untouched, changed)] = query(
        settings,
        """
        select min(customer_id), max(customer_id) from intermediate.int_mileage_redemption_allocations
        where lot_kind = 'earn'
        """,
    )
    assert untouched != changed
    with duckdb.connect(str(settings.warehouse_path)) as con:
        for customer in (untouched, changed):
            con.execute(
                "update intermediate.int_mileage_lots set granted_points = granted_points + 1 where customer_id = ?",
                [customer],
            )
            con.execute(
                "update intermediate.int_mileage_redemption_allocations set allocated_points = allocated_points + 1 "
                "where customer_id = ?",
                [customer],
            )
    marked = {customer: _incremental_rows(settings, customer) for customer in (untouched, changed)}
    write_file(
        settings.landing_dir,
        "mileage_events/new.csv",
        MILEAGE_HEADER
        + f"NEW-EARN,{changed},{TINY_AS_OF}T10:00:00Z,earn,40,\n"
        + f"NEW-REDEEM,{changed},{TINY_AS_OF}T11:00:00Z,redeem,10,\n",
    )
    day = TINY_AS_OF + timedelta(days=1)
    pipeline.load_landing(settings, day)
    caplog.set_level(logging.INFO, logger="boomerang.warehouse.dbt")
    run_dbt(settings, "run", day, ["--select", *INCREMENTAL])
    assert 'int_mileage_lots": added the lots after ' in caplog.text

    assert _incremental_rows(settings, untouched) == marked[untouched]
    lots, allocations = _incremental_rows(settings, changed)
    assert "NEW-EARN" in {row[0] for row in lots} and "NEW-REDEEM" in {row[0] for row in allocations}
    unmarked = query(
        settings,
        """
        select count(*) from intermediate.int_mileage_lots as lots
        inner join raw.mileage_events as events on lots.lot_id = events.event_id
        where lots.customer_id = ? and lots.granted_points = events.points
        """,
        [changed],
    )
    assert unmarked == [(len(lots),)]

    # the user's way to rebuild from all history: boomerang dbt ... --full-refresh
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    argv = ["dbt", "run", "--as-of", day.isoformat(), "--full-refresh", "--select", *INCREMENTAL]
    assert cli.main(argv) == 0
    lots, allocations = _incremental_rows(settings, untouched)
    assert lots == [(lot, points - 1) for lot, points in marked[untouched][0]]
    assert allocations == [(redemption, lot, points - 1) for redemption, lot, points in marked[untouched][1]]


def test_a_pre_grant_recorded_for_an_earlier_date_is_found(
    campaign: Campaign, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A backfill of a missed date after later dates ran records pre-grants older than the newest
    lot: the increment cannot look for them after the newest, so it compares every lot, finds the
    new one, and equals a full refresh."""
    settings = _own_copy(campaign, tmp_path / "home")
    last = campaign.run_dates[-1]
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            """
            insert into ledger.entries
            select * replace ('BACKFILLED-PREGRANT' as entry_key, as_of_date - 3 as as_of_date)
            from ledger.entries
            where kind = 'pregrant' and as_of_date = ?
            order by entry_key
            limit 1
            """,
            [last],
        )
    caplog.set_level(logging.INFO, logger="boomerang.warehouse.dbt")
    run_dbt(settings, "run", last, ["--select", INCREMENTAL[0]])
    assert 'int_mileage_lots": compared every lot with its sources: the ledger holds' in caplog.text
    assert query(
        settings,
        "select decision_date from intermediate.int_mileage_lots where lot_id = 'BACKFILLED-PREGRANT'",
    ) == [(last - timedelta(days=3),)]
    moved = _rows(settings, INCREMENTAL[0])
    run_dbt(settings, "run", last, ["--select", INCREMENTAL[0], "--full-refresh"])
    assert _rows(settings, INCREMENTAL[0]) == moved


def test_a_lot_gone_from_its_sources_fails_the_build_and_writes_nothing(
    tiny_built: Settings, tmp_path: Path
) -> None:
    """The sources are append-only; a deleted raw row would leave a stale lot behind an increment.
    The build refuses, names the table and says how to rebuild; the table is as it was."""
    settings = _tiny_copy(tiny_built, tmp_path / "home")
    before = table_checksums(settings.warehouse_path, ("intermediate",))
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            "delete from raw.mileage_events where event_id = (select min(event_id) from raw.mileage_events where kind = 'earn')"
        )
    with pytest.raises(DbtError) as raised:
        run_dbt(settings, "run", TINY_AS_OF, ["--select", INCREMENTAL[0]])
    message = str(raised.value)
    assert "intermediate" in message and "int_mileage_lots" in message
    assert "1 lot(s) built earlier are gone from its sources" in message
    assert "boomerang dbt build --as-of <date> --full-refresh --select int_mileage_lots+" in message
    assert table_checksums(settings.warehouse_path, ("intermediate",)) == before


def test_a_changed_earn_expiry_recomputes_every_customer(tiny_built: Settings, tmp_path: Path) -> None:
    """BOOMERANG_EARN_EXPIRY_DAYS shapes every earn lot and so every allocation: after a change, the
    increment recomputes every customer and equals a full refresh with the new setting (no new data
    arrived, so nothing else would have told it to)."""
    settings = _tiny_copy(tiny_built, tmp_path / "home").with_(earn_expiry_days=30)
    run_dbt(settings, "run", TINY_AS_OF, ["--select", *INCREMENTAL])
    assert query(
        settings,
        "select count(*) from intermediate.int_mileage_lots "
        "where lot_kind = 'earn' and expires_at != granted_at + interval 30 day",
    ) == [(0,)]
    assert query(
        settings, "select distinct earn_expiry_days from intermediate.int_mileage_redemption_allocations"
    ) == [(30,)]
    incremental = table_checksums(settings.warehouse_path, ("intermediate",))
    run_dbt(settings, "run", TINY_AS_OF, ["--select", *INCREMENTAL, "--full-refresh"])
    assert table_checksums(settings.warehouse_path, ("intermediate",)) == incremental


# ------------------------------------------------------------------------------ the activity


def _long_history(settings: Settings, customers: list[str], end: date) -> None:
    """Landing files with 15 months of random transactions, interactions and mileage events for
    ``customers`` before ``end``: every window of the features (30, 90, 180 and 365 days) has events
    entering and leaving it on any day."""
    rng = random.Random(15)
    start = datetime(end.year - 1, end.month, end.day) - timedelta(days=90)
    minutes = int((datetime(end.year, end.month, end.day) - start).total_seconds() // 60)

    def moment() -> str:
        return (start + timedelta(minutes=rng.randrange(minutes))).isoformat() + "Z"

    transactions, interactions, mileage = [TRANSACTION_HEADER], [INTERACTION_HEADER], [MILEAGE_HEADER]
    for n in range(1500):
        customer = rng.choice(customers)
        kind = "refund" if rng.random() < 0.15 else "purchase"
        channel = rng.choice(["store", "online", "app"])
        transactions.append(
            f"HIST-T{n},{customer},{moment()},{kind},{rng.randrange(100, 9000) / 100:.2f},{channel}\n"
        )
        channel, kind = rng.choice(
            [
                ("email", "sent"),
                ("email", "opened"),
                ("sms", "clicked"),
                ("push", "sent"),
                ("app", "visit"),
                ("web", "visit"),
                ("store", "visit"),
                ("call_center", "call"),
            ]
        )
        interactions.append(f"HIST-I{n},{customer},{moment()},{channel},{kind},\n")
        kind = "earn" if rng.random() < 0.8 else "redeem"
        mileage.append(f"HIST-M{n},{customer},{moment()},{kind},{rng.randrange(1, 60)},\n")
    write_file(settings.landing_dir, "transactions/history.csv", "".join(transactions))
    write_file(settings.landing_dir, "interactions/history.csv", "".join(interactions))
    write_file(settings.landing_dir, "mileage_events/history.csv", "".join(mileage))


def _activity(settings: Settings) -> dict[str, list[tuple]]:
    return {
        "activity": sorted(query(settings, "select * from intermediate.int_customer_activity"), key=repr),
        "features": sorted(query(settings, "select * from marts.fct_customer_features"), key=repr),
    }


def _build_activity(settings: Settings, day: date, *extra: str) -> None:
    run_dbt(settings, "run", day, ["--select", *INCREMENTAL, *ACTIVITY, *extra])


def test_the_activity_moved_day_by_day_equals_a_rebuild(
    tiny_built: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Built from all history 40 days before the tiny world's end, then moved forward a day, a day,
    eight days and 30 days, with 15 months of events entering and leaving every window: the activity
    and the features equal a rebuild from all history. A mark left on one customer's 365-day spend
    rides every move (each build carries the previous one forward) and is gone after the rebuild."""
    settings = _tiny_copy(tiny_built, tmp_path / "home")
    customers = [
        row[0] for row in query(settings, "select customer_id from raw.customers order by all limit 3")
    ]
    _long_history(settings, customers, TINY_AS_OF)
    pipeline.load_landing(settings, TINY_AS_OF)
    start = TINY_AS_OF - timedelta(days=40)
    _build_activity(settings, start, "--full-refresh")
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            "update intermediate.int_customer_activity set spend_365d = spend_365d + 1000 where customer_id = ?",
            [customers[0]],
        )

    caplog.set_level(logging.INFO, logger="boomerang.warehouse.dbt")
    previous = start
    for day in (start + timedelta(days=1), start + timedelta(days=2), start + timedelta(days=10), TINY_AS_OF):
        caplog.clear()
        _build_activity(settings, day)
        assert f'int_customer_activity": moved forward from {previous}' in caplog.text
        previous = day
    moved = _activity(settings)
    _build_activity(settings, TINY_AS_OF, "--full-refresh")
    rebuilt = _activity(settings)

    assert len(moved["activity"]) > len(customers) and len(moved["features"]) > len(customers)
    marked = query(
        settings,
        "select spend_365d from intermediate.int_customer_activity where customer_id = ?",
        [customers[0]],
    )[0][0]
    moved_spend = [row for row in moved["activity"] if row[0] == customers[0]]
    columns = [row[0] for row in query(settings, "describe intermediate.int_customer_activity")]
    assert moved_spend[0][columns.index("spend_365d")] == marked + 1000
    unmarked = {name: [row for row in rows if row[0] != customers[0]] for name, rows in moved.items()}
    assert unmarked == {
        name: [row for row in rows if row[0] != customers[0]] for name, rows in rebuilt.items()
    }


def test_late_events_and_a_re_run_rebuild_the_activity(
    tiny_built: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A transaction that arrives late, dated before the activity's date, and a re-run of an earlier
    date: each build rebuilds the activity from all history (and says why in dbt's log), and
    equals a full refresh."""
    settings = _tiny_copy(tiny_built, tmp_path / "home")
    [(customer,)] = query(settings, "select min(customer_id) from raw.customers")
    late = TINY_AS_OF - timedelta(days=20)
    write_file(
        settings.landing_dir,
        "transactions/late.csv",
        TRANSACTION_HEADER + f"LATE-T1,{customer},{late}T10:00:00Z,purchase,55.00,app\n",
    )
    day = TINY_AS_OF + timedelta(days=1)
    pipeline.load_landing(settings, day)
    caplog.set_level(logging.INFO, logger="boomerang.warehouse.dbt")
    _build_activity(settings, day)
    assert "rebuilt from all history: the landing transactions hold" in caplog.text
    assert "(events that arrived late for days already counted)" in caplog.text
    assert query(
        settings,
        "select purchases_lifetime > 0 from intermediate.int_customer_activity where customer_id = ?",
        [customer],
    ) == [(True,)]
    incremental = _activity(settings)
    _build_activity(settings, day, "--full-refresh")
    assert _activity(settings) == incremental

    earlier = TINY_AS_OF - timedelta(days=30)
    caplog.clear()
    _build_activity(settings, earlier)
    assert f"rebuilt from all history: it was built for {day}" in caplog.text
    incremental = _activity(settings)
    assert {row[1] for row in incremental["activity"]} == {earlier}
    _build_activity(settings, earlier, "--full-refresh")
    assert _activity(settings) == incremental


def test_features_built_without_their_activity_fail_by_name(tiny_built: Settings, tmp_path: Path) -> None:
    """fct_customer_features reads the activity moved to the run's date: selected alone for another
    date, it fails and says to build the two together, instead of features from another day."""
    settings = _tiny_copy(tiny_built, tmp_path / "home")
    before = table_checksums(settings.warehouse_path, ("marts",))
    with pytest.raises(DbtError) as raised:
        run_dbt(settings, "run", TINY_AS_OF - timedelta(days=3), ["--select", "fct_customer_features"])
    message = str(raised.value)
    assert f"int_customer_activity holds the activity as of {TINY_AS_OF}, not the run's date" in message
    assert "--select int_customer_activity+" in message
    assert table_checksums(settings.warehouse_path, ("marts",)) == before


def test_a_measure_added_since_the_last_build_gets_its_column_and_a_rebuild(
    tiny_built: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An activity built before a measure was added to the list (here: without calls_90d): the next
    build adds the column and rebuilds from all history, rather than moving a table that lacks it."""
    settings = _tiny_copy(tiny_built, tmp_path / "home")
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("alter table intermediate.int_customer_activity drop column calls_90d")
    caplog.set_level(logging.INFO, logger="boomerang.warehouse.dbt")
    day = TINY_AS_OF + timedelta(days=1)
    _build_activity(settings, day)
    assert "rebuilt from all history: new measures calls_90d" in caplog.text
    calls = (
        "select customer_id, calls_90d, purchases_30d from intermediate.int_customer_activity order by all"
    )
    built = query(settings, calls)
    assert any(row[1] for row in built)
    _build_activity(settings, day, "--full-refresh")
    assert query(settings, calls) == built

"""The incremental warehouse: the mileage lots and their allocations move forward by customer.

int_mileage_lots and int_mileage_redemption_allocations are dbt incremental models
(macros/incremental.sql): a build recomputes only the customers whose lots or redemptions changed,
and swaps their rows in. These tests hold an incremental history equal to a full refresh, with
back-dated events and a re-run of an earlier date in it; show that an increment leaves the other
customers' rows alone (it is an increment, not a rebuild); and that lost source rows fail the build.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
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
    campaign: Campaign, tmp_path: Path
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
    pipeline.dbt_build(settings, day)
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
    tiny_built: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    run_dbt(settings, "run", day, ["--select", *INCREMENTAL])

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

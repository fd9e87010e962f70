"""`make soak`'s fingerprint, its kill plan and a tiny soak end to end (the real soak runs in `make soak`)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime

import duckdb
import pytest
from ledger_helpers import CAMPAIGN, open_warehouse, pregrant

from boomerang.rewards import ledger
from devtools import soak

DAY = date(2025, 3, 1)


@pytest.fixture
def home(tmp_path):
    """A home with one pre-grant (ledger + outbox + its file), a churn score and a serving snapshot."""
    home = soak.make_home(tmp_path / "home", customers=10, seed=1)
    settings = home.settings
    con = open_warehouse(settings.warehouse_path)
    ledger.record(con, [pregrant("C1", DAY)], decision_scope=(CAMPAIGN, DAY), run_date=DAY)
    con.execute(
        "insert into ml.churn_scores (customer_id, as_of_date, churn_probability, risk_band, model_version, "
        "scored_at) values ('C1', ?, 0.25, 'high', 'm1', ?)",
        [DAY, datetime(2026, 1, 1, 9)],
    )
    con.close()
    settings.outbox_dir.mkdir(parents=True)
    (settings.outbox_dir / f"{DAY}.jsonl").write_text('{"idempotency_key": "k"}\n')
    snap = duckdb.connect(str(settings.serving_path))
    snap.execute("create schema marts")
    snap.execute("create table marts.customer_360 as select 'C1' as customer_id, 3 as purchases")
    snap.execute("create schema meta")
    snap.execute(
        "create table meta.snapshot as select date '2025-03-01' as as_of_date, "
        "timestamp '2026-01-01 09:00:00' as published_at, '/somewhere/boomerang.duckdb' as source_warehouse, "
        "'marts' as table_schema, 'customer_360' as table_name, 1 as row_count"
    )
    snap.close()
    return home


def _change(path, sql: str) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(sql)
    finally:
        con.close()


def test_the_fingerprint_covers_the_ledger_outbox_raw_predictions_and_snapshot(home):
    found = soak.fingerprint(home.settings)
    assert found["warehouse:ledger.entries"][0] == 1
    assert found["warehouse:ledger.outbox"][0] == 1
    assert found[f"warehouse:ml.churn_scores@{DAY}"][0] == 1
    assert found[f"outbox_file:{DAY}.jsonl"][0] == 1
    assert found["snapshot:marts.customer_360"][0] == 1
    assert found["snapshot:meta.snapshot"][0] == 1
    assert "warehouse:raw.transactions" in found  # every raw table, empty or not
    assert soak.fingerprint(home.settings) == found  # the same home, the same fingerprint


@pytest.mark.parametrize(
    ("where", "sql", "table"),
    [
        ("warehouse", "update ledger.entries set points = points + 1", "warehouse:ledger.entries"),
        ("warehouse", "update ledger.outbox set message = 'other'", "warehouse:ledger.outbox"),
        (
            "warehouse",
            "update ml.churn_scores set churn_probability = 0.26",
            f"warehouse:ml.churn_scores@{DAY}",
        ),
        ("warehouse", "a raw row", "warehouse:raw.complaints"),  # the statement is made below
        ("snapshot", "update marts.customer_360 set purchases = 4", "snapshot:marts.customer_360"),
        ("snapshot", "update meta.snapshot set row_count = 2", "snapshot:meta.snapshot"),
    ],
)
def test_a_changed_row_is_a_diff(home, where, sql, table):
    before = soak.fingerprint(home.settings)
    settings = home.settings
    if sql == "a raw row":  # every column of raw.complaints, nulls but the key
        con = duckdb.connect(str(settings.warehouse_path))
        columns = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'complaints'"
        ).fetchall()
        con.close()
        values = ", ".join("'X1'" if name == "complaint_id" else "null" for name, _ in columns)
        sql = f"insert into raw.complaints values ({values})"
    _change(settings.warehouse_path if where == "warehouse" else settings.serving_path, sql)
    assert [d["table"] for d in soak.diff(before, soak.fingerprint(settings))] == [table]


def test_a_changed_outbox_file_is_a_diff(home):
    before = soak.fingerprint(home.settings)
    (home.settings.outbox_dir / f"{DAY}.jsonl").write_text('{"idempotency_key": "other"}\n')
    assert [d["table"] for d in soak.diff(before, soak.fingerprint(home.settings))] == [
        f"outbox_file:{DAY}.jsonl"
    ]


@pytest.mark.parametrize(
    ("where", "sql"),
    [
        ("warehouse", "update ledger.entries set recorded_at = recorded_at + interval 1 hour"),
        ("warehouse", "update ledger.outbox set created_at = created_at + interval 1 hour"),
        ("warehouse", "update ml.churn_scores set scored_at = scored_at + interval 1 hour"),
        ("snapshot", "update meta.snapshot set published_at = published_at + interval 1 hour"),
        ("snapshot", "update meta.snapshot set source_warehouse = '/elsewhere/boomerang.duckdb'"),
    ],
)
def test_a_wall_clock_column_is_not_a_diff(home, where, sql):
    before = soak.fingerprint(home.settings)
    settings = home.settings
    _change(settings.warehouse_path if where == "warehouse" else settings.serving_path, sql)
    assert soak.diff(before, soak.fingerprint(settings)) == []


def test_a_lost_table_or_date_is_a_diff(home):
    before = soak.fingerprint(home.settings)
    _change(home.settings.warehouse_path, "delete from ml.churn_scores")
    assert soak.diff(before, soak.fingerprint(home.settings)) == [
        {
            "table": f"warehouse:ml.churn_scores@{DAY}",
            "reference": before[f"warehouse:ml.churn_scores@{DAY}"],
            "actual": None,
        }
    ]


def test_the_kill_plan_hits_every_stage_alike_and_kills_as_the_issue_says():
    plan = soak.kill_plan(60, random.Random(1))
    modes = Counter(mode for _, mode in plan)
    assert modes == {"group": 30, "parent": 30}
    parent_in_dbt = [stage for stage, mode in plan[1::4]]
    assert set(parent_in_dbt) <= set(soak.DBT_STAGES) and len(parent_in_dbt) == 15
    uniform = Counter(stage for index, (stage, _) in enumerate(plan) if index % 4 != 1)
    assert set(uniform) == set(soak.STAGES)  # the sub-second steps too
    assert max(uniform.values()) - min(uniform.values()) <= 1
    assert {"clawback_expired", "pregrant"} <= set(uniform)


def test_stage_seconds_run_from_each_step_line_to_the_next():
    run = soak.Run(
        ["run"], 0, 10.0, starts={"simulate_world": 0.5, "validate_landing": 1.0, "dbt_build": 4.0}
    )
    assert soak._stage_seconds(run) == {"simulate_world": 0.5, "validate_landing": 3.0, "dbt_build": 6.0}


def test_the_eta_adds_up_the_runs_each_leg_makes():
    eta = soak.eta_seconds(
        soak.LEGS,
        run_s=40,
        step_s=0.1,
        machine_steps=10_000,
        kills=50,
        dates=30,
        runs_per_date=5,
        restore_after=10,
        restore_days=10,
    )
    assert eta == {"machine": 1000.0, "backfill": 6000.0, "kills": (30 + 25) * 40, "restore": 21 * 40}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_tiny_soak_finds_no_diff(tmp_path):
    """Every leg, tiny: 2 dates run twice, a SIGKILL and its re-run, a restore and a day after it."""
    report = soak.run_soak(
        tmp_path / "soak",
        customers=200,
        history_days=100,
        champion=False,  # no churn model: the runs decide nothing, but every step runs
        machine_steps=40,
        kills=1,
        dates=2,
        runs_per_date=2,
        restore_after=1,
        restore_days=1,
        drop_backups=0,
    )
    legs = report["legs"]
    assert legs["machine"]["steps"] >= 40 and not legs["machine"]["failed"]
    assert legs["backfill"]["reruns"] == 2 and legs["backfill"]["comparisons"] == 3
    assert legs["kills"]["kills"] == 1 and legs["kills"]["retries_failed"] == 0
    assert legs["restore"]["restored"], legs["restore"]["output"]
    assert report["diffs"] == 0, [leg["diffs"] for leg in legs.values()]
    assert (tmp_path / "soak" / "soak.json").exists() and "Diffs: 0" in (
        tmp_path / "soak" / "soak.md"
    ).read_text()

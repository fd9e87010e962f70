"""The simulated world: deterministic, vectorised, and carrying the signal the model needs."""

from __future__ import annotations

import csv
import hashlib
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from boomerang.simulator import World, advance_world

START = date(2025, 1, 1)


def _simulate(
    root: Path, seed: int, days: int = 40, customers: int = 300, steps: tuple[int, ...] = ()
) -> World:
    for stop in (*steps, days):
        advance_world(
            root / "world",
            root / "landing",
            START + timedelta(days=stop),
            customers=customers,
            seed=seed,
            start=START,
        )
    return World.open(root / "world")


def _file_hashes(landing: Path) -> dict[str, str]:
    return {
        path.relative_to(landing).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(landing.rglob("*.parquet"))
    }


def _rows(landing: Path, source: str) -> list[tuple]:
    return duckdb.sql(
        f"select * exclude (filename) from read_parquet('{landing}/{source}/*.parquet', filename = true) order by all"
    ).fetchall()


def test_same_seed_gives_identical_files(tmp_path: Path):
    _simulate(tmp_path / "a", seed=5)
    _simulate(tmp_path / "b", seed=5)
    first, second = _file_hashes(tmp_path / "a" / "landing"), _file_hashes(tmp_path / "b" / "landing")
    assert first and first == second
    assert set(p.split("/")[0] for p in first) == {
        "customers",
        "transactions",
        "mileage_events",
        "interactions",
        "complaints",
    }


def test_different_seeds_give_different_files(tmp_path: Path):
    _simulate(tmp_path / "a", seed=5)
    _simulate(tmp_path / "b", seed=6)
    assert _file_hashes(tmp_path / "a" / "landing") != _file_hashes(tmp_path / "b" / "landing")


def test_rows_do_not_depend_on_how_the_days_are_split(tmp_path: Path):
    _simulate(tmp_path / "once", seed=3)
    _simulate(tmp_path / "daily", seed=3, steps=(10, 11, 12, 31))
    for source in ("customers", "transactions", "mileage_events", "interactions", "complaints"):
        assert _rows(tmp_path / "once" / "landing", source) == _rows(tmp_path / "daily" / "landing", source)


def test_advancing_to_a_date_already_reached_writes_nothing(tmp_path: Path):
    _simulate(tmp_path, seed=1, days=20)
    before = _file_hashes(tmp_path / "landing")
    assert (
        advance_world(
            tmp_path / "world",
            tmp_path / "landing",
            START + timedelta(days=15),
            customers=300,
            seed=1,
            start=START,
        )
        == []
    )
    assert _file_hashes(tmp_path / "landing") == before


def test_a_world_made_with_other_settings_is_not_silently_reused(tmp_path: Path):
    _simulate(tmp_path, seed=1, days=5)
    with pytest.raises(ValueError, match="Delete that folder"):
        advance_world(
            tmp_path / "world",
            tmp_path / "landing",
            START + timedelta(days=9),
            customers=300,
            seed=2,
            start=START,
        )


def test_churners_stop_buying(tiny_world):
    world = World.open(tiny_world.world_dir)
    churn_day = world.state["churn_day"]
    churned = np.flatnonzero(churn_day >= 0)
    assert churned.size > 5, "the tiny world should see some churn"
    ids = [f"C{number:08d}" for number in world.state["number"][churned]]
    days = {customer: int(day) for customer, day in zip(ids, churn_day[churned], strict=True)}
    purchases = duckdb.sql(
        f"select customer_id, max(occurred_at::date) from read_parquet('{tiny_world.landing_dir}/transactions/*.parquet') "
        "where kind = 'purchase' group by all"
    ).fetchall()
    late = [
        (customer, last)
        for customer, last in purchases
        if customer in days and (last - START).days >= days[customer]
    ]
    assert late == []


def test_churn_hazard_rises_with_disengagement(tmp_path: Path):
    world = _simulate(tmp_path, seed=11, days=180, customers=3000)
    churned = world.state["churn_day"] >= 0
    disengaged = world.state["disengagement"]
    assert disengaged[churned].mean() > disengaged[~churned].mean() + 0.05


def test_pii_is_fake(tiny_world):
    emails = duckdb.sql(
        f"select distinct split_part(email, '@', 2) from read_parquet('{tiny_world.landing_dir}/customers/*.parquet')"
    ).fetchall()
    assert emails == [("example.com",)]


def test_csv_timestamps_are_iso_8601_utc(tmp_path: Path):
    advance_world(
        tmp_path / "world",
        tmp_path / "landing",
        START + timedelta(days=3),
        customers=50,
        seed=1,
        start=START,
        file_format="csv",
    )
    with (tmp_path / "landing" / "transactions" / "2025-01-01_2025-01-03.csv").open() as handle:
        first = next(csv.DictReader(handle))
    assert first["occurred_at"].startswith("2025-01-0") and first["occurred_at"].endswith("Z")

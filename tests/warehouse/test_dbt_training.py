"""The training set's dbt build: on a warehouse where only raw files were loaded, only what the
snapshots need (and only those tests), once, on the grid the settings give, and a failure that says
its cause."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta

import duckdb
import pytest
from conftest import TINY_AS_OF, copy_warehouse, query

from boomerang.warehouse.dbt import DbtError, build_training_set, run_dbt

pytestmark = pytest.mark.slow

# A grid that fits the tiny world's 75 days: 14-day windows, six dates a week apart.
GRID = {
    "churn_lookback_days": 14,
    "churn_horizon_days": 14,
    "snapshot_interval_days": 7,
    "training_snapshots": 6,
}


def grid_settings(settings):
    return settings.with_(**GRID)


@pytest.fixture(scope="module")
def trained_set(tiny_loaded, tmp_path_factory):
    """A copy of the raw-only tiny warehouse (no dbt build yet) after build_training_set."""
    settings = grid_settings(copy_warehouse(tiny_loaded, tmp_path_factory.mktemp("training_set")))
    assert build_training_set(settings, TINY_AS_OF) is True
    return settings


def _tables(settings, schema: str) -> set[str]:
    rows = query(
        settings, "select table_name from information_schema.tables where table_schema = ?", [schema]
    )
    return {name for (name,) in rows}


def test_training_builds_on_a_warehouse_with_only_raw_files_and_only_what_it_needs(trained_set):
    assert {"fct_training_snapshots", "fct_churn_labels"} <= _tables(trained_set, "marts")
    # not needed by the snapshots: neither built nor tested (dbt's eager selection tested it and failed)
    assert not {"fct_mileage_lot_balances", "customer_360"} & _tables(trained_set, "marts")


def test_the_latest_training_date_is_the_last_fully_observed_one(trained_set):
    dates = [
        d
        for (d,) in query(
            trained_set, "select as_of_date from intermediate.int_training_as_of_dates order by 1 desc"
        )
    ]
    latest = TINY_AS_OF - timedelta(days=GRID["churn_horizon_days"])
    assert dates == [latest - timedelta(days=7 * step) for step in range(GRID["training_snapshots"])]
    [(observed, labelled_dates)] = query(
        trained_set,
        "select bool_and(is_label_observed), count(distinct as_of_date) filter (where is_churned is not null) "
        "from marts.fct_churn_labels",
    )
    assert observed and labelled_dates == GRID["training_snapshots"]


def test_the_training_set_is_built_once(trained_set, tmp_path):
    settings = grid_settings(copy_warehouse(trained_set, tmp_path / "again"))
    shutil.copytree(trained_set.dbt_target_dir, settings.dbt_target_dir)  # with the record of the build
    started = time.monotonic()
    assert build_training_set(settings, TINY_AS_OF) is False  # the same data, settings and SQL: kept
    assert time.monotonic() - started < 5
    # another setting is another training set
    assert build_training_set(settings.with_(training_snapshots=5), TINY_AS_OF) is True
    assert build_training_set(settings.with_(training_snapshots=5), TINY_AS_OF) is False
    # so is a newly loaded row
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute(
        "insert into raw.transactions select * replace ('T-LATE' as transaction_id) from raw.transactions limit 1"
    )
    con.close()
    assert build_training_set(settings.with_(training_snapshots=5), TINY_AS_OF) is True


def test_a_dbt_failure_shows_its_cause(tiny_loaded, tmp_path):
    """The failure the issue met: dbt's default selection on a raw-only warehouse picks a test of a
    model it does not build; the summary must carry the cause line, not only 'Runtime Error in test'."""
    settings = grid_settings(copy_warehouse(tiny_loaded, tmp_path))
    with pytest.raises(DbtError) as failure:
        run_dbt(
            settings,
            "build",
            TINY_AS_OF,
            ["--select", "+fct_training_snapshots", "--exclude-resource-type", "unit_test"],
        )
    message = str(failure.value)
    assert "relationships_int_mileage_lot_positions" in message
    assert "Catalog Error: Table with name int_mileage_lot_positions does not exist" in message
    assert message.count("Catalog Error") == 1  # said once, not once per time dbt repeats it

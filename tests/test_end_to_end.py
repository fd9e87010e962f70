"""boomerang_daily through Airflow itself (`airflow dags test`), on a throwaway home and warehouse."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
import pytest
from conftest import TINY_START, make_settings, table_checksums

from boomerang.local_airflow import AirflowRunError, dags_test, ensure_metadata_db
from boomerang.simulator import World

pytestmark = pytest.mark.slow

FIRST = TINY_START + timedelta(days=60)
SECOND = FIRST + timedelta(days=1)


@pytest.fixture(scope="module")
def airflow_settings(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("e2e"))
    ensure_metadata_db(settings)
    return settings


def _query(settings, sql):
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_two_consecutive_days_then_a_rerun_that_changes_nothing(airflow_settings):
    settings = airflow_settings

    dags_test(settings, "boomerang_daily", FIRST, echo=False)
    first_raw = dict(_query(settings, "select source, sum(row_count) from ops.load_manifest group by 1"))
    assert set(first_raw) == {"customers", "transactions", "mileage_events", "interactions", "complaints"}
    assert _query(settings, "select distinct as_of_date from marts.dim_customers") == [(FIRST,)]

    dags_test(settings, "boomerang_daily", SECOND, echo=False)
    world = World.open(settings.world_dir)
    assert world.today == SECOND
    expected_customers = int(np.sum(world.state["signup_day"] < (SECOND - TINY_START).days))
    assert _query(settings, "select count(*), min(as_of_date) from marts.dim_customers") == [
        (expected_customers, SECOND)
    ]
    # The second day loaded exactly that day's files.
    assert (
        _query(
            settings, f"select count(*), min(file_path) from ops.load_manifest where as_of = date '{SECOND}'"
        )[0][0]
        >= 3
    )
    assert _query(settings, "select count(*) from ops.load_failures") == [(0,)]

    before = table_checksums(settings.warehouse_path, ("raw", "ops", "staging", "marts"))
    landing_before = sorted(p.name for p in settings.landing_dir.rglob("*"))
    dags_test(settings, "boomerang_daily", SECOND, echo=False)
    assert table_checksums(settings.warehouse_path, ("raw", "ops", "staging", "marts")) == before
    assert sorted(p.name for p in settings.landing_dir.rglob("*")) == landing_before


def test_a_bad_landing_file_fails_the_run_with_a_message_naming_it(airflow_settings, tmp_path):
    settings = airflow_settings.with_(
        warehouse_path=tmp_path / "w.duckdb", landing_dir=tmp_path / "landing", world_enabled=False
    )
    bad = settings.landing_dir / "transactions" / "2025-03-02.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "transaction_id,customer_id,occurred_at,kind,amount,channel\nT1,C1,2025-03-01T10:00:00Z,purchase,-x,store\n"
    )
    with pytest.raises(AirflowRunError) as error:
        dags_test(settings, "boomerang_daily", SECOND, echo=False)
    assert "transactions/2025-03-02.csv: column amount" in str(error.value)
    assert bad.exists()

"""boomerang_daily through Airflow itself (`airflow dags test`), on a throwaway home and warehouse."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from conftest import TINY_START, make_settings, query, table_checksums

from boomerang.world.simulator import World
from devtools.local_airflow import AirflowRunError, dags_test, ensure_metadata_db

pytestmark = pytest.mark.slow

FIRST = TINY_START + timedelta(days=60)
SECOND = FIRST + timedelta(days=1)


@pytest.fixture(scope="module")
def airflow_settings(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("e2e"))
    ensure_metadata_db(settings)
    return settings


def _one_customer(airflow_settings, tmp_path):
    """A home of its own beside the module's Airflow (no simulated world), whose landing folder holds
    one good customers file."""
    settings = airflow_settings.with_(
        warehouse_path=tmp_path / "w.duckdb",
        landing_dir=tmp_path / "landing",
        quarantine_dir=tmp_path / "quarantine",
        journal_dir=tmp_path / "journal",
        backup_dir=tmp_path / "backups",
        serving_path=tmp_path / "serving" / "serving.duckdb",
        world_enabled=False,
    )
    customers = settings.landing_dir / "customers" / "2025-03-01.csv"
    customers.parent.mkdir(parents=True)
    customers.write_text(
        "customer_id,signup_date,region,birth_year,marketing_consent,email,phone,updated_at\n"
        "C1,2025-01-01,north,1980,true,a@example.com,,2025-01-01T09:00:00Z\n"
    )
    return settings


def test_two_consecutive_days_then_a_rerun_that_changes_nothing(airflow_settings):
    settings = airflow_settings

    dags_test(settings, "boomerang_daily", FIRST, echo=False)
    first_raw = dict(query(settings, "select source, sum(row_count) from ops.load_manifest group by 1"))
    assert set(first_raw) == {"customers", "transactions", "mileage_events", "interactions", "complaints"}
    assert query(settings, "select distinct as_of_date from marts.dim_customers") == [(FIRST,)]

    dags_test(settings, "boomerang_daily", SECOND, echo=False)
    world = World.open(settings.world_dir)
    assert world.today == SECOND
    expected_customers = int(np.sum(world.state["signup_day"] < (SECOND - TINY_START).days))
    assert query(settings, "select count(*), min(as_of_date) from marts.dim_customers") == [
        (expected_customers, SECOND)
    ]
    # The second day loaded exactly that day's files.
    assert (
        query(
            settings,
            f"select count(*), min(file_path) from ops.load_manifest where as_of_date = date '{SECOND}'",
        )[0][0]
        >= 3
    )
    assert query(settings, "select count(*) from ops.quality_results where outcome <> 'passed'") == [(0,)]

    before = table_checksums(settings.warehouse_path, ("raw", "ops", "staging", "marts"))
    landing_before = sorted(p.name for p in settings.landing_dir.rglob("*"))
    dags_test(settings, "boomerang_daily", SECOND, echo=False)
    assert table_checksums(settings.warehouse_path, ("raw", "ops", "staging", "marts")) == before
    assert sorted(p.name for p in settings.landing_dir.rglob("*")) == landing_before


def test_a_bad_batch_is_quarantined_the_good_ones_load_and_the_run_fails_clearly(airflow_settings, tmp_path):
    settings = _one_customer(airflow_settings, tmp_path)
    bad = settings.landing_dir / "transactions" / "2025-03-01.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
        "T1,C1,2025-03-01T10:00:00Z,purchase,-12.50,store\n"
    )
    with pytest.raises(AirflowRunError) as error:
        dags_test(settings, "boomerang_daily", SECOND, echo=False)
    message = str(error.value)
    assert "transactions/2025-03-01.csv: 1 row(s) have amount < 0 (e.g. row 2: -12.50)" in message
    assert "quarantine/transactions/" in message
    assert not bad.exists() and list((settings.quarantine_dir / "transactions").rglob("2025-03-01.csv"))
    # load_landing still ran for the good batch, and dbt built the marts on it.
    assert query(settings, "select customer_id from raw.customers") == [("C1",)]
    assert query(settings, "select count(*) from raw.transactions") == [(0,)]
    assert query(settings, "select count(*) from marts.dim_customers") == [(1,)]


def test_a_failed_step_after_the_gate_fails_the_run(airflow_settings, tmp_path):
    """A step that fails for good (journal_ledger: its journal file was damaged, no retry) fails the
    DAG run and says which task failed and why, although the last task, quality_verdict, runs whatever
    happened before it and succeeds."""
    settings = _one_customer(airflow_settings, tmp_path)
    settings.journal_dir.mkdir()
    (settings.journal_dir / f"{SECOND.isoformat()}.parquet").write_bytes(b"not the journal")
    with pytest.raises(AirflowRunError) as error:
        dags_test(settings, "boomerang_daily", SECOND, echo=False)
    message = str(error.value)
    assert f"boomerang_daily for {SECOND} failed: task(s) journal_ledger failed" in message
    assert "JournalError: The journal file" in message  # and why, from the failed task's log
    # every step before it did its work, and the verdict still ran: nothing was quarantined
    assert query(settings, "select customer_id from raw.customers") == [("C1",)]
    assert not settings.serving_path.exists()

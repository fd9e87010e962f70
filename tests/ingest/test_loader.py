"""Landing -> raw: each file exactly once, each file all-or-nothing, errors a person can act on."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import CUSTOMERS, TRANSACTIONS, query, table_checksums, write_file

from boomerang.ingest.loader import load_landing

# After every file these tests load (the tiny world ends on 2025-03-17): nothing waits for a later run.
AS_OF = date(2025, 6, 1)


@pytest.fixture
def loaded(settings):
    """A warehouse with two good batches loaded."""
    write_file(settings.landing_dir, "customers/2025-01-02.csv", CUSTOMERS)
    write_file(settings.landing_dir, "transactions/2025-01-04.csv", TRANSACTIONS)
    load_landing(settings, AS_OF)
    return settings


def test_a_file_is_loaded_once_however_often_the_load_runs(tiny_world, settings):
    settings = settings.with_(landing_dir=tiny_world.landing_dir)
    warehouse = settings.warehouse_path
    first = load_landing(settings, AS_OF)
    assert first.loaded and first.rows > 1000 and first.skipped == 0
    after_first = table_checksums(warehouse, ("raw", "ops"))
    for _ in range(2):
        again = load_landing(settings, AS_OF)
        assert again.loaded == [] and again.skipped == len(first.loaded)
    assert table_checksums(warehouse, ("raw", "ops")) == after_first


def test_rows_are_typed_and_carry_their_batch(loaded):
    rows = query(loaded, "select transaction_id, amount, kind, _source_file from raw.transactions order by 1")
    assert [(r[0], float(r[1]), r[2], r[3]) for r in rows] == [
        ("T1", 12.5, "purchase", "transactions/2025-01-04.csv"),
        ("T2", 40.0, "purchase", "transactions/2025-01-04.csv"),
        ("T3", 10.0, "refund", "transactions/2025-01-04.csv"),
    ]
    assert query(loaded, "select count(*), sum(row_count) from ops.load_manifest") == [(2, 5)]


def test_a_newer_customer_version_is_a_new_row_not_a_duplicate(loaded):
    write_file(
        loaded.landing_dir,
        "customers/2025-02-01.csv",
        "customer_id,signup_date,region,birth_year,marketing_consent,email,phone,updated_at\n"
        "C1,2025-01-01,north,1980,false,a@example.com,,2025-02-01T09:00:00Z\n",
    )
    load_landing(loaded, AS_OF)
    assert query(loaded, "select count(*) from raw.customers where customer_id = 'C1'") == [(2,)]


def test_csv_and_parquet_load_the_same_rows(tmp_path: Path, loaded):
    parquet_landing = tmp_path / "parquet_landing"
    for csv_file in loaded.landing_dir.rglob("*.csv"):
        target = parquet_landing / csv_file.relative_to(loaded.landing_dir).with_suffix(".parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        duckdb.sql(
            f"copy (select * from read_csv('{csv_file}', header = true)) to '{target}' (format parquet)"
        )
    load_landing(loaded.with_(landing_dir=parquet_landing, warehouse_path=tmp_path / "p.duckdb"), AS_OF)
    columns = "* exclude (_batch_id, _source_file)"
    con = duckdb.connect(str(tmp_path / "p.duckdb"), read_only=True)
    from_parquet = con.execute(f"select {columns} from raw.transactions order by 1").fetchall()
    con.close()
    assert from_parquet == query(loaded, f"select {columns} from raw.transactions order by 1")


def test_files_outside_source_folders_are_ignored_not_lost(settings):
    write_file(settings.landing_dir, "customers/a.csv", CUSTOMERS)
    write_file(settings.landing_dir, "readme.txt", "notes")
    write_file(settings.landing_dir, "orders/2025-01-01.csv", "order_id\n1\n")
    report = load_landing(settings, AS_OF)
    assert sorted(report.ignored) == ["orders/2025-01-01.csv", "readme.txt"]
    assert (settings.landing_dir / "orders" / "2025-01-01.csv").exists()


def test_an_empty_landing_folder_is_fine(settings):
    report = load_landing(settings, AS_OF)
    assert report.loaded == [] and report.quarantined == []


def test_loading_keeps_the_landing_files(tiny_world, settings):
    landing = settings.landing_dir
    shutil.copytree(tiny_world.landing_dir, landing)
    files = sorted(p.name for p in landing.rglob("*"))
    load_landing(settings, AS_OF)
    assert sorted(p.name for p in landing.rglob("*")) == files


@pytest.mark.parametrize("make", ["missing", "a file"])
def test_with_the_world_off_a_missing_landing_folder_fails_and_creates_nothing(settings, tmp_path, make):
    """A typo in BOOMERANG_LANDING_DIR must fail the load, not "load 0 files" and pass."""
    from boomerang.ingest.loader import LandingMissing, validate_landing

    landing = tmp_path / "landng"
    if make == "a file":
        landing.write_text("not a folder")
    settings = settings.with_(world_enabled=False, landing_dir=landing)
    for step in (load_landing, validate_landing):
        with pytest.raises(LandingMissing) as error:
            step(settings, AS_OF)
        message = str(error.value)
        assert (
            str(landing) in message
            and "BOOMERANG_LANDING_DIR" in message
            and "BOOMERANG_WORLD=off" in message
        )
    assert not settings.warehouse_path.exists()


def test_an_empty_landing_folder_says_no_new_data(settings, caplog):
    settings = settings.with_(world_enabled=False)
    settings.landing_dir.mkdir(parents=True)
    with caplog.at_level("WARNING", logger="boomerang.ingest.loader"):
        report = load_landing(settings, AS_OF)
    assert report.new_files == 0 and report.as_dict()["files_new"] == 0
    assert report.summary().startswith("no new data")
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"no new landing files in {settings.landing_dir}: nothing loaded for {AS_OF}"
    ]


def test_a_second_load_of_the_same_files_says_no_new_data(loaded, caplog):
    with caplog.at_level("WARNING", logger="boomerang.ingest.loader"):
        report = load_landing(loaded, AS_OF)
    assert report.skipped == 2 and report.new_files == 0 and "no new data" in report.summary()
    assert any("no new landing files" in r.getMessage() for r in caplog.records)


def test_a_load_with_new_files_does_not_warn(settings, caplog):
    write_file(settings.landing_dir, "customers/a.csv", CUSTOMERS)
    with caplog.at_level("WARNING", logger="boomerang.ingest.loader"):
        report = load_landing(settings, AS_OF)
    assert report.new_files == 1 and "no new data" not in report.summary()
    assert not any("no new landing files" in r.getMessage() for r in caplog.records)

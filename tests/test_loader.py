"""Landing -> raw: each file exactly once, each file all-or-nothing, errors a person can act on."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import table_checksums

from boomerang.loader import LoadError, load_landing

CUSTOMERS = (
    "customer_id,signup_date,region,birth_year,marketing_consent,email,phone,updated_at\n"
    "C1,2025-01-01,north,1980,true,a@example.com,,2025-01-01T09:00:00Z\n"
    "C2,2025-01-02,west,,false,b@example.com,+1-555-0100,2025-01-02T09:00:00Z\n"
)
TRANSACTIONS = (
    "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
    "T1,C1,2025-01-03T10:00:00Z,purchase,12.50,store\n"
    "T2,C2,2025-01-03T11:00:00Z,purchase,40.00,online\n"
    "T3,C2,2025-01-04T11:00:00Z,refund,10.00,online\n"
)


def _write(landing: Path, relative: str, text: str) -> Path:
    path = landing / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def loaded(settings):
    """A warehouse with two good batches loaded."""
    _write(settings.landing_dir, "customers/2025-01-02.csv", CUSTOMERS)
    _write(settings.landing_dir, "transactions/2025-01-04.csv", TRANSACTIONS)
    load_landing(settings.warehouse_path, settings.landing_dir)
    return settings


def _query(settings, sql: str):
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_file_is_loaded_once_however_often_the_load_runs(tiny_world, tmp_path: Path):
    warehouse = tmp_path / "w.duckdb"
    first = load_landing(warehouse, tiny_world.landing_dir)
    assert first.loaded and first.rows > 1000 and first.skipped == 0
    after_first = table_checksums(warehouse, ("raw", "ops"))
    for _ in range(2):
        again = load_landing(warehouse, tiny_world.landing_dir)
        assert again.loaded == [] and again.skipped == len(first.loaded)
    assert table_checksums(warehouse, ("raw", "ops")) == after_first


def test_rows_are_typed_and_carry_their_batch(loaded):
    rows = _query(
        loaded, "select transaction_id, amount, kind, _source_file from raw.transactions order by 1"
    )
    assert [(r[0], float(r[1]), r[2], r[3]) for r in rows] == [
        ("T1", 12.5, "purchase", "transactions/2025-01-04.csv"),
        ("T2", 40.0, "purchase", "transactions/2025-01-04.csv"),
        ("T3", 10.0, "refund", "transactions/2025-01-04.csv"),
    ]
    assert _query(loaded, "select count(*), sum(row_count) from ops.load_manifest") == [(2, 5)]


BAD_FILES = {
    "wrong type": (
        "transactions/bad.csv",
        TRANSACTIONS.replace(
            "T3,C2,2025-01-04T11:00:00Z,refund,10.00", "T9,C2,2025-01-04T11:00:00Z,refund,ten"
        ),
        ["transactions/bad.csv", "column amount", "DECIMAL", "row 4", "'ten'"],
    ),
    "missing column": (
        "transactions/bad.csv",
        "transaction_id,customer_id,occurred_at,kind,amount\nT9,C1,2025-01-03T10:00:00Z,purchase,1.00\n",
        ["transactions/bad.csv", "missing column(s) channel"],
    ),
    "empty required value": (
        "transactions/bad.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\nT9,,2025-01-03T10:00:00Z,purchase,1.00,app\n",
        ["column customer_id", "empty value", "row 2"],
    ),
    "unparseable timestamp": (
        "transactions/bad.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\nT9,C1,yesterday,purchase,1.00,app\n",
        ["column occurred_at", "TIMESTAMPTZ", "'yesterday'"],
    ),
    "value outside the contract": (
        "transactions/bad.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\nT9,C1,2025-01-03T10:00:00Z,gift,1.00,app\n",
        ["column kind", "not in (purchase, refund)", "'gift'"],
    ),
    "duplicate key in the file": (
        "transactions/bad.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
        "T9,C1,2025-01-03T10:00:00Z,purchase,1.00,app\nT9,C1,2025-01-03T10:00:00Z,purchase,2.00,app\n",
        ["duplicate key(s) (transaction_id)", "'T9'"],
    ),
    "key already loaded": (
        "transactions/resent.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\nT1,C1,2025-01-03T10:00:00Z,purchase,99.00,app\n",
        ["transactions/resent.csv", "already loaded into raw.transactions", "'T1'"],
    ),
    "header only": (
        "transactions/empty.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\n",
        ["transactions/empty.csv", "no rows"],
    ),
    "not a parquet file": (
        "transactions/broken.parquet",
        "this is not parquet",
        ["transactions/broken.parquet", "cannot be read as PARQUET"],
    ),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_file_fails_clearly_and_leaves_raw_unchanged(loaded, case: str):
    relative, text, expected = BAD_FILES[case]
    before = table_checksums(loaded.warehouse_path)
    bad = _write(loaded.landing_dir, relative, text)

    with pytest.raises(LoadError) as error:
        load_landing(loaded.warehouse_path, loaded.landing_dir)

    message = str(error.value)
    for fragment in expected:
        assert fragment in message
    assert "drop them back into" in message
    assert table_checksums(loaded.warehouse_path) == before
    assert bad.exists(), "the bad file stays in landing: nothing is lost"
    assert _query(loaded, f"select count(*) from ops.load_failures where file_path = '{relative}'") == [(1,)]


def test_good_batches_of_the_same_run_still_load(settings):
    _write(settings.landing_dir, "customers/a.csv", CUSTOMERS)
    _write(settings.landing_dir, "transactions/good.csv", TRANSACTIONS)
    _write(
        settings.landing_dir,
        "transactions/bad.csv",
        TRANSACTIONS.replace("\nT", "\nX").replace("12.50", "oops"),
    )
    with pytest.raises(LoadError, match="1 landing file"):
        load_landing(settings.warehouse_path, settings.landing_dir)
    assert _query(settings, "select count(*) from raw.transactions") == [(3,)]
    assert _query(settings, "select file_path from ops.load_manifest order by 1") == [
        ("customers/a.csv",),
        ("transactions/good.csv",),
    ]


def test_a_corrected_file_dropped_back_loads(loaded):
    bad = _write(
        loaded.landing_dir,
        "transactions/fix-me.csv",
        TRANSACTIONS.replace("\nT", "\nX").replace("12.50", "oops"),
    )
    with pytest.raises(LoadError):
        load_landing(loaded.warehouse_path, loaded.landing_dir)
    bad.write_text(TRANSACTIONS.replace("\nT", "\nX"))
    report = load_landing(loaded.warehouse_path, loaded.landing_dir)
    assert report.loaded == [("transactions/fix-me.csv", 3)]
    assert _query(loaded, "select count(*) from raw.transactions") == [(6,)]


def test_a_newer_customer_version_is_a_new_row_not_a_duplicate(loaded):
    _write(
        loaded.landing_dir,
        "customers/2025-02-01.csv",
        "customer_id,signup_date,region,birth_year,marketing_consent,email,phone,updated_at\n"
        "C1,2025-01-01,north,1980,false,a@example.com,,2025-02-01T09:00:00Z\n",
    )
    load_landing(loaded.warehouse_path, loaded.landing_dir)
    assert _query(loaded, "select count(*) from raw.customers where customer_id = 'C1'") == [(2,)]


def test_csv_and_parquet_load_the_same_rows(tmp_path: Path, loaded):
    parquet_landing = tmp_path / "parquet_landing"
    for csv_file in loaded.landing_dir.rglob("*.csv"):
        target = parquet_landing / csv_file.relative_to(loaded.landing_dir).with_suffix(".parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        duckdb.sql(
            f"copy (select * from read_csv('{csv_file}', header = true)) to '{target}' (format parquet)"
        )
    load_landing(tmp_path / "p.duckdb", parquet_landing)
    columns = "* exclude (_batch_id, _source_file)"
    con = duckdb.connect(str(tmp_path / "p.duckdb"), read_only=True)
    from_parquet = con.execute(f"select {columns} from raw.transactions order by 1").fetchall()
    con.close()
    assert from_parquet == _query(loaded, f"select {columns} from raw.transactions order by 1")


def test_files_outside_source_folders_are_ignored_not_lost(settings):
    _write(settings.landing_dir, "customers/a.csv", CUSTOMERS)
    _write(settings.landing_dir, "readme.txt", "notes")
    _write(settings.landing_dir, "orders/2025-01-01.csv", "order_id\n1\n")
    report = load_landing(settings.warehouse_path, settings.landing_dir)
    assert sorted(report.ignored) == ["orders/2025-01-01.csv", "readme.txt"]
    assert (settings.landing_dir / "orders" / "2025-01-01.csv").exists()


def test_an_empty_landing_folder_is_fine(settings):
    report = load_landing(settings.warehouse_path, settings.landing_dir)
    assert report.loaded == [] and report.failed == []


def test_loading_keeps_the_landing_files(tiny_world, tmp_path: Path):
    landing = tmp_path / "landing"
    shutil.copytree(tiny_world.landing_dir, landing)
    files = sorted(p.name for p in landing.rglob("*"))
    load_landing(tmp_path / "w.duckdb", landing)
    assert sorted(p.name for p in landing.rglob("*")) == files

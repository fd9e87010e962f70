"""Issue #18: the gate changes nothing silently. What it reads by a documented rule is counted."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from conftest import query, write_file

from boomerang.ingest.gate import QualityGateError
from boomerang.ingest.loader import load_landing

AS_OF = date(2025, 1, 6)
CUSTOMERS = (
    "customer_id,signup_date,region,birth_year,marketing_consent,email,phone,updated_at\n"
    "C1,2025-01-01,north,1980,TRUE,a@example.com,,2025-01-01T09:00:00Z\n"
)


def test_values_are_stored_exactly_as_written_and_a_timestamp_without_offset_is_counted(settings):
    write_file(settings.landing_dir, "customers/2025-01-02.csv", CUSTOMERS)
    write_file(
        settings.landing_dir,
        "transactions/2025-01-05.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
        "T1,C1,2025-01-05 10:00:00,purchase,12.500,store\n"  # no offset: read as UTC, and counted
        "T2,C1,2025-01-05T11:00:00+02:00,purchase,+3,app\n",
    )
    load_landing(settings, AS_OF)
    assert query(settings, "select transaction_id, occurred_at, amount from raw.transactions order by 1") == [
        ("T1", datetime(2025, 1, 5, 10, tzinfo=UTC), Decimal("12.50")),
        ("T2", datetime(2025, 1, 5, 9, tzinfo=UTC), Decimal("3.00")),
    ]
    assert query(settings, "select marketing_consent from raw.customers") == [(True,)]
    assert query(
        settings, "select outcome, message from ops.quality_results where source = 'transactions'"
    ) == [("passed", "1 occurred_at value(s) without a UTC offset, read as UTC")]
    assert query(settings, "select message from ops.quality_results where source = 'customers'") == [(None,)]


def test_a_parquet_float_that_its_column_holds_exactly_is_taken(settings):
    import duckdb

    write_file(settings.landing_dir, "customers/2025-01-02.csv", CUSTOMERS)
    path = settings.landing_dir / "mileage_events" / "2025-01-05.parquet"
    path.parent.mkdir(parents=True)
    duckdb.execute(
        "copy (select 'M1' as event_id, 'C1' as customer_id, timestamptz '2025-01-05 10:00:00+00' as occurred_at,"
        " 'earn' as kind, 10.0::double as points, null::varchar as transaction_id) "
        f"to '{path}' (format parquet)"
    )
    load_landing(settings, AS_OF)
    assert query(settings, "select event_id, points from raw.mileage_events") == [("M1", 10)]


def test_gx_is_not_asked_to_fingerprint_each_batch(settings, monkeypatch):
    """GX's batch fingerprint (pandas' hash of every row, twice per validation) is metadata the gate
    never reads; it cost 40% of validating two years of history at 1M customers. The gate still
    decides the same."""
    from great_expectations.execution_engine import pandas_execution_engine

    assert hasattr(pandas_execution_engine, "HASH_THRESHOLD")  # the switch the gate turns off
    fingerprinted: list[int] = []
    original = pandas_execution_engine.hash_pandas_dataframe
    monkeypatch.setattr(
        pandas_execution_engine,
        "hash_pandas_dataframe",
        lambda frame: fingerprinted.append(len(frame)) or original(frame),
    )
    write_file(settings.landing_dir, "customers/2025-01-02.csv", CUSTOMERS)
    write_file(
        settings.landing_dir,
        "transactions/2025-01-05.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\nT1,C1,2025-01-05T10:00:00Z,purchase,-1,store\n",
    )
    with pytest.raises(QualityGateError, match=r"1 row\(s\) have amount < 0"):
        load_landing(settings, AS_OF)
    assert fingerprinted == []
    assert query(settings, "select source, outcome from ops.quality_results order by 1") == [
        ("customers", "passed"),
        ("transactions", "quarantined"),
    ]

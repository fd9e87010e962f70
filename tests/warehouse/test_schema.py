"""The Python-owned tables: created in one place, and an older warehouse migrated to today's layout."""

from __future__ import annotations

import re
from datetime import date

from boomerang.config import PROJECT_ROOT
from boomerang.warehouse.db import connect
from boomerang.warehouse.schema import ensure_schemas, migrate

# A warehouse as an earlier version left it: ops.* named the run's date `as_of`, and the ledger's
# decision record had no segment.
OLD_LAYOUT = (
    "create schema ops",
    "create schema ledger",
    """create table ops.load_manifest (file_path varchar not null, content_hash varchar not null,
        source varchar not null, batch_id varchar not null, row_count bigint not null, as_of date,
        loaded_at timestamp not null, primary key (file_path, content_hash))""",
    """create table ops.quality_results (file_path varchar not null, content_hash varchar not null,
        source varchar not null, as_of date, validated_at timestamp not null, outcome varchar not null,
        row_count bigint not null, expectations integer not null, failed_expectations integer not null,
        quarantine_path varchar, message varchar)""",
    """create table ops.quality_failures (file_path varchar not null, content_hash varchar not null,
        source varchar not null, as_of date, validated_at timestamp not null, expectation varchar not null,
        column_name varchar, rule varchar not null, unexpected_count bigint not null, sample varchar)""",
    "insert into ops.load_manifest values ('customers/a.csv', 'h', 'customers', 'b', 3, date '2025-01-02', now())",
    "insert into ops.quality_results values "
    "('customers/a.csv', 'h', 'customers', date '2025-01-02', now(), 'passed', 3, 12, 0, null, null)",
)


def _columns(con, table: str) -> list[str]:
    schema, name = table.split(".")
    return [
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
            "order by ordinal_position",
            [schema, name],
        ).fetchall()
    ]


def test_an_older_warehouse_is_migrated_keeping_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    with connect(path) as con:
        for statement in OLD_LAYOUT:
            con.execute(statement)
    with connect(path) as con:
        ensure_schemas(con)
        for table in ("ops.load_manifest", "ops.quality_results", "ops.quality_failures"):
            assert "as_of_date" in _columns(con, table) and "as_of" not in _columns(con, table), table
        assert con.execute("select as_of_date, row_count from ops.load_manifest").fetchall() == [
            (date(2025, 1, 2), 3)
        ]
        # the views over the renamed columns work
        assert con.execute("select as_of_date, passed from ops.quality_by_day").fetchall() == [
            (date(2025, 1, 2), 1)
        ]
        assert "segment" in _columns(con, "ledger.entries")
        assert migrate(con) == []  # a second pass changes nothing


def test_a_new_warehouse_needs_no_migration(tmp_path):
    with connect(tmp_path / "new.duckdb") as con:
        ensure_schemas(con)
        assert migrate(con) == []
        ensure_schemas(con)  # idempotent


def test_every_python_owned_table_is_created_in_schema_py():
    """DDL for raw, ops, ml, ledger and the snapshot's meta lives in boomerang/warehouse/schema.py only."""
    ddl = re.compile(
        r"create\s+(or\s+replace\s+)?(table|view|macro)\s+(if\s+not\s+exists\s+)?"
        r"(\{[a-z_]+\}\.)?(raw|ops|ml|ledger|meta)\.",
        re.IGNORECASE,
    )
    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for folder in ("boomerang", "ml", "devtools")
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if path.name != "schema.py" and ddl.search(path.read_text())
    ]
    assert offenders == []


def test_every_module_opens_the_warehouse_through_connect():
    """Bare duckdb.connect misses the session settings; only warehouse/db.py and the serving snapshot's
    in-memory staging connection (configured with the same settings) call it."""
    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for folder in ("boomerang", "ml", "devtools")
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if "duckdb.connect(" in path.read_text()
    ]
    assert sorted(offenders) == ["boomerang/warehouse/db.py", "boomerang/warehouse/serving.py"]


def test_the_ledger_keys_are_primary_keys_duckdb_enforces(tmp_path):
    """ledger.entries.entry_key and ledger.outbox.idempotency_key are unique and never null because
    DuckDB refuses anything else on insert: no dbt source test re-reads the ledger for it daily."""
    import duckdb
    import pytest

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schemas(con)
    entry = (
        "insert into ledger.entries (entry_key, kind, customer_id, lot_id, points, effective_at, campaign_id, "
        "policy_version, as_of_date, payload_hash, recorded_at) values (?, 'holdout', 'C1', null, 0, "
        "timestamp '2025-01-01', 'c', 'p', date '2025-01-01', 'h', now())"
    )
    con.execute(entry, ["holdout:c:C1:2025-01-01"])
    with pytest.raises(duckdb.ConstraintException, match="(?i)duplicate key"):
        con.execute(entry, ["holdout:c:C1:2025-01-01"])
    with pytest.raises(duckdb.ConstraintException, match="(?i)not null"):
        con.execute(entry, [None])
    [(key_columns,)] = con.execute(
        "select list(constraint_column_names) from duckdb_constraints() "
        "where schema_name = 'ledger' and table_name = 'outbox' and constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    assert key_columns == [["idempotency_key"]]
    con.close()

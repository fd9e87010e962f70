"""The DuckDB warehouse: opening it and creating the schemas Python owns (raw, ops, ml, ledger).

dbt owns ``staging``/``intermediate``/``marts``; Python owns ``raw`` (what the
loader wrote), ``ops`` (load manifest, quality-gate results and failures, ledger invariants),
``ml`` (churn scores) and ``ledger`` (grants, holdouts, clawbacks and the outbox: boomerang.ledger). DuckDB allows one
writer process at a time, so every writer opens, works and closes promptly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from boomerang.contract import SOURCES, raw_table_ddl
from boomerang.ledger import ensure_ledger

OPS_DDL = (
    """
    create table if not exists ops.load_manifest (
        file_path      varchar   not null,  -- relative to the landing folder
        content_hash   varchar   not null,  -- sha256 of the file's bytes
        source         varchar   not null,
        batch_id       varchar   not null,
        row_count      bigint    not null,
        as_of          date,                -- the run (logical date) that loaded it
        loaded_at      timestamp not null,  -- wall clock, for operators only
        primary key (file_path, content_hash)
    )
    """,
    """
    create table if not exists ops.quality_results (
        file_path          varchar   not null,  -- relative to the landing folder
        content_hash       varchar   not null,
        source             varchar   not null,
        as_of              date,                -- the run that validated it
        validated_at       timestamp not null,  -- wall clock, for operators
        outcome            varchar   not null,  -- passed | quarantined | deferred
        row_count          bigint    not null,
        expectations       integer   not null,  -- evaluated
        failed_expectations integer  not null,
        quarantine_path    varchar,
        message            varchar
    )
    """,
    """
    create table if not exists ops.quality_failures (
        file_path          varchar   not null,
        content_hash       varchar   not null,
        source             varchar   not null,
        as_of              date,
        validated_at       timestamp not null,
        expectation        varchar   not null,  -- Great Expectations' expectation type
        column_name        varchar,
        rule               varchar   not null,  -- the rule in words
        unexpected_count   bigint    not null,
        sample             varchar              -- JSON: [[file row, value], ...]
    )
    """,
    """
    create or replace view ops.quality_by_day as
    -- One row per run date and source: batches validated, passed, quarantined, deferred.
    select
        as_of,
        source,
        count(*) as batches,
        count(*) filter (where outcome = 'passed') as passed,
        count(*) filter (where outcome = 'quarantined') as quarantined,
        count(*) filter (where outcome = 'deferred') as deferred,
        sum(row_count) filter (where outcome = 'passed') as rows_passed
    from ops.quality_results
    group by as_of, source
    """,
    """
    create or replace view ops.quality_failing_expectations as
    -- One row per run date, source and broken rule: how often it broke and on how many rows.
    select
        as_of,
        source,
        expectation,
        column_name,
        rule,
        count(*) as batches,
        sum(unexpected_count) as rows
    from ops.quality_failures
    group by all
    """,
)

ML_DDL = (
    """
create table if not exists ml.churn_scores (
    customer_id       varchar   not null,
    as_of_date        date      not null,  -- the run's as-of date: features from events before it
    churn_probability double    not null,  -- calibrated probability of no purchase in the horizon
    risk_band         varchar   not null,  -- high | medium | low (thresholds in ml/params.yaml)
    model_version     varchar   not null,
    reason_1          varchar,             -- what raises this customer's risk most, in words
    reason_2          varchar,
    reason_3          varchar,
    scored_at         timestamp not null,  -- wall clock, for operators
    primary key (customer_id, as_of_date, model_version)
)
""",
)


@contextmanager
def connect(path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse in UTC; create its folder first when writing."""
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise FileNotFoundError(
            f"No warehouse at {path}. Run `make demo` or `boomerang load` first, "
            "or point BOOMERANG_WAREHOUSE at an existing file."
        )
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        con.execute("set TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schemas Python owns (``raw``, ``ops``, ``ml``, ``ledger``) and their tables if missing."""
    con.execute("create schema if not exists raw")
    con.execute("create schema if not exists ops")
    con.execute("create schema if not exists ml")
    for source in SOURCES.values():
        con.execute(raw_table_ddl(source))
    for ddl in (*OPS_DDL, *ML_DDL):
        con.execute(ddl)
    ensure_ledger(con)


def table_row_counts(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, int]:
    """Rows per table in ``schema`` (empty when the schema does not exist)."""
    names = [
        row[0]
        for row in con.execute(
            "select table_name from information_schema.tables where table_schema = ? order by table_name",
            [schema],
        ).fetchall()
    ]
    return {
        name: con.execute(f'select count(*) from "{schema}"."{name}"').fetchone()[0]  # type: ignore[index]
        for name in names
    }

"""The serving snapshot BI tools read: marts and churn scores only, no PII, swapped in atomically, open
in the previous major DuckDB release, never blocking a run, never seen half-published."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import date, timedelta
from importlib.util import find_spec
from pathlib import Path

import duckdb
import pytest
from conftest import TINY_AS_OF, copy_warehouse, make_settings, table_checksums

from boomerang.warehouse import serving
from boomerang.warehouse.dbt import run_dbt
from boomerang.warehouse.schema import ensure_schemas

AS_OF = date(2025, 3, 1)
FORBIDDEN_SCHEMAS = {"raw", "staging", "intermediate", "ledger", "ops"}


def old_duckdb() -> Path:
    """The DuckDB 1.x CLI of the dev dependency ``duckdb-cli`` (pinned in uv.lock, installed by ``make setup``).

    The binary in its package, not the ``duckdb`` console script: that one is a Python wrapper."""
    spec = find_spec("duckdb_cli")
    binary = Path(spec.origin).with_name("duckdb") if spec and spec.origin else None
    assert binary and binary.exists(), (
        "the DuckDB 1.x CLI (dev dependency duckdb-cli) is missing: run `make setup`"
    )
    return binary


def old_client(path: Path, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(old_duckdb()), "-readonly", "-json", str(path), "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )


def old_client_rows(path: Path, sql: str) -> list[dict]:
    result = old_client(path, sql)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout or "[]")


def snapshot_rows(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def snapshot_tables(path: Path) -> set[str]:
    return {
        f"{schema}.{table}"
        for schema, table in snapshot_rows(
            path, "select table_schema, table_name from information_schema.tables"
        )
    }


def snapshot_columns(path: Path) -> set[str]:
    return {
        column.lower()
        for (column,) in snapshot_rows(path, "select column_name from information_schema.columns")
    }


def meta(path: Path) -> list[tuple]:
    """meta.snapshot without the wall clock."""
    return snapshot_rows(
        path,
        "select as_of_date, format_version, storage_version, source_warehouse, table_schema, table_name, "
        "row_count from meta.snapshot order by table_schema, table_name",
    )


# ---------------------------------------------------------------------------- a small warehouse


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """A warehouse with every schema, PII in raw and staging, and types the marts use."""
    path = tmp_path / "warehouse" / "boomerang.duckdb"
    path.parent.mkdir()
    con = duckdb.connect(str(path))
    try:
        ensure_schemas(con)  # raw, ops, ml, ledger as the pipeline makes them
        con.execute(
            "insert into raw.customers (customer_id, email, phone) "
            "select 'C' || range, 'c' || range || '@example.com', '+1-555-' || range from range(50)"
        )
        for schema in ("staging", "intermediate", "marts"):
            con.execute(f"create schema {schema}")
        con.execute(
            "create view staging.stg_landing__customers as select customer_id, email, phone from raw.customers"
        )
        con.execute(
            "create table intermediate.int_customer_segments as select customer_id from raw.customers"
        )
        con.execute(
            """
            create table marts.dim_customers as
            select
                'C' || n as customer_id,
                'north' as region,
                date '2025-01-01' + (n % 30)::integer as signup_date,
                n % 2 = 0 as has_marketing_consent,
                (n * 12.5)::decimal(38, 2) as lifetime_spend,
                n::hugeint as lifetime_points,
                timestamp '2025-02-01 10:00:00' + to_minutes(n) as last_purchase_at,
                [n, n + 1] as recent_days,
                date '2025-03-01' as as_of_date
            from range(50) as numbers(n)
            """
        )
        con.execute(
            "create table marts.fct_pregrant_decisions as select customer_id, 'treatment' as arm, "
            "500 as granted_points, date '2025-03-01' as decision_date from raw.customers limit 7"
        )
        con.execute("create table marts.rewards_daily (as_of_date date, points_granted bigint)")  # empty
        con.execute(
            "insert into ml.churn_scores select customer_id, date '2025-03-01', 0.4, 'medium', 'v1', "
            "'r1', null, null, timestamp '2025-03-01 01:00:00', 'c1', null, null from raw.customers"
        )
    finally:
        con.close()
    return path


def test_the_snapshot_holds_the_marts_and_churn_scores_and_nothing_else(warehouse, tmp_path):
    target = tmp_path / "serving" / "serving.duckdb"
    counts = serving.publish(warehouse, target, AS_OF)

    assert counts == {
        "marts.dim_customers": 50,
        "marts.fct_pregrant_decisions": 7,
        "marts.rewards_daily": 0,
        "ml.churn_scores": 50,
    }
    tables = snapshot_tables(target)
    assert tables == {*counts, "meta.snapshot"}
    assert not {name.split(".")[0] for name in tables} & FORBIDDEN_SCHEMAS
    assert not snapshot_columns(target) & serving.CONTRACT_PII_COLUMNS
    assert meta(target) == [
        (AS_OF, serving.FORMAT_VERSION, "v1.0.0", str(warehouse), *name.split("."), rows)
        for name, rows in sorted(counts.items())
    ]
    # Types survive the copy.
    assert snapshot_rows(
        target, "select lifetime_spend, recent_days from marts.dim_customers where customer_id = 'C3'"
    ) == [(pytest.approx(37.5), [3, 4])]
    # Nothing is left beside it but the snapshot: a link to its one version.
    assert sorted(p.name for p in target.parent.iterdir()) == ["serving.duckdb", "serving.duckdb.versions"]
    assert target.is_symlink()
    assert [p.name for p in serving.versions_dir(target).iterdir()] == [serving.current_version(target).name]


def test_republishing_the_same_date_gives_the_same_contents(warehouse, tmp_path):
    target = tmp_path / "serving.duckdb"
    serving.publish(warehouse, target, AS_OF)
    first, first_meta = table_checksums(target, ("marts", "ml")), meta(target)
    serving.publish(warehouse, target, AS_OF)
    assert table_checksums(target, ("marts", "ml")) == first
    assert meta(target) == first_meta


def published(caplog) -> tuple[int, int, int]:
    """(copied, appended to, kept) of the last publish, from its log line."""
    found = re.findall(
        r"copied (\d+) changed table\(s\), appended to (\d+), kept (\d+) unchanged", caplog.text
    )
    assert found, caplog.text
    return int(found[-1][0]), int(found[-1][1]), int(found[-1][2])


def test_a_publish_copies_only_what_changed_and_equals_a_publish_from_scratch(warehouse, tmp_path, caplog):
    caplog.set_level("INFO", logger="boomerang.warehouse.serving")
    target = tmp_path / "serving" / "serving.duckdb"
    serving.publish(warehouse, target, AS_OF)
    assert published(caplog) == (4, 0, 0)
    serving.publish(warehouse, target, AS_OF + timedelta(days=1))
    assert published(caplog) == (0, 0, 4)  # nothing changed: every table kept, only meta.snapshot rewritten
    assert {row[0] for row in meta(target)} == {AS_OF + timedelta(days=1)}

    con = duckdb.connect(str(warehouse))
    con.execute(  # appended rows
        "insert into ml.churn_scores select customer_id, date '2025-03-02', 0.5, 'medium', 'v1', "
        "'r1', null, null, timestamp '2025-03-02 01:00:00', 'c1', null, null from raw.customers limit 3"
    )
    con.execute("comment on column marts.dim_customers.region is 'Where they live.'")  # words, same rows
    con.execute("drop table marts.rewards_daily")  # gone from the warehouse: gone from the snapshot
    con.execute("create schema marts_extra")  # not published: never in the snapshot
    con.execute("create table marts.fct_new as select 1 as n")  # a new mart
    con.close()
    serving.publish(warehouse, target, AS_OF + timedelta(days=2))
    # copied: the re-described customers, the new mart; appended to: the scores; kept: the decisions
    assert published(caplog) == (2, 1, 1)
    scratch = tmp_path / "scratch" / "serving.duckdb"
    serving.publish(warehouse, scratch, AS_OF + timedelta(days=2))

    assert (
        snapshot_tables(target)
        == snapshot_tables(scratch)
        == {
            "marts.dim_customers",
            "marts.fct_new",
            "marts.fct_pregrant_decisions",
            "meta.snapshot",
            "ml.churn_scores",
        }
    )
    assert table_checksums(target, ("marts", "ml")) == table_checksums(scratch, ("marts", "ml"))
    assert snapshot_rows(
        target, "select * exclude (published_at, source_warehouse) from meta.snapshot order by all"
    ) == (
        snapshot_rows(
            scratch, "select * exclude (published_at, source_warehouse) from meta.snapshot order by all"
        )
    )
    assert comments(target) == comments(scratch)
    assert comments(target)["marts.dim_customers.region"] == "Where they live."
    assert old_client_rows(target, "select count(*) as n from ml.churn_scores") == [{"n": 53}]

    # A score of a day the snapshot already holds changed (a re-run of that day): copied whole.
    con = duckdb.connect(str(warehouse))
    con.execute("update ml.churn_scores set churn_probability = 0.9 where customer_id = 'C7'")
    con.close()
    serving.publish(warehouse, target, AS_OF + timedelta(days=3))
    assert published(caplog) == (1, 0, 3)
    serving.publish(warehouse, scratch, AS_OF + timedelta(days=3))
    assert table_checksums(target, ("marts", "ml")) == table_checksums(scratch, ("marts", "ml"))


def test_a_snapshot_of_an_older_layout_or_mostly_free_space_is_written_anew(warehouse, tmp_path, caplog):
    caplog.set_level("INFO", logger="boomerang.warehouse.serving")
    target = tmp_path / "serving.duckdb"
    serving.publish(warehouse, target, AS_OF)
    con = duckdb.connect(str(serving.current_version(target)))
    con.execute("alter table meta.snapshot drop column fingerprint")  # as FORMAT_VERSION 1 wrote it
    con.close()
    serving.publish(warehouse, target, AS_OF)
    assert published(caplog) == (4, 0, 0)
    assert all(
        fingerprint for (fingerprint,) in snapshot_rows(target, "select fingerprint from meta.snapshot")
    )

    # A version whose blocks are mostly free (a large table dropped from it) is not copied forward.
    con = duckdb.connect(str(serving.current_version(target)))
    con.execute("create table marts.big as select range as n, md5(range::varchar) as s from range(300000)")
    con.execute("checkpoint")
    con.execute("create table marts.after_it as select range as n, md5(range::varchar) as s from range(9000)")
    con.execute("checkpoint")
    con.execute("drop table marts.big")
    con.execute("checkpoint")
    [(free, total)] = con.execute("select free_blocks, total_blocks from pragma_database_size()").fetchall()
    con.close()
    assert free > total / 2
    serving.publish(warehouse, target, AS_OF)
    assert published(caplog) == (4, 0, 0)
    [(free, total)] = snapshot_rows(target, "select free_blocks, total_blocks from pragma_database_size()")
    assert free <= total / 2


def test_a_pii_column_in_a_mart_is_refused_and_the_old_snapshot_stays(warehouse, tmp_path):
    target = tmp_path / "serving.duckdb"
    serving.publish(warehouse, target, AS_OF)
    before = (target.stat().st_ino, table_checksums(target, ("marts", "ml", "meta")))

    con = duckdb.connect(str(warehouse))
    con.execute("create table marts.contact_list as select customer_id, email from raw.customers")
    con.close()
    with pytest.raises(serving.ServingError) as error:
        serving.publish(warehouse, target, AS_OF + timedelta(days=1))
    message = str(error.value)
    assert "marts.contact_list.email is PII" in message
    assert "Drop the column from the mart" in message and "previous snapshot is left as it was" in message
    assert (target.stat().st_ino, table_checksums(target, ("marts", "ml", "meta"))) == before
    assert sorted(p.name for p in tmp_path.iterdir() if "serving" in p.name) == [
        "serving.duckdb",
        "serving.duckdb.versions",
    ]
    assert [p.name for p in serving.versions_dir(target).iterdir()] == [serving.current_version(target).name]


def test_columns_tagged_pii_in_the_dbt_manifest_are_refused(warehouse, tmp_path):
    target_dir = tmp_path / "dbt_target"
    target_dir.mkdir()
    (target_dir / "manifest.json").write_text(
        json.dumps(
            {
                "nodes": {
                    "model.boomerang.stg_landing__addresses": {
                        "columns": {"home_address": {"name": "home_address", "tags": ["pii"]}}
                    },
                    "model.boomerang.dim_customers": {
                        "columns": {"region": {"name": "region", "config": {"tags": ["geo"]}}}
                    },
                },
                "sources": {
                    "source.boomerang.landing.customers": {
                        "columns": {"birth_date": {"name": "birth_date", "config": {"tags": ["pii"]}}}
                    }
                },
            }
        )
    )
    assert serving.pii_columns(target_dir) == {"email", "phone", "home_address", "birth_date"}
    con = duckdb.connect(str(warehouse))
    con.execute("alter table ml.churn_scores add column Home_Address varchar")
    con.close()
    with pytest.raises(serving.ServingError, match=r"ml\.churn_scores\.Home_Address is PII"):
        serving.publish(warehouse, tmp_path / "serving.duckdb", AS_OF, dbt_target_dir=target_dir)
    assert not (tmp_path / "serving.duckdb").exists()


def test_nothing_to_publish_says_what_to_run(tmp_path):
    empty = tmp_path / "w.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(serving.ServingError, match="no table in schema marts"):
        serving.publish(empty, tmp_path / "serving.duckdb", AS_OF)
    with pytest.raises(serving.ServingError, match="No warehouse at"):
        serving.publish(tmp_path / "missing.duckdb", tmp_path / "serving.duckdb", AS_OF)


def test_the_previous_major_duckdb_release_reads_the_snapshot(warehouse, tmp_path):
    target = tmp_path / "serving.duckdb"
    serving.publish(warehouse, target, AS_OF)

    [version] = old_client_rows(target, "select version() as version")
    assert version["version"].startswith("v1."), version
    assert old_client_rows(
        target,
        "select table_schema, table_name, row_count from meta.snapshot where table_name = 'dim_customers'",
    ) == [{"table_schema": "marts", "table_name": "dim_customers", "row_count": 50}]
    assert old_client_rows(
        target,
        "select count(*) as customers, sum(lifetime_spend)::double as spend, max(last_purchase_at)::varchar as last "
        "from marts.dim_customers",
    ) == [{"customers": 50, "spend": 15312.5, "last": "2025-02-01 10:49:00"}]
    # The working warehouse is in DuckDB 2.0's own format, which the old client cannot open: the
    # snapshot's storage version is what makes it readable.
    refused = old_client(warehouse, "select 1")
    assert refused.returncode != 0


def test_replacing_the_snapshot_works_while_a_reader_holds_the_old_one(warehouse, tmp_path):
    target = tmp_path / "serving.duckdb"
    serving.publish(warehouse, target, AS_OF)
    reader = duckdb.connect(str(target), read_only=True)
    try:
        con = duckdb.connect(str(warehouse))
        con.execute("insert into marts.fct_pregrant_decisions select 'C99', 'holdout', 0, date '2025-03-02'")
        con.close()
        serving.publish(warehouse, target, AS_OF + timedelta(days=1))  # not blocked by the reader
        # The reader keeps the snapshot it opened, whole.
        assert reader.execute("select distinct as_of_date from meta.snapshot").fetchall() == [(AS_OF,)]
        assert reader.execute("select count(*) from marts.fct_pregrant_decisions").fetchall() == [(7,)]
    finally:
        reader.close()
    # A reader opened now sees the new one.
    assert snapshot_rows(target, "select distinct as_of_date from meta.snapshot") == [
        (AS_OF + timedelta(days=1),)
    ]
    assert snapshot_rows(target, "select count(*) from marts.fct_pregrant_decisions") == [(8,)]


def test_a_new_connection_in_a_process_that_holds_an_old_one_sees_the_new_snapshot(warehouse, tmp_path):
    """DuckDB keeps one database instance per file per process: with one file renamed over, a process
    that still held a connection (a BI tool's pool) got yesterday's snapshot from every new connection.
    Each publish is a new file behind the link, so a new connection opens the new one; the held
    connection keeps its own snapshot, whole, until it closes."""
    target = tmp_path / "serving.duckdb"
    serving.publish(warehouse, target, AS_OF)
    pooled = duckdb.connect(str(target), read_only=True)
    try:
        for day in range(1, serving.KEEP_VERSIONS + 2):  # past the versions kept: pruning spares readers
            serving.publish(warehouse, target, AS_OF + timedelta(days=day))
            fresh = duckdb.connect(str(target), read_only=True)
            try:
                assert fresh.execute("select distinct as_of_date from meta.snapshot").fetchall() == [
                    (AS_OF + timedelta(days=day),)
                ]
                assert fresh.execute("select current_database()").fetchone() == ("serving",)
            finally:
                fresh.close()
        assert pooled.execute("select distinct as_of_date from meta.snapshot").fetchall() == [(AS_OF,)]
        assert pooled.execute("select count(*) from marts.dim_customers").fetchone() == (50,)
    finally:
        pooled.close()
    assert len(list(serving.versions_dir(target).glob("*.duckdb"))) == serving.KEEP_VERSIONS
    assert serving.current_version(target).name.startswith(f"serving.{AS_OF + timedelta(days=4)}.")


def test_settings_from_the_environment_keep_the_link_not_the_version_it_points_at(warehouse, tmp_path):
    """Every Airflow task reads its settings from the environment, where `make demo` and compose set
    BOOMERANG_SERVING. Read through the link, the path named the version of the moment, and each publish
    nested its versions under that version's name, until the path was too long (`make demo`'s 7th day
    failed with "File name too long")."""
    from boomerang.config import Settings

    link = tmp_path / "serving.duckdb"
    env = {"BOOMERANG_HOME": str(tmp_path / "home"), "BOOMERANG_SERVING": str(link)}
    for day in range(12):
        settings = Settings.from_env(env)  # a new task: the settings read again, the link there from day 1
        assert settings.serving_path == link
        serving.publish(warehouse, settings.serving_path, AS_OF + timedelta(days=day))
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.glob("serving*")) == ["serving.duckdb", "serving.duckdb.versions"]
    versions = serving.versions_dir(link)
    assert all(p.is_file() and not p.is_symlink() for p in versions.iterdir())  # flat: no nested folders
    assert len(list(versions.glob("*.duckdb"))) == serving.KEEP_VERSIONS
    assert snapshot_rows(link, "select distinct as_of_date from meta.snapshot") == [
        (AS_OF + timedelta(days=11),)
    ]


def test_a_snapshot_published_before_versions_is_replaced_by_the_link(warehouse, tmp_path):
    target = tmp_path / "serving.duckdb"
    target.write_bytes(b"an old, plain snapshot file")
    serving.publish(warehouse, target, AS_OF)
    assert target.is_symlink()
    assert snapshot_rows(target, "select distinct as_of_date from meta.snapshot") == [(AS_OF,)]


# ---------------------------------------------------------------- through Airflow, with readers

# A BI user in another process (tests/serving_readers.py) opens the snapshot read-only and queries it
# in a loop, checking in each connection that meta.snapshot's row counts match the tables it reads.
# `cycle` reopens every second; `hold` keeps its first connection to the end, across replacements.
# The concurrency tests ride on the campaign of tests/conftest.py (`campaign`): boomerang_daily through
# Airflow on several dates, with two reader processes querying the serving snapshot all along.


@pytest.mark.slow
@pytest.mark.timeout(1500)  # may set up the shared campaign (see test_end_to_end_rewards)
def test_readers_never_see_a_half_published_snapshot_and_never_block_a_run(campaign):
    settings, reads = campaign.settings, campaign.reads  # the runs succeeded: dags_test_runs raises if not
    first, last = campaign.run_dates[0], campaign.run_dates[-1]

    for mode, rows in reads.items():
        assert [row for row in rows if row["kind"] == "error"] == [], mode
        queries = [row for row in rows if row["kind"] == "query"]
        assert queries, f"the {mode} reader never read the snapshot"
        assert all(row["consistent"] for row in queries), mode
        assert all(len(row["as_of"]) == 1 for row in queries), mode
        # One snapshot per date, and every read of it the same.
        checksums: dict[str, set] = {}
        for row in queries:
            checksums.setdefault(row["as_of"][0], set()).add(tuple(row["checksum"]))
        assert all(len(values) == 1 for values in checksums.values()), (mode, checksums)

    cycle = [row for row in reads["cycle"] if row["kind"] == "query"]
    dates = [row["as_of"][0] for row in cycle]
    assert dates == sorted(dates) and set(dates) == {str(day) for day in campaign.run_dates}
    assert len({row["connection"] for row in cycle}) > 5  # it reopened many times

    # The holder opened the first snapshot and kept reading it, whole, after the second replaced it.
    hold = [row for row in reads["hold"] if row["kind"] == "query"]
    assert {row["connection"] for row in hold} == {1}
    assert {row["as_of"][0] for row in hold} == {str(first)}
    assert any(row["inode_now"] != row["inode_at_open"] for row in hold[-3:])

    # A reader opened afterwards saw the last run's snapshot.
    assert campaign.snapshot_after == [(last,)]
    assert not [p.name for p in settings.serving_path.parent.iterdir() if p.name.endswith(".tmp")]
    assert not [
        p.name for p in serving.versions_dir(settings.serving_path).iterdir() if p.name.endswith(".tmp")
    ]


@pytest.mark.slow
@pytest.mark.timeout(1500)  # may set up the shared campaign (see test_end_to_end_rewards)
def test_the_published_snapshot_has_no_pii_and_no_raw_staging_or_ledger(campaign):
    settings = campaign.settings
    pii = serving.pii_columns(settings.dbt_target_dir)
    assert {"email", "phone"} <= pii  # read from dbt's manifest of the run

    tables = snapshot_tables(settings.serving_path)
    assert {
        "marts.dim_customers",
        "marts.fct_pregrant_decisions",
        "ml.churn_scores",
        "meta.snapshot",
    } <= tables
    assert {name.split(".")[0] for name in tables} == {"marts", "ml", "meta"}
    assert {name for name in tables if name.startswith("ml.")} == {"ml.churn_scores"}
    assert not snapshot_columns(settings.serving_path) & pii
    # Every table in the warehouse's marts is there, with the rows it had.
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        marts = dict(
            (f"marts.{name}", con.execute(f"select count(*) from marts.{name}").fetchone()[0])
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        )
    finally:
        con.close()
    published = {f"{schema}.{table}": rows for _, _, _, _, schema, table, rows in meta(settings.serving_path)}
    assert {name: rows for name, rows in published.items() if name.startswith("marts.")} == marts


@pytest.mark.slow
@pytest.mark.timeout(1500)  # may set up the shared campaign (see test_end_to_end_rewards)
def test_the_old_client_reads_the_published_marts(campaign):
    path = campaign.settings.serving_path
    [published] = old_client_rows(path, "select distinct as_of_date::varchar as as_of from meta.snapshot")
    for row in old_client_rows(path, "select table_schema, table_name, row_count from meta.snapshot"):
        [count] = old_client_rows(
            path, f"select count(*) as n from {row['table_schema']}.{row['table_name']}"
        )
        assert count["n"] == row["row_count"], row
    [customers] = old_client_rows(
        path, "select count(*) as n, max(as_of_date)::varchar as as_of from marts.dim_customers"
    )
    assert customers == {"n": customers["n"], "as_of": published["as_of"]} and customers["n"] > 0


# ------------------------------------------------------- what BI tools show: comments and types


def comments(path: Path) -> dict[str, str | None]:
    """``schema.table`` and ``schema.table.column`` -> its comment, in the file at ``path``."""
    tables = snapshot_rows(
        path, "select schema_name || '.' || table_name, comment from duckdb_tables() where not internal"
    )
    columns = snapshot_rows(
        path,
        "select schema_name || '.' || table_name || '.' || column_name, comment from duckdb_columns() "
        "where not internal",
    )
    return dict(tables + columns)


def column_types(path: Path) -> dict[str, str]:
    return dict(
        snapshot_rows(
            path,
            "select schema_name || '.' || table_name || '.' || column_name, data_type from duckdb_columns() "
            "where not internal",
        )
    )


def types_bi_drivers_cannot_read(types: dict[str, str]) -> dict[str, str]:
    """HUGEINT anywhere in a type, or a DECIMAL wider than 18 digits."""
    return {
        name: data_type
        for name, data_type in types.items()
        if "HUGEINT" in data_type
        or any(int(width) > 18 for width in re.findall(r"DECIMAL\((\d+),", data_type))
    }


def test_comments_are_carried_into_the_snapshot(warehouse, tmp_path):
    con = duckdb.connect(str(warehouse))
    con.execute("comment on table marts.dim_customers is 'One row per customer.'")
    con.execute("comment on column marts.dim_customers.region is 'Where they live; it''s a region.'")
    con.close()
    # ml.churn_scores is a dbt source, not a model: its words come from the manifest.
    target_dir = tmp_path / "dbt_target"
    target_dir.mkdir()
    (target_dir / "manifest.json").write_text(
        json.dumps(
            {
                "sources": {
                    "source.boomerang.ml.churn_scores": {
                        "resource_type": "source",
                        "schema": "ml",
                        "name": "churn_scores",
                        "identifier": "churn_scores",
                        "description": "One row per customer, as-of date and model version.",
                        "columns": {"risk_band": {"description": "low, medium or high."}},
                    }
                }
            }
        )
    )
    target = tmp_path / "serving.duckdb"
    serving.publish(warehouse, target, AS_OF, dbt_target_dir=target_dir)

    found = comments(target)
    assert found["marts.dim_customers"] == "One row per customer."
    assert found["marts.dim_customers.region"] == "Where they live; it's a region."
    assert found["marts.dim_customers.signup_date"] is None  # nothing said, nothing made up
    assert found["ml.churn_scores"] == "One row per customer, as-of date and model version."
    assert found["ml.churn_scores.risk_band"] == "low, medium or high."
    assert found["meta.snapshot"] and all(found[f"meta.snapshot.{c}"] for c in serving.META_DESCRIPTIONS if c)
    # The old client sees them too.
    assert old_client_rows(
        target,
        "select comment from duckdb_columns() where table_name = 'dim_customers' and column_name = 'region'",
    ) == [{"comment": "Where they live; it's a region."}]


def test_wide_numbers_are_narrowed_to_types_bi_drivers_read(warehouse, tmp_path, caplog):
    target = tmp_path / "serving.duckdb"
    with caplog.at_level("WARNING"):
        serving.publish(warehouse, target, AS_OF)

    types = column_types(target)
    assert types["marts.dim_customers.lifetime_spend"] == "DECIMAL(18,2)"  # was DECIMAL(38,2)
    assert types["marts.dim_customers.lifetime_points"] == "BIGINT"  # was HUGEINT
    assert types["marts.dim_customers.recent_days"] == "BIGINT[]"
    assert types_bi_drivers_cannot_read(types) == {}
    assert snapshot_rows(
        target, "select sum(lifetime_spend), sum(lifetime_points) from marts.dim_customers"
    ) == [(pytest.approx(15312.5), 1225)]
    assert "marts.dim_customers.lifetime_points HUGEINT -> BIGINT" in caplog.text  # said, not silent
    [row] = old_client_rows(
        target,
        "select typeof(lifetime_points) as points, typeof(lifetime_spend) as spend from marts.dim_customers limit 1",
    )
    assert row == {"points": "BIGINT", "spend": "DECIMAL(18,2)"}


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        (
            "lifetime_points",
            "(2::hugeint ** 63)::hugeint",
            "marts.dim_customers.lifetime_points (HUGEINT) has 1 value(s) outside BIGINT",
        ),
        (
            "lifetime_spend",
            "10000000000000000.00",
            "marts.dim_customers.lifetime_spend (DECIMAL(38,2)) has 1 value(s) outside DECIMAL(18,2)",
        ),
        ("lifetime_spend", "-10000000000000000.00", "(min -10000000000000000.00"),
    ],
)
def test_a_number_too_wide_for_bi_fails_the_publish_and_the_old_snapshot_stays(
    warehouse, tmp_path, column, value, says
):
    target = tmp_path / "serving.duckdb"
    serving.publish(warehouse, target, AS_OF)
    before = (target.stat().st_ino, table_checksums(target, ("marts", "ml", "meta")))
    con = duckdb.connect(str(warehouse))
    con.execute(f"update marts.dim_customers set {column} = {value} where customer_id = 'C7'")
    con.close()

    with pytest.raises(serving.ServingError) as error:
        serving.publish(warehouse, target, AS_OF + timedelta(days=1))
    assert says in str(error.value)
    assert "never truncates" in str(error.value) and "previous snapshot is left as it was" in str(error.value)
    assert (target.stat().st_ino, table_checksums(target, ("marts", "ml", "meta"))) == before


def test_a_nested_wide_type_is_refused_with_what_to_do(warehouse, tmp_path):
    con = duckdb.connect(str(warehouse))
    con.execute("create table marts.points_by_week as select [sum(n)::hugeint] as weekly from range(3) t(n)")
    con.close()
    with pytest.raises(
        serving.ServingError, match=r"marts\.points_by_week\.weekly is HUGEINT\[\].*cast its elements"
    ):
        serving.publish(warehouse, tmp_path / "serving.duckdb", AS_OF)


@pytest.mark.slow
def test_every_published_mart_column_carries_its_dbt_description_and_a_bi_type(tiny_built, tmp_path):
    """On a real dbt build, every mart built (the daily build, then the ones built after scoring and by
    the training run): dbt's persist_docs puts the descriptions in the warehouse, the snapshot carries
    them, and no column is HUGEINT or a DECIMAL wider than 18 digits."""
    settings = copy_warehouse(tiny_built, tmp_path / "home")
    run_dbt(settings, "run", TINY_AS_OF, ["--select", "tag:scored", "tag:ledger", "tag:training"])
    target = tmp_path / "serving.duckdb"
    serving.publish(settings.warehouse_path, target, TINY_AS_OF, dbt_target_dir=settings.dbt_target_dir)

    manifest = json.loads((settings.dbt_target_dir / "manifest.json").read_text())
    described = {
        f"marts.{node['alias']}": node
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "seed") and node["schema"] == "marts"
    }
    found = comments(target)
    published = [name for name in snapshot_tables(target) if name.startswith("marts.")]
    assert set(published) == set(described)  # every mart, each one checked below
    missing, different = [], []
    for table in published:
        assert found[table] and found[table] == described[table]["description"], table
        for column in [name for name in found if name.startswith(table + ".")]:
            expected = (described[table]["columns"].get(column.rsplit(".", 1)[1]) or {}).get("description")
            if not found[column]:
                missing.append(column)
            elif found[column] != expected:
                different.append(column)
    assert missing == [], "mart columns with no description in dbt's YAML (document them: BI tools show it)"
    assert different == []
    # The working warehouse has them too (persist_docs), staging and intermediate included.
    in_warehouse = comments(settings.warehouse_path)
    assert in_warehouse["marts.dim_customers.customer_id"] == found["marts.dim_customers.customer_id"]
    assert in_warehouse["intermediate.int_mileage_lots"]
    assert in_warehouse["staging.stg_landing__customers.customer_id"]  # a view's column

    assert types_bi_drivers_cannot_read(column_types(target)) == {}
    # The marts cast their sums themselves (the publisher's narrowing is the safety net, with a warning).
    marts = {
        name: kind
        for name, kind in column_types(settings.warehouse_path).items()
        if name.startswith("marts.")
    }
    assert types_bi_drivers_cannot_read(marts) == {}, "cast sums in the mart's SQL: bigint, decimal(18, 2)"
    # The old client reads a description.
    [row] = old_client_rows(
        target,
        "select comment from duckdb_tables() where schema_name = 'marts' and table_name = 'customer_360'",
    )
    assert row["comment"] == described["marts.customer_360"]["description"]


def test_settings_name_the_serving_file(tmp_path):
    settings = make_settings(tmp_path)
    assert settings.serving_path == tmp_path / "warehouse" / "serving.duckdb"
    moved = make_settings(tmp_path, BOOMERANG_SERVING=str(tmp_path / "bi" / "snap.duckdb"))
    assert moved.serving_path == tmp_path / "bi" / "snap.duckdb"
    assert moved.to_env()["BOOMERANG_SERVING"] == str(tmp_path / "bi" / "snap.duckdb")
    with pytest.raises(ValueError, match="named like one of its schemas"):
        make_settings(tmp_path, BOOMERANG_SERVING=str(tmp_path / "marts.duckdb"))
    with pytest.raises(ValueError, match="is the working warehouse itself"):
        make_settings(
            tmp_path,
            BOOMERANG_SERVING=str(tmp_path / "w.duckdb"),
            BOOMERANG_WAREHOUSE=str(tmp_path / "w.duckdb"),
        )

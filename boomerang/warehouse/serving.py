"""The serving snapshot: a read-only, PII-free copy of the marts that BI tools open instead of the warehouse.

DuckDB allows one writer and no reader beside it, so BI never opens the working warehouse. After each
run, :func:`publish` copies every table in ``marts`` and ``ml.churn_scores`` into a new DuckDB file
beside the snapshot and renames it into place: a reader sees the old snapshot or the new one, never a
half-written one, and a reader that holds the old file open keeps reading it (POSIX keeps a replaced
file alive while it is open). The file is written in an older storage format, so BI drivers that
embed DuckDB 1.x open it too.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from boomerang.warehouse.db import configure
from boomerang.warehouse.schema import SNAPSHOT_META_DDL

log = logging.getLogger(__name__)

# Bump when the snapshot's layout (its schemas or meta.snapshot's columns) changes.
FORMAT_VERSION = 1
# The oldest storage format DuckDB 2.0 writes: every 1.x client reads it (a file in 2.0's own format
# fails in them with "newer DuckDB version"). Costs a little space, nothing else.
STORAGE_VERSION = "v1.0.0"
# What is published: every table in these schemas, plus these single tables. Nothing else (no raw,
# staging, intermediate, ledger or ops).
PUBLISHED_SCHEMAS = ("marts",)
PUBLISHED_TABLES = (("ml", "churn_scores"),)
# The raw contract's contact columns (boomerang/contract.py): PII even when no dbt manifest says so.
CONTRACT_PII_COLUMNS = frozenset({"email", "phone"})

_SNAPSHOT = "boomerang_serving_snapshot"  # the new file's alias while it is written


class ServingError(RuntimeError):
    """The serving snapshot cannot be published (a PII column would leak, or there is nothing to publish)."""


def pii_columns(dbt_target_dir: Path | None) -> frozenset[str]:
    """Column names that are PII: every column tagged ``pii`` in dbt's manifest, plus the contract's
    contact columns (lower case)."""
    names = set(CONTRACT_PII_COLUMNS)
    manifest = dbt_target_dir / "manifest.json" if dbt_target_dir else None
    if manifest is None or not manifest.exists():
        log.warning(
            "No dbt manifest at %s: checking the snapshot against the contract's PII columns only (%s)",
            manifest,
            ", ".join(sorted(names)),
        )
        return frozenset(names)
    data = json.loads(manifest.read_text())
    for kind in ("nodes", "sources"):
        for node in (data.get(kind) or {}).values():
            for name, column in (node.get("columns") or {}).items():
                tags = set(column.get("tags") or []) | set((column.get("config") or {}).get("tags") or [])
                if "pii" in tags:
                    names.add(name.lower())
    return frozenset(names)


def publish(
    warehouse_path: Path,
    serving_path: Path,
    as_of: date,
    *,
    dbt_target_dir: Path | None = None,
) -> dict[str, int]:
    """Copy the marts and churn scores of ``warehouse_path`` into a new snapshot at ``serving_path``.

    Written to a temporary file beside ``serving_path`` and renamed over it, so readers see the old
    snapshot or the new one. Raises :class:`ServingError`, leaving the old snapshot as it was, when a
    table to publish has a PII column (tagged ``pii`` in dbt, see :func:`pii_columns`). Returns rows
    per published table (``schema.table``).
    """
    if not warehouse_path.exists():
        raise ServingError(
            f"No warehouse at {warehouse_path} to publish from. Run `make demo` or boomerang_daily first."
        )
    pii = pii_columns(dbt_target_dir)
    serving_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = serving_path.with_name(f".{serving_path.name}.{os.getpid()}.tmp")
    _remove(temporary)
    source = warehouse_path.stem  # DuckDB's own name for the file: views inside it refer to it so
    con = duckdb.connect()
    try:
        configure(con)
        con.execute(f"attach {_literal(warehouse_path)} as {_q(source)} (read_only)")
        tables = _tables_to_publish(con, source)
        if not tables:
            raise ServingError(
                f"Nothing to publish from {warehouse_path}: it has no table in schema marts. "
                "Run `dbt build` (boomerang_daily's dbt_build task) first."
            )
        _refuse_pii(con, source, tables, pii, warehouse_path)

        con.execute(f"attach {_literal(temporary)} as {_SNAPSHOT} (storage_version '{STORAGE_VERSION}')")
        for schema in sorted({schema for schema, _ in tables} | {"meta"}):
            con.execute(f"create schema {_SNAPSHOT}.{_q(schema)}")
        counts: dict[str, int] = {}
        for schema, table in tables:
            target = f"{_SNAPSHOT}.{_q(schema)}.{_q(table)}"
            con.execute(f"create table {target} as select * from {_q(source)}.{_q(schema)}.{_q(table)}")
            counts[f"{schema}.{table}"] = con.execute(f"select count(*) from {target}").fetchone()[0]  # type: ignore[index]
        con.execute(SNAPSHOT_META_DDL.format(snap=_SNAPSHOT))
        published_at = datetime.now(UTC).replace(tzinfo=None)
        con.executemany(
            f"insert into {_SNAPSHOT}.meta.snapshot values (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    as_of,
                    published_at,
                    FORMAT_VERSION,
                    STORAGE_VERSION,
                    str(warehouse_path),
                    schema,
                    table,
                    rows,
                ]
                for (schema, table), rows in zip(tables, counts.values(), strict=True)
            ],
        )
        # What went in is checked again, in the new file itself, before anyone can see it.
        _refuse_pii(con, _SNAPSHOT, [*tables, ("meta", "snapshot")], pii, temporary)
        unexpected = _schemas(con, _SNAPSHOT) - {schema for schema, _ in tables} - {"meta"}
        if unexpected:
            raise ServingError(f"The snapshot would hold schemas it must not: {sorted(unexpected)}")
        con.execute(f"checkpoint {_SNAPSHOT}")
        con.execute(f"detach {_SNAPSHOT}")
        con.execute(f"detach {_q(source)}")
    except BaseException:
        con.close()
        _remove(temporary)
        raise
    con.close()

    _fsync(temporary)
    # A snapshot is only ever opened read-only, which writes no WAL; a stale one left by a client that
    # opened it read-write would be replayed onto the new file.
    serving_path.with_name(serving_path.name + ".wal").unlink(missing_ok=True)
    os.replace(temporary, serving_path)  # atomic on POSIX: readers see the old file or the new one
    _fsync(serving_path.parent)
    log.info(
        "Published the serving snapshot for %s to %s: %d table(s), %d row(s)",
        as_of,
        serving_path,
        len(counts),
        sum(counts.values()),
    )
    return counts


def _tables_to_publish(con: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[str, str]]:
    """(schema, table) of every table and view in the published schemas, then the single tables."""
    rows = con.execute(
        "select table_schema, table_name from information_schema.tables "
        f"where table_catalog = ? and table_schema in ({', '.join('?' for _ in PUBLISHED_SCHEMAS)}) "
        "order by 1, 2",
        [catalog, *PUBLISHED_SCHEMAS],
    ).fetchall()
    tables = [(schema, name) for schema, name in rows]
    for schema, name in PUBLISHED_TABLES:
        exists = con.execute(
            "select count(*) from information_schema.tables "
            "where table_catalog = ? and table_schema = ? and table_name = ?",
            [catalog, schema, name],
        ).fetchone()[0]  # type: ignore[index]
        if exists:
            tables.append((schema, name))
    return tables


def _refuse_pii(
    con: duckdb.DuckDBPyConnection,
    catalog: str,
    tables: list[tuple[str, str]],
    pii: frozenset[str],
    where: Path,
) -> None:
    columns = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog = ? order by 1, 2, ordinal_position",
        [catalog],
    ).fetchall()
    published = set(tables)
    leaks = [
        f"{schema}.{table}.{column}"
        for schema, table, column in columns
        if (schema, table) in published and column.lower() in pii
    ]
    if leaks:
        raise ServingError(
            f"Refusing to publish the serving snapshot from {where}: "
            f"{', '.join(leaks)} {'is' if len(leaks) == 1 else 'are'} PII (tagged pii in dbt, or a "
            "contract contact column), and the snapshot BI tools read must hold none. Drop the column "
            "from the mart (keep it in staging), or, if it is not personal data, rename it or remove its "
            "pii tag. The previous snapshot is left as it was."
        )


def _schemas(con: duckdb.DuckDBPyConnection, catalog: str) -> set[str]:
    rows = con.execute(
        "select distinct table_schema from information_schema.tables where table_catalog = ?", [catalog]
    ).fetchall()
    return {schema for (schema,) in rows}


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _remove(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') bytes to disk, so a crash cannot leave a renamed, empty file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

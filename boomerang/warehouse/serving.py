"""The serving snapshot: a read-only, PII-free copy of the marts that BI tools open instead of the warehouse.

DuckDB allows one writer and no reader beside it, so BI never opens the working warehouse. After each
run, :func:`publish` copies every table in ``marts`` and ``ml.churn_scores`` into a new, versioned DuckDB
file (``<name>.versions/<name>.<as_of>.<published_at>.duckdb`` beside the snapshot's path) and swaps the
snapshot's path, a symbolic link, over to it: a reader sees the old snapshot or the new one, never a
half-written one, and a reader that holds the old file open keeps reading it (POSIX keeps a removed
file alive while it is open).

Why versioned files behind a link, not one file renamed over: DuckDB keeps one database instance per
file per process, and a process that still holds any connection to the snapshot gets that instance, the
old snapshot, from every new connection to the same file (a BI tool's connection pool, a notebook).
DuckDB resolves the link when it opens the path, so a new connection opens the new version's file, a
different file, and sees the new snapshot; only connections opened before the publish keep the old one
until they close. The newest :data:`KEEP_VERSIONS` versions are kept. The file is written in an older storage format, so BI drivers that
embed DuckDB 1.x open it too; its tables and columns carry dbt's descriptions as comments, and its
numbers come in types BI drivers read (no HUGEINT, no DECIMAL wider than 18 digits).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from boomerang.warehouse.backup import fsync
from boomerang.warehouse.db import configure
from boomerang.warehouse.schema import SNAPSHOT_META_DDL

log = logging.getLogger(__name__)

# Bump when the snapshot's layout (its schemas or meta.snapshot's columns) changes.
FORMAT_VERSION = 2  # 2: meta.snapshot.fingerprint
# The oldest storage format DuckDB 2.0 writes: every 1.x client reads it (a file in 2.0's own format
# fails in them with "newer DuckDB version"). Costs a little space, nothing else.
STORAGE_VERSION = "v1.0.0"
# What is published: every table in these schemas, plus these single tables. Nothing else (no raw,
# staging, intermediate, ledger or ops).
PUBLISHED_SCHEMAS = ("marts",)
PUBLISHED_TABLES = (("ml", "churn_scores"),)
# Published tables a run only adds rows to, and the date column that orders them: when the rows of the
# warehouse up to the previous snapshot's newest date are the rows that snapshot holds (the same
# fingerprint), only the newer rows are copied. The scores of every past day need not be copied again.
APPENDED = {("ml", "churn_scores"): "as_of_date"}
# The raw contract's contact columns (boomerang/contract.py): PII even when no dbt manifest says so.
CONTRACT_PII_COLUMNS = frozenset({"email", "phone"})
# BI drivers read HUGEINT (DuckDB's type for a sum of integers) and DECIMAL wider than 18 digits (a sum
# of decimals) badly or not at all: JDBC/ODBC map them to strings or doubles, older clients refuse them.
# The marts cast their sums (BIGINT, DECIMAL(18, 2)); a column that still comes wider is narrowed on the
# way into the snapshot, after checking that every value fits: an overflow fails the publish, nothing
# is truncated or rounded.
BI_MAX_DECIMAL_WIDTH = 18
_WIDE_INTEGERS = ("HUGEINT", "UHUGEINT")
_BIGINT_RANGE = (-(2**63), 2**63 - 1)
# Published versions kept in <name>.versions/ (the newest, which the link points at, included); older
# ones are removed, which a reader that still has one open does not notice (POSIX).
KEEP_VERSIONS = 3
# meta.snapshot's columns, described where BI tools show it (the DDL is in warehouse/schema.py).
META_DESCRIPTIONS = {
    "": "One row per published table: which run published this snapshot, when, and how many rows each table holds.",
    "as_of_date": "The as-of date of the run that published the snapshot (the Airflow logical date).",
    "published_at": "When the snapshot was written (UTC wall clock).",
    "format_version": "The snapshot's layout version (boomerang.warehouse.serving.FORMAT_VERSION).",
    "storage_version": "The oldest DuckDB storage format that opens this file.",
    "source_warehouse": "The working warehouse the snapshot was copied from.",
    "table_schema": "The published table's schema.",
    "table_name": "The published table's name.",
    "row_count": "Rows in that table, as published.",
    "fingerprint": "A hash of the table's columns, descriptions and rows: the next publish copies only "
    "the tables whose fingerprint changed.",
}

_SNAPSHOT = "boomerang_serving_snapshot"  # the new file's alias while it is written
_ROW = "boomerang_published_row"  # a table's alias, which stands for its whole row, while it is hashed


class ServingError(RuntimeError):
    """The serving snapshot cannot be published (a PII column would leak, a number would not fit the type
    BI drivers read, or there is nothing to publish)."""


@dataclass(frozen=True)
class _Column:
    name: str
    data_type: str
    scale: int | None
    comment: str | None

    @property
    def bi_type(self) -> str | None:
        """The type this column is narrowed to in the snapshot, or None if it is kept as it is."""
        if self.data_type in _WIDE_INTEGERS:
            return "BIGINT"
        width = _decimal_width(self.data_type)
        if width is not None and width > BI_MAX_DECIMAL_WIDTH:
            return f"DECIMAL({BI_MAX_DECIMAL_WIDTH},{self.scale})"
        return None


def _manifest(dbt_target_dir: Path | None) -> dict | None:
    path = dbt_target_dir / "manifest.json" if dbt_target_dir else None
    if path is None or not path.exists():
        return None
    return json.loads(path.read_text())


def pii_columns(dbt_target_dir: Path | None) -> frozenset[str]:
    """Column names that are PII: every column tagged ``pii`` in dbt's manifest, plus the contract's
    contact columns (lower case)."""
    names = set(CONTRACT_PII_COLUMNS)
    data = _manifest(dbt_target_dir)
    if data is None:
        log.warning(
            "No dbt manifest in %s: checking the snapshot against the contract's PII columns only (%s)",
            dbt_target_dir,
            ", ".join(sorted(names)),
        )
        return frozenset(names)
    for kind in ("nodes", "sources"):
        for node in (data.get(kind) or {}).values():
            for name, column in (node.get("columns") or {}).items():
                tags = set(column.get("tags") or []) | set((column.get("config") or {}).get("tags") or [])
                if "pii" in tags:
                    names.add(name.lower())
    return frozenset(names)


def dbt_descriptions(dbt_target_dir: Path | None) -> dict[tuple[str, str], tuple[str, dict[str, str]]]:
    """dbt's descriptions by relation: ``(schema, table) -> (table description, {column: description})``,
    for models, seeds and sources of the manifest (empty without one; empty descriptions left out)."""
    data = _manifest(dbt_target_dir) or {}
    described: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}
    for kind in ("nodes", "sources"):
        for node in (data.get(kind) or {}).values():
            if node.get("resource_type") not in ("model", "seed", "snapshot", "source") or not node.get(
                "schema"
            ):
                continue
            name = node.get("identifier") or node.get("alias") or node.get("name")
            columns = {
                column: text
                for column, spec in (node.get("columns") or {}).items()
                if (text := (spec.get("description") or ""))
            }
            described[(node["schema"], name)] = (node.get("description") or "", columns)
    return described


def publish(
    warehouse_path: Path,
    serving_path: Path,
    as_of: date,
    *,
    dbt_target_dir: Path | None = None,
) -> dict[str, int]:
    """Copy the marts and churn scores of ``warehouse_path`` into a new snapshot at ``serving_path``.

    Written to a temporary file, renamed to a new version in :func:`versions_dir` and pointed at by the
    link ``serving_path`` (swapped in one rename), so readers see the old snapshot or the new one, and a
    new connection sees the new one even in a process that holds a connection to the old. The temporary
    file starts as a copy of the current version when it has this :data:`FORMAT_VERSION`, and only the
    tables whose fingerprint changed (see :func:`_fingerprints`) are copied again; the training tables,
    for one, change only when a model is trained. Tables and columns keep their comments (dbt's descriptions; see
    :func:`_comment`), and HUGEINT / DECIMAL wider than 18 digits become BIGINT / DECIMAL(18, s) once
    every value is checked to fit. Raises :class:`ServingError`, leaving the old snapshot as it was,
    when a table to publish has a PII column (tagged ``pii`` in dbt, see :func:`pii_columns`) or a
    value that does not fit the type BI drivers read. Returns rows per published table
    (``schema.table``).
    """
    if not warehouse_path.exists():
        raise ServingError(
            f"No warehouse at {warehouse_path} to publish from. Run `make demo` or boomerang_daily first."
        )
    pii = pii_columns(dbt_target_dir)
    described = dbt_descriptions(dbt_target_dir)
    versions = versions_dir(serving_path)
    versions.mkdir(parents=True, exist_ok=True)
    temporary = versions / f".{serving_path.name}.{os.getpid()}.tmp"
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
        columns = _columns(con, source, tables)
        _refuse_what_bi_cannot_read(con, source, columns, warehouse_path)
        previous = _start_from(con, current_version(serving_path), temporary)
        newest = _newest(con, previous)
        counts, fingerprints, earlier = _fingerprints(con, source, columns, described, newest)
        kept = {
            relation
            for relation, fingerprint in previous.items()
            if fingerprints.get(relation) == fingerprint
        }
        # Only gained rows since the previous snapshot: its rows up to its newest date (and any without
        # one) have the fingerprint that snapshot recorded for the whole table.
        appended = {
            relation: newest[relation]
            for relation, fingerprint in earlier.items()
            if relation not in kept and fingerprint == previous[relation]
        }
        for schema, table in _relations(con, _SNAPSHOT):
            if (schema, table) not in kept and (schema, table) not in appended:
                con.execute(f"drop table {_SNAPSHOT}.{_q(schema)}.{_q(table)}")
        for schema in _schemas(con, _SNAPSHOT, every=True) - {schema for schema, _ in tables} - {"meta"}:
            con.execute(f"drop schema {_SNAPSHOT}.{_q(schema)} cascade")
        for schema in sorted({schema for schema, _ in tables} | {"meta"}):
            con.execute(f"create schema if not exists {_SNAPSHOT}.{_q(schema)}")
        copied = [relation for relation in tables if relation not in kept and relation not in appended]
        for schema, table in copied:
            target = f"{_SNAPSHOT}.{_q(schema)}.{_q(table)}"
            select = _select(columns[(schema, table)][1])
            con.execute(
                f"create table {target} as select {select} from {_q(source)}.{_q(schema)}.{_q(table)}"
            )
        for (schema, table), newest in appended.items():
            con.execute(
                f"insert into {_SNAPSHOT}.{_q(schema)}.{_q(table)} "
                f"select {_select(columns[(schema, table)][1])} from {_q(source)}.{_q(schema)}.{_q(table)} "
                f"where {_q(APPENDED[(schema, table)])} > ?",
                [newest],
            )
        con.execute(SNAPSHOT_META_DDL.format(snap=_SNAPSHOT))
        _comment(con, {relation: columns[relation] for relation in copied}, described)
        published_at = datetime.now(UTC).replace(tzinfo=None)
        con.executemany(
            f"insert into {_SNAPSHOT}.meta.snapshot values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    as_of,
                    published_at,
                    FORMAT_VERSION,
                    STORAGE_VERSION,
                    str(warehouse_path),
                    schema,
                    table,
                    counts[(schema, table)],
                    fingerprints[(schema, table)],
                ]
                for schema, table in tables
            ],
        )
        # What went in is checked again, in the new file itself, before anyone can see it.
        _refuse_pii(con, _SNAPSHOT, [*tables, ("meta", "snapshot")], pii, temporary)
        unexpected = _schemas(con, _SNAPSHOT) - {schema for schema, _ in tables} - {"meta"}
        if unexpected:
            raise ServingError(f"The snapshot would hold schemas it must not: {sorted(unexpected)}")
        unexpected_tables = set(_relations(con, _SNAPSHOT)) - set(tables) - {("meta", "snapshot")}
        if unexpected_tables:
            raise ServingError(f"The snapshot would hold tables it must not: {sorted(unexpected_tables)}")
        wide = [
            f"{schema}.{table}.{column.name} ({column.data_type})"
            for (schema, table), (_, listed) in _columns(con, _SNAPSHOT, tables).items()
            for column in listed
            if column.bi_type or _nested_wide(column.data_type)
        ]
        if wide:
            raise ServingError(f"The snapshot would hold types BI drivers cannot read: {', '.join(wide)}")
        con.execute(f"checkpoint {_SNAPSHOT}")
        con.execute(f"detach {_SNAPSHOT}")
        con.execute(f"detach {_q(source)}")
    except BaseException:
        con.close()
        _remove(temporary)
        raise
    con.close()

    fsync(temporary)
    # Named like the snapshot up to its first dot, so DuckDB calls the database the same ('serving')
    # whether a client opens the link or the version's file.
    version = versions / f"{serving_path.stem}.{as_of.isoformat()}.{published_at:%Y%m%dT%H%M%S%f}.duckdb"
    os.replace(temporary, version)
    fsync(versions)
    _point(serving_path, version)
    _prune(versions, keep=version)
    log.info(
        "Published the serving snapshot for %s to %s (-> %s): %d table(s), %d row(s); copied %d changed "
        "table(s), appended to %d, kept %d unchanged from the previous snapshot",
        as_of,
        serving_path,
        version.name,
        len(tables),
        sum(counts.values()),
        len(copied),
        len(appended),
        len(kept),
    )
    return {f"{schema}.{table}": counts[(schema, table)] for schema, table in tables}


def _fingerprints(
    con: duckdb.DuckDBPyConnection,
    catalog: str,
    columns: dict[tuple[str, str], tuple[str | None, list[_Column]]],
    described: dict[tuple[str, str], tuple[str, dict[str, str]]],
    newest: dict[tuple[str, str], object],
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """Each table's rows and fingerprint: a hash of what its copy in the snapshot would be (its columns'
    names and types, the descriptions it would carry, and the sum of a 64-bit hash of each row). For an
    :data:`APPENDED` table in ``newest``, also the fingerprint of its rows up to that date (and of those
    without one), from the same scan.

    Two equal fingerprints mean the same copy but for a hash collision, about one in 2^64 per changed
    table; reading and hashing a table costs a fraction of writing it (about a tenth at 20k customers).
    A new DuckDB version may hash differently, which only copies every table once more."""
    counts: dict[tuple[str, str], int] = {}
    fingerprints: dict[tuple[str, str], str] = {}
    earlier: dict[tuple[str, str], str] = {}
    for relation, (comment, listed) in columns.items():
        schema, table = relation
        # A row is "earlier" when its date is not after the previous snapshot's newest: null dates too.
        early = f"({_q(APPENDED[relation])} > ?) is not true" if relation in newest else "false"
        rows, content, early_rows, early_content = con.execute(
            f"select count(*), coalesce(sum(row_hash), 0)::varchar, "
            f"count(*) filter (where early), coalesce(sum(row_hash) filter (where early), 0)::varchar "
            f"from (select hash({_ROW})::hugeint as row_hash, {early} as early "
            f"from {_q(catalog)}.{_q(schema)}.{_q(table)} as {_ROW})",
            [newest[relation]] if relation in newest else [],
        ).fetchone()  # type: ignore[misc]
        counts[relation] = rows
        fingerprints[relation] = _shape(relation, comment, listed, described, rows, content)
        if relation in newest:
            earlier[relation] = _shape(relation, comment, listed, described, early_rows, early_content)
    return counts, fingerprints, earlier


def _shape(
    relation: tuple[str, str],
    comment: str | None,
    listed: list[_Column],
    described: dict[tuple[str, str], tuple[str, dict[str, str]]],
    rows: int,
    content: str,
) -> str:
    """The fingerprint of a table's copy with these rows and this sum of row hashes (:func:`_fingerprints`)."""
    shape = {
        "columns": [[column.name, column.data_type, column.bi_type, column.comment] for column in listed],
        "comment": comment,
        "described": described.get(relation),
        "rows": rows,
        "content": content,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()


def _newest(
    con: duckdb.DuckDBPyConnection, previous: dict[tuple[str, str], str]
) -> dict[tuple[str, str], object]:
    """The newest date of each :data:`APPENDED` table in the previous snapshot (attached as the new one),
    for the tables it holds with at least one dated row."""
    newest: dict[tuple[str, str], object] = {}
    for relation, column in APPENDED.items():
        if relation not in previous:
            continue
        schema, table = relation
        [(date_,)] = con.execute(
            f"select max({_q(column)}) from {_SNAPSHOT}.{_q(schema)}.{_q(table)}"
        ).fetchall()
        if date_ is not None:
            newest[relation] = date_
    return newest


def _select(listed: list[_Column]) -> str:
    """The select list that copies a table's columns into the snapshot, narrowed where BI needs it."""
    return ", ".join(
        f"cast({_q(column.name)} as {column.bi_type}) as {_q(column.name)}"
        if column.bi_type
        else _q(column.name)
        for column in listed
    )


def _start_from(
    con: duckdb.DuckDBPyConnection, previous: Path | None, temporary: Path
) -> dict[tuple[str, str], str]:
    """Attach ``temporary`` as the new snapshot: a copy of the ``previous`` version when it has this
    format and storage version and is not mostly free space, else an empty file. Returns the tables it
    holds with their fingerprints (nothing for an empty file)."""
    if previous is not None and previous.exists():
        shutil.copyfile(previous, temporary)
        try:
            con.execute(f"attach {_literal(temporary)} as {_SNAPSHOT}")
        except duckdb.Error:  # not a DuckDB file (a damaged or foreign one): start afresh
            _remove(temporary)
            return _start_from(con, None, temporary)
        try:
            rows = con.execute(
                f"select table_schema, table_name, fingerprint, format_version, storage_version "
                f"from {_SNAPSHOT}.meta.snapshot"
            ).fetchall()
            [(free, total)] = con.execute(
                "select free_blocks, total_blocks from pragma_database_size() where database_name = ?",
                [_SNAPSHOT],
            ).fetchall()
        except duckdb.Error:  # an older layout (no fingerprint), or no meta.snapshot: start afresh
            rows, free, total = [], 0, 0
        # Dropped tables leave free blocks that later copies reuse; a file mostly free is written anew.
        if (
            rows
            and {(row[3], row[4]) for row in rows} == {(FORMAT_VERSION, STORAGE_VERSION)}
            and free <= total / 2
        ):
            return {(schema, table): fingerprint for schema, table, fingerprint, _, _ in rows}
        con.execute(f"detach {_SNAPSHOT}")
        _remove(temporary)
    con.execute(f"attach {_literal(temporary)} as {_SNAPSHOT} (storage_version '{STORAGE_VERSION}')")
    return {}


def versions_dir(serving_path: Path) -> Path:
    """Where the snapshot's versions live: ``<name>.versions/`` beside the snapshot's path."""
    return serving_path.with_name(serving_path.name + ".versions")


def current_version(serving_path: Path) -> Path | None:
    """The version file the snapshot's link points at (None before the first publish)."""
    if not serving_path.is_symlink():
        return serving_path if serving_path.exists() else None
    return serving_path.parent / os.readlink(serving_path)


def _point(serving_path: Path, version: Path) -> None:
    """Swap the snapshot's link to ``version`` in one rename (readers see the old target or the new).

    The link is relative, so the folder can be mounted elsewhere (docker compose mounts it into the BI
    containers). A snapshot published before versions existed (a plain file) is replaced by the link."""
    link = serving_path.with_name(f".{serving_path.name}.{os.getpid()}.link")
    link.unlink(missing_ok=True)
    os.symlink(version.relative_to(serving_path.parent), link)
    # A snapshot is only ever opened read-only, which writes no WAL; a stale one left beside the path
    # by a client that opened it read-write would be replayed onto the new version.
    serving_path.with_name(serving_path.name + ".wal").unlink(missing_ok=True)
    os.replace(link, serving_path)  # atomic on POSIX
    fsync(serving_path.parent)


def _prune(versions: Path, *, keep: Path) -> None:
    """Remove all but the newest :data:`KEEP_VERSIONS` versions (never ``keep``, the current one)."""
    published = sorted(versions.glob("*.duckdb"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
    for old in published[KEEP_VERSIONS:]:
        if old != keep:
            _remove(old)


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


def _columns(
    con: duckdb.DuckDBPyConnection, catalog: str, tables: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str | None, list[_Column]]]:
    """Each table's comment and columns (name, type, decimal scale, comment) in ``catalog``, in order."""
    relations = dict.fromkeys(tables)
    comments = con.execute(
        "select schema_name, table_name, comment from duckdb_tables() where database_name = ? "
        "union all select schema_name, view_name, comment from duckdb_views() where database_name = ?",
        [catalog, catalog],
    ).fetchall()
    found: dict[tuple[str, str], tuple[str | None, list[_Column]]] = {
        (schema, name): (comment or None, [])
        for schema, name, comment in comments
        if (schema, name) in relations
    }
    rows = con.execute(
        "select schema_name, table_name, column_name, data_type, numeric_scale, comment "
        "from duckdb_columns() where database_name = ? order by schema_name, table_name, column_index",
        [catalog],
    ).fetchall()
    for schema, table, name, data_type, scale, comment in rows:
        if (schema, table) in found:
            found[(schema, table)][1].append(_Column(name, data_type, scale, comment or None))
    return {relation: found[relation] for relation in tables}


def _refuse_what_bi_cannot_read(
    con: duckdb.DuckDBPyConnection,
    catalog: str,
    columns: dict[tuple[str, str], tuple[str | None, list[_Column]]],
    where: Path,
) -> None:
    """Check that every value of a column the snapshot narrows fits its BI type; refuse nested wide types.

    Raises :class:`ServingError` naming each column that would overflow (never truncates); logs a warning
    for the columns narrowed, so their mart can cast them itself."""
    narrowed, problems = [], []
    for (schema, table), (_, listed) in columns.items():
        for column in listed:
            name = f"{schema}.{table}.{column.name}"
            if _nested_wide(column.data_type):
                problems.append(
                    f"{name} is {column.data_type}, a nested type holding HUGEINT or a DECIMAL wider than "
                    f"{BI_MAX_DECIMAL_WIDTH} digits: cast its elements in the mart's SQL"
                )
                continue
            if not column.bi_type:
                continue
            if (column.scale or 0) > BI_MAX_DECIMAL_WIDTH:
                problems.append(
                    f"{name} is {column.data_type}: more than {BI_MAX_DECIMAL_WIDTH} decimal places, which "
                    "no DECIMAL(18, s) holds without rounding: round or cast it in the mart's SQL"
                )
                continue
            low, high = _bounds(column)
            outside, smallest, largest = con.execute(
                f"select count(*) filter (where {_q(column.name)} < {low} or {_q(column.name)} > {high}), "
                f"min({_q(column.name)})::varchar, max({_q(column.name)})::varchar "
                f"from {_q(catalog)}.{_q(schema)}.{_q(table)}"
            ).fetchone()  # type: ignore[misc]
            if outside:
                problems.append(
                    f"{name} ({column.data_type}) has {outside:,} value(s) outside {column.bi_type} "
                    f"(min {smallest}, max {largest})"
                )
            narrowed.append(f"{name} {column.data_type} -> {column.bi_type}")
    if problems:
        raise ServingError(
            f"Refusing to publish the serving snapshot from {where}: "
            + "; ".join(problems)
            + ". BI drivers read numbers up to BIGINT and DECIMAL(18, s), and the snapshot never truncates. "
            "Check the mart's data (such values are usually a runaway sum or a join that multiplies rows); "
            "the previous snapshot is left as it was."
        )
    if narrowed:
        log.warning(
            "Narrowed in the serving snapshot for BI drivers (every value checked to fit; better cast in "
            "the mart's SQL): %s",
            ", ".join(narrowed),
        )


def _comment(
    con: duckdb.DuckDBPyConnection,
    columns: dict[tuple[str, str], tuple[str | None, list[_Column]]],
    described: dict[tuple[str, str], tuple[str, dict[str, str]]],
) -> None:
    """Put each table's and column's description on the snapshot's copy, as a comment BI tools show: the
    warehouse's own comment (dbt's persist_docs) or, where it has none, dbt's description in the
    manifest (a source such as ml.churn_scores); meta.snapshot's from :data:`META_DESCRIPTIONS`."""
    statements = []
    relations = {
        **{
            relation: (comment, {c.name: c.comment for c in listed})
            for relation, (comment, listed) in columns.items()
        },
        ("meta", "snapshot"): (META_DESCRIPTIONS[""], {k: v for k, v in META_DESCRIPTIONS.items() if k}),
    }
    for (schema, table), (comment, column_comments) in relations.items():
        table_text, column_texts = described.get((schema, table), ("", {}))
        target = f"{_SNAPSHOT}.{_q(schema)}.{_q(table)}"
        if text := comment or table_text:
            statements.append(f"comment on table {target} is {_string(text)}")
        for column, column_comment in column_comments.items():
            if text := column_comment or column_texts.get(column):
                statements.append(f"comment on column {target}.{_q(column)} is {_string(text)}")
    con.execute("begin")
    for statement in statements:
        con.execute(statement)
    con.execute("commit")


def _decimal_width(data_type: str) -> int | None:
    match = re.fullmatch(r"DECIMAL\((\d+),\s*\d+\)", data_type)
    return int(match[1]) if match else None


def _nested_wide(data_type: str) -> bool:
    """A nested type (LIST, STRUCT, MAP, ARRAY) with a HUGEINT or a too-wide DECIMAL inside."""
    if _decimal_width(data_type) is not None or data_type in _WIDE_INTEGERS:
        return False
    widths = [int(width) for width in re.findall(r"DECIMAL\((\d+),", data_type)]
    return "HUGEINT" in data_type or any(width > BI_MAX_DECIMAL_WIDTH for width in widths)


def _bounds(column: _Column) -> tuple[str, str]:
    """SQL literals of the smallest and largest value of the column's BI type."""
    if column.bi_type == "BIGINT":
        return str(_BIGINT_RANGE[0]), str(_BIGINT_RANGE[1])
    scale = column.scale or 0
    digits = "9" * (BI_MAX_DECIMAL_WIDTH - scale) + ("." + "9" * scale if scale else "")
    largest = f"{digits}::{column.data_type}"
    return f"-{largest}", largest


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


def _schemas(con: duckdb.DuckDBPyConnection, catalog: str, *, every: bool = False) -> set[str]:
    """The schemas of ``catalog`` that hold a table or view (``every``: all but DuckDB's ``main``)."""
    if every:
        rows = con.execute(
            "select schema_name from duckdb_schemas() where database_name = ? and not internal", [catalog]
        ).fetchall()
        return {schema for (schema,) in rows} - {"main"}
    rows = con.execute(
        "select distinct table_schema from information_schema.tables where table_catalog = ?", [catalog]
    ).fetchall()
    return {schema for (schema,) in rows}


def _relations(con: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[str, str]]:
    """(schema, name) of every table and view in ``catalog``."""
    rows = con.execute(
        "select table_schema, table_name from information_schema.tables where table_catalog = ? order by 1, 2",
        [catalog],
    ).fetchall()
    return [(schema, name) for schema, name in rows]


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    return _string(str(path))


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _remove(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)

"""Landing files -> ``raw`` tables: each file exactly once, each file all-or-nothing.

A file ``<landing>/<source>/<name>.csv|.parquet`` is one batch. Its identity is
its path and the sha256 of its bytes (``ops.load_manifest``), so loading is
idempotent however often it runs. A batch is read, cast to the raw contract's
types and checked (required columns, types, not-null, accepted values, keys
unique in the batch and new to the warehouse) before one transaction appends
it to ``raw.<source>`` and records it in the manifest. A bad batch touches
nothing in ``raw``; its problems go to ``ops.load_failures`` and to the error
the caller sees, and the file stays in landing to be fixed and dropped again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from boomerang.contract import FILE_SUFFIXES, SOURCES, Source
from boomerang.warehouse import connect, ensure_schemas

log = logging.getLogger(__name__)

SAMPLE_SIZE = 3


class BatchError(Exception):
    """A landing file that breaks the raw contract; the message says what and where."""


class LoadError(Exception):
    """One or more batches failed; good batches of the same run were still loaded."""

    def __init__(self, failures: list[tuple[Path, str]], landing_dir: Path):
        self.failures = failures
        lines = [f"{len(failures)} landing file(s) were not loaded (nothing of them reached raw):"]
        lines += [f"  - {problem}" for _path, problem in failures]
        lines.append(f"Fix the file(s) and drop them back into {landing_dir}; the next load picks them up.")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Batch:
    path: Path
    relative_path: str
    source: Source
    content_hash: str

    @property
    def batch_id(self) -> str:
        return self.content_hash[:16]


@dataclass
class LoadReport:
    loaded: list[tuple[str, int]] = field(default_factory=list)  # (file, rows)
    skipped: int = 0  # already loaded
    failed: list[tuple[Path, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files in no known source folder

    @property
    def rows(self) -> int:
        return sum(rows for _file, rows in self.loaded)

    def summary(self) -> str:
        return (
            f"loaded {len(self.loaded)} file(s) ({self.rows:,} rows), "
            f"skipped {self.skipped} already loaded, {len(self.failed)} failed"
            + (f", ignored {len(self.ignored)} outside any source folder" if self.ignored else "")
        )


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def discover(landing_dir: Path) -> tuple[list[Batch], list[str]]:
    """Every landing file in contract order (customers first), and files ignored."""
    batches: list[Batch] = []
    ignored: list[str] = []
    if not landing_dir.exists():
        return batches, ignored
    for path in sorted(landing_dir.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        relative = path.relative_to(landing_dir).as_posix()
        source = SOURCES.get(path.relative_to(landing_dir).parts[0])
        if source is None or path.suffix.lower() not in FILE_SUFFIXES or path.parent == landing_dir:
            ignored.append(relative)
            continue
        batches.append(Batch(path, relative, source, file_hash(path)))
    order = {name: position for position, name in enumerate(SOURCES)}
    batches.sort(key=lambda batch: (order[batch.source.name], batch.relative_path))
    return batches, ignored


def load_landing(warehouse_path: Path, landing_dir: Path, as_of: date | None = None) -> LoadReport:
    """Load every landing file not loaded yet; raise :class:`LoadError` if any failed."""
    batches, ignored = discover(landing_dir)
    report = LoadReport(ignored=ignored)
    for name in ignored:
        log.warning("Ignoring %s: not a .csv/.parquet file in a source folder (%s)", name, ", ".join(SOURCES))
    with connect(warehouse_path) as con:
        ensure_schemas(con)
        loaded = set(con.execute("select file_path, content_hash from ops.load_manifest").fetchall())
        for batch in batches:
            if (batch.relative_path, batch.content_hash) in loaded:
                report.skipped += 1
                continue
            try:
                rows = load_batch(con, batch, as_of)
            except BatchError as error:
                problem = str(error)
                log.error("%s", problem)
                _record_failure(con, batch, as_of, problem)
                report.failed.append((batch.path, problem))
                continue
            log.info("Loaded %s: %s rows into raw.%s", batch.relative_path, f"{rows:,}", batch.source.name)
            report.loaded.append((batch.relative_path, rows))
    log.info("Load: %s", report.summary())
    if report.failed:
        raise LoadError(report.failed, landing_dir)
    return report


def _record_failure(con: duckdb.DuckDBPyConnection, batch: Batch, as_of: date | None, problem: str) -> None:
    con.execute(
        "insert into ops.load_failures values (?, ?, ?, ?, ?, ?)",
        [batch.relative_path, batch.content_hash, batch.source.name, as_of, _now(), problem],
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def load_batch(con: duckdb.DuckDBPyConnection, batch: Batch, as_of: date | None) -> int:
    """Check one file against the contract and append it to raw in one transaction."""
    source = batch.source
    where = batch.relative_path
    _stage(con, batch)
    try:
        _check_batch(con, source, where)
        con.execute("begin transaction")
        try:
            columns = ", ".join(source.column_names)
            con.execute(
                f"insert into raw.{source.name} ({columns}, _batch_id, _source_file) "
                f"select {columns}, ?, ? from _typed order by _row",
                [batch.batch_id, batch.relative_path],
            )
            rows = con.execute("select count(*) from _typed").fetchone()[0]  # type: ignore[index]
            con.execute(
                "insert into ops.load_manifest values (?, ?, ?, ?, ?, ?, ?)",
                [
                    batch.relative_path,
                    batch.content_hash,
                    source.name,
                    batch.batch_id,
                    rows,
                    as_of,
                    _now(),
                ],
            )
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        return int(rows)
    finally:
        con.execute("drop table if exists _text")
        con.execute("drop table if exists _typed")


def _stage(con: duckdb.DuckDBPyConnection, batch: Batch) -> None:
    """Read the file as text (CSV) or as stored (Parquet) into ``_text`` with row numbers."""
    path = str(batch.path)
    if batch.path.suffix.lower() == ".csv":
        reader = "read_csv(?, all_varchar = true, header = true, auto_detect = true)"
        first_row = 2  # the header is line 1
    else:
        reader = "read_parquet(?)"
        first_row = 1
    try:
        con.execute(
            f"create or replace temp table _text as "
            f"select *, row_number() over () + {first_row - 1} as _row from {reader}",
            [path],
        )
    except duckdb.Error as error:
        first_line = str(error).strip().splitlines()[0]
        raise BatchError(
            f"{batch.relative_path}: cannot be read as {batch.path.suffix[1:].upper()} ({first_line}). "
            "Check the file is complete and in the raw contract's format."
        ) from None


def _quote(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _sample(rows: list[tuple[object, ...]]) -> str:
    return ", ".join(f"row {row} ({_quote(value)})" for row, value in rows)


def _check_batch(con: duckdb.DuckDBPyConnection, source: Source, where: str) -> None:
    """Raise :class:`BatchError` naming the file, column and rule for the first broken one."""
    found = [row[0] for row in con.execute("select name from pragma_table_info('_text')").fetchall()]
    missing = [name for name in source.column_names if name not in found]
    if missing:
        raise BatchError(
            f"{where}: missing column(s) {', '.join(missing)} for source {source.name!r} "
            f"(found: {', '.join(c for c in found if c != '_row') or 'none'}). "
            f"Expected columns: {', '.join(source.column_names)}."
        )
    total = con.execute("select count(*) from _text").fetchone()[0]  # type: ignore[index]
    if total == 0:
        raise BatchError(f"{where}: the file has a header but no rows; an empty batch is not loaded.")

    casts = ", ".join(
        f"try_cast(trim(cast({c.name} as varchar)) as {c.duckdb_type}) as {c.name}"
        if c.duckdb_type != "VARCHAR"
        else f"nullif(trim(cast({c.name} as varchar)), '') as {c.name}"
        for c in source.columns
    )
    con.execute(f"create or replace temp table _typed as select _row, {casts} from _text")

    problems: list[str] = []
    for column in source.columns:
        bad = con.execute(
            f"select t._row, x.{column.name} from _text x join _typed t using (_row) "
            f"where t.{column.name} is null and nullif(trim(cast(x.{column.name} as varchar)), '') is not null "
            f"order by t._row",
        ).fetchall()
        if bad:
            problems.append(
                f"column {column.name}: {len(bad):,} value(s) are not {column.duckdb_type} "
                f"(e.g. {_sample(bad[:SAMPLE_SIZE])})"
            )
            continue
        if not column.nullable:
            nulls = con.execute(
                f"select _row from _typed where {column.name} is null order by _row"
            ).fetchall()
            if nulls:
                rows = ", ".join(str(row[0]) for row in nulls[:SAMPLE_SIZE])
                problems.append(f"column {column.name}: {len(nulls):,} empty value(s), e.g. row {rows}")
                continue
        if column.accepted:
            accepted = ", ".join(f"'{value}'" for value in column.accepted)
            bad = con.execute(
                f"select _row, {column.name} from _typed "
                f"where {column.name} not in ({accepted}) order by _row"
            ).fetchall()
            if bad:
                problems.append(
                    f"column {column.name}: {len(bad):,} value(s) not in ({', '.join(column.accepted)}) "
                    f"(e.g. {_sample(bad[:SAMPLE_SIZE])})"
                )
    if problems:
        raise BatchError(f"{where}: " + "; ".join(problems) + ".")

    key = ", ".join(source.row_key)
    key_text = " || '/' || ".join(f"coalesce(cast({c} as varchar), '')" for c in source.row_key)
    dupes = con.execute(
        f"select min(_row), {key_text}, count(*) from _typed group by {key} having count(*) > 1 order by 1"
    ).fetchall()
    if dupes:
        raise BatchError(
            f"{where}: {len(dupes):,} duplicate key(s) ({key}) within the file "
            f"(e.g. {_sample([(row, value) for row, value, _n in dupes[:SAMPLE_SIZE]])})."
        )
    join = " and ".join(f"loaded.{c} is not distinct from batch.{c}" for c in source.row_key)
    seen = con.execute(
        f"select batch._row, batch.{source.key}, count(*) over () from _typed as batch "
        f"semi join raw.{source.name} as loaded on {join} "
        f"order by batch._row limit {SAMPLE_SIZE}"
    ).fetchall()
    if seen:
        raise BatchError(
            f"{where}: {seen[0][2]:,} row(s) repeat a key ({key}) already loaded into raw.{source.name} "
            f"(e.g. {_sample([(row, value) for row, value, _n in seen])}). Corrections are new rows "
            "with a newer version, not re-sent rows; remove the repeated rows and drop the file again."
        )

"""Opening the DuckDB warehouse: the one place every module gets a connection from.

DuckDB allows one writer process at a time and no reader beside it, so every writer opens, works and
closes promptly. Every connection is opened here so that each carries the same session settings, and
a file another process holds is reported as :class:`WarehouseBusy`, not as DuckDB's lock error; a
write-ahead log (``<warehouse>.wal``) DuckDB cannot replay is reported as :class:`WarehouseDamaged`,
with the WAL left exactly as it was.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

# DuckDB's words when another process holds the file: 'IO Error: Could not set lock on file "<path>":
# Conflicting lock is held in <program> (PID <pid>) by user <user>. See also ...' (program, PID and
# user are there when the OS tells; the message has changed between releases, so each part is optional).
_LOCK_ERROR = re.compile(r"Could not set lock|Conflicting lock")
_LOCK_HOLDER = re.compile(r"held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse file, so DuckDB will not open it for us.

    Opening read-only, the holder is a writer (readers share the file): a pipeline run, an Airflow task.
    Opening to write, the holder is anything that has the file open, a reader included. The message says
    so and what to do; :meth:`message` adds where the serving snapshot is when the caller knows it.
    """

    def __init__(self, path: Path, *, read_only: bool, pid: int | None, program: str | None) -> None:
        self.path, self.read_only, self.pid, self.program = path, read_only, pid, program
        super().__init__(self.message())

    def message(self, serving_path: Path | None = None) -> str:
        holder = f"process {self.pid} ({Path(self.program).name})" if self.pid and self.program else None
        holder = holder or (f"process {self.pid}" if self.pid else "another process")
        snapshot = (
            f"the serving snapshot, {serving_path} (e.g. `duckdb -readonly {serving_path}`)"
            if serving_path
            else "the serving snapshot (BOOMERANG_SERVING)"
        )
        if self.read_only:
            return (
                f"the warehouse {self.path} is being written by {holder}, usually a pipeline run (an "
                "Airflow task or `boomerang run`), and DuckDB lets no other process read the file while one "
                f"writes. Retry when the run ends; for BI and ad-hoc queries use {snapshot}, which a run "
                "never locks."
            )
        return (
            f"the warehouse {self.path} is held open by {holder}, and DuckDB lets only one process write "
            "it with no reader beside it. Close what holds it (a `boomerang sql` or a BI tool pointed at the "
            f"working file: BI reads {snapshot}) or wait for the other pipeline run to end, then retry."
        )


# DuckDB's words for a WAL it cannot replay (2.0: 'Failure while replaying WAL file "<path>": Corrupt WAL
# file: ...', 'This WAL was created for this database file, but the WAL checkpoint iteration does not match
# ...'); older releases said 'Could not read from WAL' or 'WAL ... corrupt'.
_WAL_ERROR = re.compile(
    r"replaying WAL|Corrupt WAL|This WAL was created|WAL file .* corrupt|read from WAL", re.I
)


class WarehouseDamaged(RuntimeError):
    """The warehouse's write-ahead log cannot be replayed: the file alone is not the last state a run
    left. Nothing is repaired or deleted here (the WAL may hold the only copy of a run's writes); the
    message names both files and the way back, ``boomerang restore``."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.wal, self.reason = path, wal_path(path), reason
        super().__init__(
            f"the warehouse {path} cannot be opened safely: its write-ahead log {self.wal} cannot be "
            f"replayed ({reason}). Nothing was changed: the WAL was not deleted or modified. Rebuild the "
            "warehouse from its backup and the ledger journal with `boomerang restore` (it moves both "
            "files aside to <warehouse>.damaged-<time>, never deletes them); `boomerang restore --dry-run` "
            "first says what it would restore."
        )


def wal_path(path: Path) -> Path:
    """DuckDB's write-ahead log beside the warehouse file ``path``."""
    return path.with_name(path.name + ".wal")


def _fingerprint(path: Path) -> tuple[int, str] | None:
    """(size, sha256) of a non-empty file, None when it is missing or empty."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return path.stat().st_size, digest.hexdigest()


def _damaged(error: duckdb.Error, path: Path) -> WarehouseDamaged | None:
    """:class:`WarehouseDamaged` if ``error`` is DuckDB failing to replay ``path``'s WAL."""
    text = str(error)
    if not _WAL_ERROR.search(text) or _LOCK_ERROR.search(text):
        return None
    return WarehouseDamaged(path, text.splitlines()[0] if text else type(error).__name__)


def _probe_wal(path: Path) -> None:
    """Before writing to a warehouse left with a WAL (a process died mid-write), check DuckDB replays it.

    DuckDB replays a good WAL on open and folds it into the file when the connection closes; a WAL it
    does not recognise (not written for this file: overwritten, from another database) it skips in
    silence, and the next write would then replace it. So: open and close once; a WAL still there with
    the very same bytes was not replayed, and is reported instead of lost."""
    before = _fingerprint(wal_path(path))
    if before is None:
        return
    try:
        duckdb.connect(str(path)).close()
    except duckdb.Error as error:
        damaged = _damaged(error, path)
        if damaged is not None:
            raise damaged from error
        raise
    if _fingerprint(wal_path(path)) == before:
        raise WarehouseDamaged(
            path, f"DuckDB did not recognise it as this file's log and skipped its {before[0]:,} bytes"
        )


def _busy(error: duckdb.Error, path: Path, read_only: bool) -> WarehouseBusy | None:
    """:class:`WarehouseBusy` if ``error`` is DuckDB saying another process holds ``path``."""
    text = str(error)
    if not isinstance(error, duckdb.IOException) or not _LOCK_ERROR.search(text):
        return None
    holder = _LOCK_HOLDER.search(text)
    return WarehouseBusy(
        path,
        read_only=read_only,
        pid=int(holder["pid"]) if holder else None,
        program=holder["program"] if holder else None,
    )


@contextmanager
def connect(path: Path | None, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse at ``path`` (``None``: an in-memory database) with the session settings
    every connection shares (UTC); create the file's folder first when writing.

    Raises :class:`WarehouseBusy` when another process holds the file (a run writing it, or, when
    writing, anyone reading it), and :class:`WarehouseDamaged` when its WAL cannot be replayed (checked
    before writing: see :func:`_probe_wal`; read-only, when DuckDB says so)."""
    if path is not None and not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif path is not None and not path.exists():
        raise FileNotFoundError(
            f"No warehouse at {path}. Run `make demo` or `boomerang load` first, "
            "or point BOOMERANG_WAREHOUSE at an existing file."
        )
    try:
        if path is not None and not read_only and path.exists():
            _probe_wal(path)
        con = duckdb.connect(":memory:" if path is None else str(path), read_only=read_only)
    except duckdb.Error as error:
        problem = None
        if path is not None:
            problem = _busy(error, path, read_only) or _damaged(error, path)
        if problem is None:
            raise
        raise problem from error
    try:
        configure(con)
        yield con
    finally:
        con.close()


def configure(con: duckdb.DuckDBPyConnection) -> None:
    """The session settings of every warehouse connection: timestamps are UTC."""
    con.execute("set TimeZone = 'UTC'")


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` (a table or a view) exists in the connected warehouse."""
    [(count,)] = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(count)


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

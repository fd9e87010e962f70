"""Opening the DuckDB warehouse: the one place every module gets a connection from.

DuckDB allows one writer process at a time and no reader beside it, so every writer opens, works and
closes promptly. Every connection is opened here so that each carries the same session settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


@contextmanager
def connect(path: Path | None, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse at ``path`` (``None``: an in-memory database) with the session settings
    every connection shares (UTC); create the file's folder first when writing."""
    if path is not None and not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif path is not None and not path.exists():
        raise FileNotFoundError(
            f"No warehouse at {path}. Run `make demo` or `boomerang load` first, "
            "or point BOOMERANG_WAREHOUSE at an existing file."
        )
    con = duckdb.connect(":memory:" if path is None else str(path), read_only=read_only)
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

"""Reading one landing file into DuckDB as text (CSV) or as stored (Parquet), rows numbered as the
file numbers them, so the gate's messages can point at a line. A file that cannot be read at all is a
:class:`BatchError` whose message says which file and why."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb


class BatchError(Exception):
    """A landing file that cannot be read at all; the message says which and why."""


def stage(con: duckdb.DuckDBPyConnection, path: Path, relative_path: str) -> None:
    """Read a file as text (CSV) or as stored (Parquet) into ``_text``, numbering its rows."""
    kind = path.suffix.lower()
    if path.stat().st_size == 0:
        raise BatchError(f"{relative_path}: the file is empty (0 bytes)")
    if kind == ".csv":
        header = _csv_header(path, relative_path)
        columns = (
            "{" + ", ".join(f"'{name.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for name in header) + "}"
        )
        # No sniffing, strict: a ragged or cut-off line is an error, never a row padded with nulls.
        reader = (
            f"read_csv(?, columns = {columns}, header = true, auto_detect = false, delim = ',', "
            "quote = '\"', escape = '\"', strict_mode = true, null_padding = false)"
        )
        first_row = 2  # the header is line 1
    else:
        reader = "read_parquet(?)"
        first_row = 1
    try:
        con.execute(
            f"create or replace temp table _text as "
            f"select *, row_number() over () + {first_row - 1} as _row from {reader}",
            [str(path)],
        )
    except duckdb.Error as error:
        raise BatchError(
            f"{relative_path}: cannot be read as {kind[1:].upper()}: {_read_problem(error)}"
        ) from None


def _csv_header(path: Path, relative_path: str) -> list[str]:
    """The column names on the first line of a CSV file."""
    with path.open("rb") as handle:
        first = handle.readline()
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchError(
            f"{relative_path}: cannot be read as CSV: it is not UTF-8 text; re-export it as UTF-8"
        ) from None
    names = next(csv.reader([text]), [])
    if not names or any(not name.strip() for name in names):
        raise BatchError(
            f"{relative_path}: cannot be read as CSV: the first line must be a header of column names"
        )
    return [name.strip() for name in names]


def _read_problem(error: duckdb.Error) -> str:
    """DuckDB's complaint about a file, in one line with a hint."""
    text = str(error)
    if "unicode" in text.lower() or "not utf-8" in text.lower():
        return "it is not UTF-8 text; re-export it as UTF-8"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    where = next((line for line in lines if line.startswith("CSV Error on Line")), "")
    why = next(
        (line for line in lines if "Expected Number of Columns" in line or "quote" in line.lower()), ""
    )
    if where or why:
        return (
            f"{where} {why}".strip()
            + " (is the file cut off, or does a line have more or fewer fields than the header?)"
        )
    first = lines[0] if lines else "unknown error"
    return f"{first[:300]} (check that the file is complete and in the raw contract's format)"

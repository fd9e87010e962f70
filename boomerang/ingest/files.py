"""Reading one landing file into DuckDB as text (CSV) or as stored (Parquet), rows numbered as the
file numbers them, so the gate's messages can point at a line. A file that cannot be read at all is a
:class:`BatchError` whose message says which file and why."""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
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
            f"{relative_path}: cannot be read as {kind[1:].upper()}: "
            + (_csv_problem(path, error) if kind == ".csv" else _read_problem(error))
        ) from None


def _csv_header(path: Path, relative_path: str) -> list[str]:
    """The column names on the first line of a CSV file, exactly as written (nothing is trimmed)."""
    with path.open("rb") as handle:
        first = handle.readline()
    try:
        text = first.decode("utf-8-sig")  # a UTF-8 byte-order mark is not part of the first name
    except UnicodeDecodeError as error:
        raise BatchError(
            f"{relative_path}: cannot be read as CSV: line 1 (the header) is not UTF-8 text "
            f"(byte {error.start + 1}); re-export the file as UTF-8"
        ) from None
    names = next(csv.reader([text.rstrip("\r\n")]), [])
    if not names or any(not name.strip() for name in names):
        raise BatchError(
            f"{relative_path}: cannot be read as CSV: the first line must be a header of column names"
        )
    padded = [name for name in names if name != name.strip()]
    if padded:
        raise BatchError(
            f"{relative_path}: cannot be read as CSV: the header has column name(s) with leading or "
            f"trailing whitespace: {', '.join(repr(name) for name in padded)} (names are matched "
            "exactly, nothing is trimmed); write the header without spaces around the commas"
        )
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        where = "; ".join(
            f"`{name}` (columns {', '.join(str(i + 1) for i, n in enumerate(names) if n == name)})"
            for name in repeated
        )
        raise BatchError(
            f"{relative_path}: cannot be read as CSV: the header repeats {where}; each column may appear once"
        )
    return names


def _csv_problem(path: Path, error: duckdb.Error) -> str:
    """Why DuckDB could not read a CSV file, with the line to look at.

    DuckDB's own line number is used when it gives one; otherwise (and for text that is not UTF-8)
    the file is scanned here, on the error path only, for the first line that is at fault.
    """
    text = str(error)
    if "unicode" in text.lower() or "not utf-8" in text.lower():
        line, byte = _first_non_utf8_line(path)
        where = f"line {line} (byte {byte} of the line) is not UTF-8 text" if line else "it is not UTF-8 text"
        return f"{where}; re-export the file as UTF-8"
    found = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if found:
        line = _duckdb_line(text) or _first_ragged_line(path, int(found.group(1)))
        return (
            f"line {line if line else '?'} has {found.group(2)} field(s), the header has {found.group(1)} "
            f"(Expected Number of Columns: {found.group(1)} Found: {found.group(2)}; "
            "is the file cut off, or does a line have more or fewer fields than the header?)"
        )
    return _read_problem(error)


def _duckdb_line(text: str) -> int | None:
    found = re.search(r"CSV Error on Line: (\d+)", text)
    return int(found.group(1)) if found and int(found.group(1)) > 0 else None


def _first_non_utf8_line(path: Path) -> tuple[int, int] | tuple[None, None]:
    """(line, 1-based byte within it) of the first bytes that are not UTF-8, or (None, None)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError as error:
                return number, error.start + 1
    return None, None


def _first_ragged_line(path: Path, fields: int) -> int | None:
    """The first line (as the file numbers lines) whose record has a different number of fields."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        line = reader.line_num
        for record in reader:
            if len(record) != fields:
                return line + 1  # where the record starts
            line = reader.line_num
    return None


def _read_problem(error: duckdb.Error) -> str:
    """DuckDB's complaint about a file, in one line with a hint."""
    text = str(error)
    if "unicode" in text.lower() or "not utf-8" in text.lower():
        return "it is not UTF-8 text; re-export it as UTF-8"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else "unknown error"
    return f"{first[:300]} (check that the file is complete and in the raw contract's format)"

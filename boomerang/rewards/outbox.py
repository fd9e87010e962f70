"""The outbox files the loyalty system reads: ``<outbox>/<as_of>.jsonl``, one message per pre-grant
or clawback, keyed by the ledger entry's key (its idempotency key). ``ledger.outbox`` is the table;
these files are its copy outside the warehouse."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb

from boomerang.rewards.ledger import json_default


def write_outbox_file(con: duckdb.DuckDBPyConnection, outbox_dir: Path, as_of: date) -> Path | None:
    """Write ``<outbox_dir>/<as_of>.jsonl``: every outbox row of that run, one JSON object a line.

    Rewritten whole from ``ledger.outbox`` each time (same rows, same bytes), through a temporary
    file renamed into place, so a reader sees the old file or the new one, never half of one.
    """
    cursor = con.execute(
        "select idempotency_key, operation, customer_id, points, expires_at, channel, message, "
        "campaign_id, as_of_date from ledger.outbox where as_of_date = ? order by idempotency_key",
        [as_of],
    )
    names = [column[0] for column in cursor.description]
    rows = cursor.fetchall()
    path = outbox_dir / f"{as_of.isoformat()}.jsonl"
    if not rows:
        return None
    outbox_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(
        json.dumps(dict(zip(names, row, strict=True)), default=json_default, sort_keys=True) + "\n"
        for row in rows
    )
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def read_outbox_files(outbox_dir: Path, *, after: date | None, until: date) -> list[dict]:
    """Outbox messages of runs after ``after`` (exclusive) and before ``until`` (exclusive), in order."""
    if not outbox_dir.exists():
        return []
    messages = []
    for path in sorted(outbox_dir.glob("*.jsonl")):
        try:
            day = date.fromisoformat(path.stem)
        except ValueError:
            continue
        if (after is None or day > after) and day < until:
            messages += [json.loads(line) for line in path.read_text().splitlines() if line]
    return messages

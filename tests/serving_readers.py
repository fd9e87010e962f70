"""Reader processes that query the serving snapshot in a loop while the pipeline runs (for the
concurrency tests): one reopens it every second, one holds its first connection to the end."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

READER = r"""
import json, os, sys, time
import duckdb

path, out, stop, mode = sys.argv[1:5]
deadline = time.monotonic() + 1500
CHECKSUM = "select count(*), md5(string_agg(md5(t::varchar), '' order by md5(t::varchar))) from marts.dim_customers as t"

def snapshot_inode():
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None

with open(out, "w") as sink:
    def emit(**row):
        sink.write(json.dumps(row, default=str) + "\n")
        sink.flush()

    connection = 0
    while not os.path.exists(stop) and time.monotonic() < deadline:
        if not os.path.exists(path):
            time.sleep(0.2)
            continue
        inode = snapshot_inode()
        try:
            con = duckdb.connect(path, read_only=True)
        except Exception as error:
            emit(kind="error", stage="open", error=repr(error))
            time.sleep(0.2)
            continue
        if snapshot_inode() != inode:
            inode = None  # replaced while opening: which file this connection holds is unknown
        connection += 1
        opened = time.monotonic()
        try:
            while not os.path.exists(stop) and (mode == "hold" or time.monotonic() - opened < 1.0):
                try:
                    rows = con.execute(
                        "select table_schema, table_name, row_count, as_of_date from meta.snapshot"
                    ).fetchall()
                    expected = {f"{s}.{t}": n for s, t, n, _ in rows}
                    seen = {
                        name: con.execute(f"select count(*) from {name}").fetchone()[0] for name in expected
                    }
                    tables = {
                        f"{s}.{t}"
                        for s, t in con.execute(
                            "select table_schema, table_name from information_schema.tables "
                            "where table_schema <> 'meta'"
                        ).fetchall()
                    }
                    emit(
                        kind="query",
                        connection=connection,
                        inode_at_open=inode,
                        inode_now=snapshot_inode(),
                        as_of=sorted({str(r[3]) for r in rows}),
                        consistent=seen == expected and tables == set(expected),
                        checksum=list(con.execute(CHECKSUM).fetchone()),
                    )
                except Exception as error:
                    emit(kind="error", stage="query", connection=connection, error=repr(error))
                time.sleep(0.1)
        finally:
            con.close()
"""


@contextmanager
def readers_running(serving_path: Path, folder: Path):
    """Start both readers, yield a dict that gets ``{mode: [rows]}`` once they stopped."""
    script = folder / "reader.py"
    script.write_text(READER)
    stop = folder / "stop"
    processes = {
        mode: subprocess.Popen(
            [sys.executable, str(script), str(serving_path), str(folder / f"{mode}.jsonl"), str(stop), mode]
        )
        for mode in ("cycle", "hold")
    }
    reads: dict[str, list[dict]] = {}
    try:
        yield reads
    finally:
        stop.touch()
        for process in processes.values():
            process.wait(timeout=60)
        for mode in processes:
            out = folder / f"{mode}.jsonl"
            reads[mode] = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

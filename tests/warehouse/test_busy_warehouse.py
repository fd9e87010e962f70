"""A warehouse another process holds: a message that says who and what to do, not DuckDB's lock error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from boomerang.warehouse.db import WarehouseBusy, connect

# Holds the file like a pipeline run (write) or a BI tool (read) until the test closes its stdin.
HOLDER = """
import sys
import duckdb

con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read")
con.execute("create table if not exists t as select 1 as x") if sys.argv[2] == "write" else None
print("holding", flush=True)
sys.stdin.read()
con.close()
"""


@contextmanager
def held(path: Path, mode: str) -> Iterator[int]:
    """Another process holding ``path`` open (``mode``: write or read); yields its PID."""
    path.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "holding"
        yield process.pid
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=60)


def test_sql_during_a_run_says_a_run_is_writing_and_points_to_the_serving_snapshot(settings):
    with held(settings.warehouse_path, "write") as pid:
        result = subprocess.run(
            [sys.executable, "-m", "boomerang.cli", "sql", "select 1"],
            env={**os.environ, **settings.to_env()},
            capture_output=True,
            text=True,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"is being written by process {pid}" in result.stderr
    assert "pipeline run" in result.stderr and "Retry when the run ends" in result.stderr
    assert f"the serving snapshot, {settings.serving_path}" in result.stderr
    assert "Traceback" not in output
    assert "Conflicting lock" not in output and "Could not set lock" not in output


def test_a_writer_blocked_by_a_reader_names_the_reader(settings):
    with connect(settings.warehouse_path) as con:  # a warehouse to open
        con.execute("create table t as select 1 as x")
    with held(settings.warehouse_path, "read") as pid, pytest.raises(WarehouseBusy) as caught:
        connect(settings.warehouse_path).__enter__()
    assert caught.value.pid == pid and not caught.value.read_only
    assert f"is held open by process {pid}" in str(caught.value)
    assert "BI tool" in str(caught.value) and "Conflicting lock" not in str(caught.value)
    # once the other process lets go, the same call works
    with connect(settings.warehouse_path) as con:
        assert con.execute("select x from t").fetchall() == [(1,)]

"""A run killed while dbt works leaves no dbt behind holding the warehouse: the retry succeeds.

On Linux dbt dies with its parent (the kernel's parent-death signal); elsewhere the next step waits
for an orphaned dbt that still holds the warehouse, and says so.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_AS_OF, copy_warehouse, query

from boomerang import pipeline
from boomerang.config import Settings
from boomerang.warehouse.dbt import DbtOrphaned, dbt_record_path, wait_for_orphaned_dbt

# The daily dbt step in a process of its own (an Airflow task, a `boomerang run`), logging to stdout.
DBT_STEP = """
import logging
import sys
from datetime import date

from boomerang import pipeline
from boomerang.config import Settings

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
pipeline.run_step("dbt_build", Settings.from_env(), date.fromisoformat(sys.argv[1]))
"""

# Holds the warehouse open to write, like a dbt at work, for argv[2] seconds.
HOLDER = """
import sys
import time

import duckdb

con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie nobody reaped has ended too)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_killing_the_run_during_dbt_build_kills_dbt_and_the_retry_succeeds(tiny_loaded, tmp_path):
    settings = copy_warehouse(tiny_loaded, tmp_path / "home")
    run = subprocess.Popen(
        [sys.executable, "-c", DBT_STEP, TINY_AS_OF.isoformat()],
        env={**os.environ, **settings.to_env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert run.stdout is not None
    seen = []
    for line in run.stdout:  # dbt has the warehouse open once it starts building models
        seen.append(line)
        if line.startswith("dbt | ") and " START " in line:
            break
    else:
        pytest.fail("dbt never started building:\n" + "".join(seen))
    dbt_pid = json.loads(dbt_record_path(settings).read_text())["pid"]
    assert not _gone(dbt_pid)

    os.kill(run.pid, signal.SIGKILL)  # the parent only: dbt is not signalled
    run.wait(timeout=10)
    deadline = time.monotonic() + 1
    while not _gone(dbt_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(dbt_pid), f"dbt (pid {dbt_pid}) outlived its parent by more than a second"

    # the retry, at once: it finds the warehouse free and builds
    pipeline.run_step("dbt_build", settings, TINY_AS_OF)
    assert query(settings, "select count(*) from marts.dim_customers")[0][0] > 0
    assert not dbt_record_path(settings).exists()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _hold(settings: Settings, seconds: float) -> subprocess.Popen:
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(settings.warehouse_path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def _record(settings: Settings, pid: int, parent: int) -> None:
    dbt_record_path(settings).write_text(
        json.dumps({"pid": pid, "parent_pid": parent, "as_of": "2025-06-01", "command": "build"})
    )


def test_a_step_waits_for_an_orphaned_dbt_and_says_so(settings, caplog):
    """Where the kernel does not kill dbt with its parent: the next step waits until it lets go."""
    holder = _hold(settings, 2)
    parent = _dead_pid()
    _record(settings, holder.pid, parent)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="boomerang.warehouse.dbt"):
        wait_for_orphaned_dbt(settings, timeout_s=60)
    waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert 0.5 < waited < 30
    assert (
        f"dbt (pid {holder.pid}, `dbt build` for as_of 2025-06-01) outlived the run that started it"
        in caplog.text
    )
    assert f"(pid {parent})" in caplog.text and "waiting up to 60 s" in caplog.text
    assert "let go of the warehouse after" in caplog.text
    assert not dbt_record_path(settings).exists()


def test_an_orphaned_dbt_that_never_lets_go_is_named(settings):
    holder = _hold(settings, 30)
    try:
        _record(settings, holder.pid, _dead_pid())
        with pytest.raises(DbtOrphaned) as error:
            wait_for_orphaned_dbt(settings, timeout_s=0.5)
        assert f"still holds the warehouse {settings.warehouse_path} after 0.5 s" in str(error.value)
        assert f"Stop it (`kill {holder.pid}`) and run again" in str(error.value)
    finally:
        holder.kill()
        holder.wait()


def test_a_dbt_whose_run_is_alive_is_not_waited_for(settings):
    """A live run's dbt is that run's business (the run lock keeps runs apart): no wait."""
    holder = _hold(settings, 30)
    try:
        _record(settings, holder.pid, os.getppid())  # a live parent
        started = time.monotonic()
        wait_for_orphaned_dbt(settings, timeout_s=60)
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()

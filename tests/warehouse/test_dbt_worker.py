"""A run's dbt calls share one dbt process (boomerang.warehouse.dbt_worker), which parses the project
once and lets go of the warehouse after every call; a changed project, a dead worker or
BOOMERANG_DBT_WORKER=off each get a fresh `dbt`."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import TINY_AS_OF, copy_warehouse, query

from boomerang import pipeline
from boomerang.config import Settings
from boomerang.warehouse import dbt
from boomerang.warehouse.dbt import run_dbt

STARTED = re.compile(r"Started a dbt worker \(pid (\d+)\)")
# A cheap selection for `dbt run`: the staging views of the landing tables.
VIEWS = ["--select", "path:models/staging/landing"]


@pytest.fixture(autouse=True)
def no_worker_before_or_after():
    dbt.stop_worker()
    yield
    dbt.stop_worker()


def _started(caplog) -> list[int]:
    return [int(match[1]) for record in caplog.records if (match := STARTED.search(record.getMessage()))]


def _holds(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` (or its .wal) open. A busy process opens and closes files
    while its descriptors are listed: one gone before it is read was not the warehouse's."""
    target = os.path.realpath(path)
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).startswith(target):
                return True
        except FileNotFoundError:
            continue
    return False


def _write_probe(settings, value: int) -> None:
    """Write to the warehouse from this process: DuckDB's single writer, so no dbt may hold it."""
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute("create or replace table ops.worker_probe as select ? as value", [value])
    finally:
        con.close()


@pytest.mark.slow
def test_a_runs_dbt_calls_share_one_dbt_process_that_lets_go_of_the_warehouse(tiny_loaded, tmp_path, caplog):
    settings = copy_warehouse(tiny_loaded, tmp_path / "home")
    caplog.set_level(logging.INFO, logger="boomerang.warehouse.dbt")

    pipeline.dbt_build(settings, TINY_AS_OF)
    _write_probe(settings, 1)  # between two dbt calls, as score_customers and the rewards steps do
    manifest = settings.dbt_target_dir / "manifest.json"
    written = manifest.stat().st_mtime_ns
    pipeline.build_ledger_marts(settings, TINY_AS_OF)
    _write_probe(settings, 2)
    run_dbt(settings, "run", TINY_AS_OF, VIEWS)
    # what the last call built; the manifest (dbt's 2 MB of the parsed project) written once, not per call
    results = json.loads((settings.dbt_target_dir / "run_results.json").read_text())["results"]
    assert {r["unique_id"].split(".")[-1] for r in results} == {
        "stg_landing__" + name
        for name in (
            "complaints",
            "customer_versions",
            "customers",
            "interactions",
            "mileage_events",
            "transactions",
        )
    }
    assert manifest.stat().st_mtime_ns == written

    [pid] = _started(caplog)  # one dbt process for the three calls
    assert os.path.exists(f"/proc/{pid}") or not sys.platform.startswith("linux")
    if sys.platform.startswith("linux"):
        assert not _holds(pid, settings.warehouse_path), "the idle dbt worker still has the warehouse open"
    assert query(settings, "select value from ops.worker_probe") == [(2,)]
    assert query(settings, "select count(*) from marts.customer_360")[0][0] > 0  # the second call built


@pytest.mark.slow
def test_a_changed_project_gets_a_new_worker_that_sees_the_change(tiny_loaded, tmp_path, caplog):
    project = tmp_path / "dbt_project"
    shutil.copytree(Settings.from_env({}).dbt_project_dir, project, ignore=shutil.ignore_patterns("target"))
    settings = copy_warehouse(tiny_loaded, tmp_path / "home").with_(dbt_project_dir=project)
    caplog.set_level(logging.INFO, logger="boomerang.warehouse.dbt")

    run_dbt(settings, "run", TINY_AS_OF, VIEWS)
    (project / "models" / "staging" / "landing" / "stg_probe.sql").write_text("select 1 as probe\n")
    run_dbt(settings, "run", TINY_AS_OF, VIEWS)  # with the old parsed project, no stg_probe

    assert len(_started(caplog)) == 2
    assert query(settings, "select probe from staging.stg_probe") == [(1,)]


def _a_killed_worker(tiny_loaded, tmp_path, caplog):
    """Settings on a copy of ``tiny_loaded`` whose dbt worker made one call, then was killed: dead, not
    yet waited for by this process. Linux (its pid's state in /proc)."""
    settings = copy_warehouse(tiny_loaded, tmp_path / "home")
    caplog.set_level(logging.INFO, logger="boomerang.warehouse.dbt")
    run_dbt(settings, "run", TINY_AS_OF, VIEWS)
    [pid] = _started(caplog)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, f"the dbt worker (pid {pid}) did not die"
        time.sleep(0.05)
    return settings


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker's pid in the log")
def test_a_worker_that_died_between_calls_is_replaced(tiny_loaded, tmp_path, caplog):
    settings = _a_killed_worker(tiny_loaded, tmp_path, caplog)
    run_dbt(settings, "run", TINY_AS_OF, VIEWS)
    assert len(_started(caplog)) == 2


@pytest.mark.slow
def test_with_the_worker_off_each_call_is_a_dbt_command(tiny_loaded, tmp_path, caplog):
    settings = copy_warehouse(tiny_loaded, tmp_path / "home").with_(dbt_worker=False)
    caplog.set_level(logging.INFO, logger="boomerang.warehouse.dbt")
    run_dbt(settings, "run", TINY_AS_OF, VIEWS)
    run_dbt(settings, "run", TINY_AS_OF, VIEWS)
    assert _started(caplog) == []
    assert query(settings, "select count(*) from staging.stg_landing__transactions")[0][0] > 0


def test_a_dbt_failure_in_the_worker_raises_with_dbts_lines_and_the_next_call_works(tiny_loaded, tmp_path):
    settings = copy_warehouse(tiny_loaded, tmp_path / "home")
    # nothing is built yet: the segments' inputs do not exist
    with pytest.raises(dbt.DbtError, match=r"(?s)failed \(exit 1\).*int_customer_segments.*does not exist"):
        run_dbt(settings, "run", TINY_AS_OF, ["--select", "int_customer_segments"])
    # a usage error, said as the `dbt` command says it
    with pytest.raises(dbt.DbtError, match=r"(?s)failed \(exit 2\).*--no-such-option"):
        run_dbt(settings, "run", TINY_AS_OF, ["--no-such-option"])
    run_dbt(settings, "run", TINY_AS_OF, VIEWS)
    assert query(settings, "select count(*) from staging.stg_landing__customers")[0][0] > 0


# A process that makes one dbt call and exits. Its first exit handler runs last (atexit runs them in
# reverse), after the worker's: it says how much CPU the children this process waited for used.
ONE_CALL = """
import atexit
import resource
import sys
from datetime import date


def children():
    print("children's cpu", resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime, flush=True)


atexit.register(children)

from boomerang.config import Settings
from boomerang.warehouse.dbt import run_dbt

run_dbt(Settings.from_env(), "run", date.fromisoformat(sys.argv[1]), sys.argv[2:])
"""


@pytest.mark.slow
def test_a_process_that_exits_waits_for_its_worker_so_its_resource_usage_counts_dbts(tiny_loaded, tmp_path):
    """`make bench` takes a step's peak memory from its process's resource usage (``wait4``), which
    counts a child only once the process has waited for it: the worker must be waited for at exit."""
    settings = copy_warehouse(tiny_loaded, tmp_path / "home")
    result = subprocess.run(
        [sys.executable, "-c", ONE_CALL, TINY_AS_OF.isoformat(), *VIEWS],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    children_cpu = float(re.search(r"children's cpu ([\d.]+)", result.stdout)[1])
    assert children_cpu > 1.0  # dbt's imports and parse alone take more; 0 if it was never waited for


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker's pid in the log")
def test_a_worker_that_dies_just_before_a_call_is_replaced_and_the_call_runs(
    tiny_loaded, tmp_path, caplog, monkeypatch
):
    """The race the check before each call can lose: the worker dies after it, before it reads the
    request. Nothing was said for the call, so it runs again in a new worker."""
    settings = _a_killed_worker(tiny_loaded, tmp_path, caplog)
    monkeypatch.setattr(dbt._Worker, "usable", lambda worker, key: True)  # the check saw it alive

    run_dbt(settings, "run", TINY_AS_OF, VIEWS)
    assert len(_started(caplog)) == 2
    assert any("had ended; starting another" in record.getMessage() for record in caplog.records)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the worker's open files in /proc")
def test_a_worker_warmed_up_ahead_parses_without_the_warehouse_and_serves_the_first_call(
    tiny_loaded, tmp_path, caplog
):
    """dbt.warm_up starts the worker before the run's first dbt call (make demo, a day through
    dag.test()): it parses the project meanwhile, quietly and never holding the warehouse the gate
    writes, and the first call is sent to it."""
    import time

    settings = copy_warehouse(tiny_loaded, tmp_path / "home")
    caplog.set_level(logging.INFO, logger="boomerang.warehouse.dbt")
    dbt.warm_up(settings)
    dbt.warm_up(settings)  # already running for these settings: nothing more
    [pid] = _started(caplog)
    log = settings.dbt_target_dir / "logs" / "dbt.log"
    deadline = time.monotonic() + 120
    while not (log.exists() and "Command `cli parse` succeeded" in log.read_text()):
        assert time.monotonic() < deadline, "the warmed-up worker never parsed the project"
        assert not _holds(pid, settings.warehouse_path)
        _write_probe(settings, 1)  # as the run's first steps write the warehouse meanwhile
        time.sleep(0.2)

    run_dbt(settings, "run", TINY_AS_OF, VIEWS)
    assert _started(caplog) == [pid]
    assert query(settings, "select count(*) from staging.stg_landing__customers")[0][0] > 0
    assert log.read_text().count("Command `cli parse` succeeded") == 1  # not parsed again for the call
    assert caplog.text.count("Running with dbt") == 1  # the call's own: the parse printed nothing

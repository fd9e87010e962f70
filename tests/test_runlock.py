"""One run at a time: a second run is refused with a message naming the running one and writes
nothing; the same run's next step or retry goes on; a run killed in a step is taken over; a run
between two steps keeps the warehouse for its lease."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import TINY_AS_OF, copy_warehouse, table_checksums

from boomerang import pipeline
from boomerang.config import Settings
from boomerang.warehouse import runlock
from boomerang.warehouse.runlock import RunInProgress

AS_OF = date(2025, 6, 1)
AIRFLOW = "airflow boomerang_daily scheduled__2025-06-01T00:00:00+00:00"

# Another process holding the run lock in a step, like an Airflow task writing, until its stdin closes.
HOLDER = """
import sys
from datetime import date

from boomerang.config import Settings
from boomerang.warehouse.runlock import run_lock

settings = Settings.from_env()
with run_lock(settings, date.fromisoformat(sys.argv[1]), sys.argv[2], sys.argv[3]):
    print("holding", flush=True)
    sys.stdin.read()
"""


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.to_env()}


@contextmanager
def holding(
    settings: Settings, identity: str = AIRFLOW, step: str = "dbt_build"
) -> Iterator[subprocess.Popen]:
    """A real second process holding the run lock in ``step``; released when the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, AS_OF.isoformat(), identity, step],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(settings),
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "holding"
        yield process
    finally:
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
        process.wait(timeout=60)


def _tree(home: Path) -> dict[str, bytes]:
    """Every file under ``home`` but the run lock, with its bytes."""
    return {
        str(path.relative_to(home)): path.read_bytes()
        for path in sorted(home.rglob("*"))
        if path.is_file() and not path.name.endswith(".lock")
    }


def test_a_second_run_is_refused_naming_the_running_one_and_writes_nothing(tiny_loaded, tmp_path):
    settings = copy_warehouse(tiny_loaded, tmp_path / "home")
    home = tmp_path / "home"
    before, checksums = _tree(home), table_checksums(settings.warehouse_path, ("raw", "ops"))
    with holding(settings) as holder:
        result = subprocess.run(
            [sys.executable, "-m", "boomerang.cli", "run", "--as-of", TINY_AS_OF.isoformat()],
            env=_env(settings),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr
    assert f"Another run is writing the warehouse: {AIRFLOW} (as_of {AS_OF}, pid {holder.pid})" in message
    assert "is in step dbt_build since 20" in message
    assert "This run (boomerang run pid " in message and f"as_of {TINY_AS_OF}, step simulate_world" in message
    assert "did nothing" in message and "Wait for it to end" in message
    assert f"`kill {holder.pid}`" in message and "mark its Airflow task failed" in message
    assert "Traceback" not in message
    # nothing written: the simulated world, landing, the warehouse are as they were
    assert _tree(home) == before
    assert table_checksums(settings.warehouse_path, ("raw", "ops")) == checksums


def test_boomerang_dbt_is_refused_while_a_run_holds_the_warehouse(tiny_loaded, tmp_path):
    settings = copy_warehouse(tiny_loaded, tmp_path / "home")
    with holding(settings, step="pregrant") as holder:
        result = subprocess.run(
            [sys.executable, "-m", "boomerang.cli", "dbt", "build", "--as-of", TINY_AS_OF.isoformat()],
            env=_env(settings),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"pid {holder.pid}" in result.stderr and "in step pregrant" in result.stderr
    assert "This run (boomerang dbt pid " in result.stderr and "step dbt build" in result.stderr
    assert "Running: build" not in result.stdout + result.stderr  # dbt never started


def test_a_step_of_another_run_is_refused_before_it_runs(settings):
    with holding(settings, step="pregrant") as holder, pytest.raises(RunInProgress) as refused:
        pipeline.run_step("simulate_world", settings, AS_OF, identity="boomerang run pid 1")
    assert f"pid {holder.pid}" in str(refused.value) and "in step pregrant" in str(refused.value)
    assert not settings.world_dir.exists() and not settings.landing_dir.exists()


def test_the_same_run_goes_on_between_its_steps_and_across_processes(settings):
    # an Airflow task in another process ran a step and ended: the run is between steps
    with holding(settings):
        pass
    assert runlock.read_holder(settings)["state"] == "between_steps"
    # another run is refused within the lease ...
    with (
        pytest.raises(RunInProgress, match="between two steps: its step dbt_build ended at") as refused,
        runlock.run_lock(settings, AS_OF, "boomerang run pid 1", "simulate_world"),
    ):
        raise AssertionError("must not run")
    assert f"{runlock.LEASE_S} s lease" in str(refused.value)
    # ... the same run's next task (a retry, too) goes on, here in this process
    with runlock.run_lock(settings, AS_OF, AIRFLOW, "score_customers") as hold:
        assert runlock.read_holder(settings)["state"] == "in_step"
        hold.last = True
    record = runlock.read_holder(settings)
    assert (record["identity"], record["step"], record["state"]) == (AIRFLOW, "score_customers", "done")
    # once done, another run goes
    with runlock.run_lock(settings, AS_OF, "boomerang run pid 1", "simulate_world"):
        pass


def test_a_step_inside_a_step_of_the_same_process_goes_on(settings):
    with (
        runlock.run_lock(settings, AS_OF, "boomerang run pid 1", "score_customers"),
        runlock.run_lock(settings, AS_OF, runlock.process_identity(), "predict_mileage"),
    ):
        assert runlock.read_holder(settings)["step"] == "score_customers"
    assert runlock.read_holder(settings)["state"] == "between_steps"


def test_a_run_between_steps_past_its_lease_no_longer_blocks(settings):
    with holding(settings):
        pass
    path = runlock.lock_path(settings)
    record = json.loads(path.read_text())
    stale = datetime.now(UTC) - timedelta(seconds=runlock.LEASE_S + 1)
    path.write_text(json.dumps({**record, "updated_at": stale.isoformat()}) + "\n")
    with runlock.run_lock(settings, AS_OF, "boomerang run pid 1", "simulate_world"):
        assert runlock.read_holder(settings)["identity"] == "boomerang run pid 1"


def test_a_command_line_run_killed_between_its_steps_owes_no_lease(settings, caplog):
    """`boomerang run` is one process: once it is gone, its next step will never come, so the
    operator's re-run goes at once (an Airflow run between tasks keeps its lease: see above)."""
    with holding(settings, identity="boomerang run pid 99", step="pregrant") as holder:
        pass
    record = runlock.read_holder(settings)
    assert (record["state"], record["pid"]) == ("between_steps", holder.pid)  # and that process is gone
    with (
        caplog.at_level(logging.WARNING),
        runlock.run_lock(settings, AS_OF, "boomerang run pid 2", "simulate_world"),
    ):
        assert runlock.read_holder(settings)["identity"] == "boomerang run pid 2"
    assert "boomerang run pid 99" in caplog.text and "Taking over" in caplog.text


def test_a_run_killed_in_a_step_is_taken_over_with_a_warning(settings, caplog):
    with holding(settings, step="pregrant") as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    assert runlock.read_holder(settings)["state"] == "in_step"  # it never got to say otherwise
    with (
        caplog.at_level(logging.WARNING, logger="boomerang.warehouse.runlock"),
        runlock.run_lock(settings, AS_OF, "boomerang run pid 1", "simulate_world"),
    ):
        pass
    warning = caplog.text
    assert f"names {AIRFLOW} (as_of {AS_OF}, pid {holder.pid}" in warning
    assert (
        "in step pregrant" in warning
        and "died (killed in or after that step" in warning
        and "Taking over" in warning
    )


def test_a_run_that_stops_early_is_done(settings, monkeypatch):
    """run_steps marks its run done when it stops before its last step (a failure here), so nobody
    waits out its lease."""
    import dataclasses

    def fails(settings, as_of):
        raise RuntimeError("broke")

    steps = [
        dataclasses.replace(pipeline.STEPS["simulate_world"], function=fails),
        dataclasses.replace(pipeline.STEPS["validate_landing"], function=lambda settings, as_of: None),
    ]
    monkeypatch.setattr(pipeline, "STEPS", {step.name: step for step in steps})
    with pytest.raises(RuntimeError, match="broke"):
        pipeline.run_steps(steps, settings, AS_OF, identity="boomerang run pid 1")
    record = runlock.read_holder(settings)
    assert (record["identity"], record["step"], record["state"]) == (
        "boomerang run pid 1",
        "simulate_world",
        "done",
    )

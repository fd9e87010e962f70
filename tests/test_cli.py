"""The command line: useful output, and errors a person can act on instead of stack traces."""

from __future__ import annotations

import os
import subprocess
import sys


def _boomerang(settings, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "boomerang.cli", *args],
        env={**os.environ, **settings.to_env(), **env},
        capture_output=True,
        text=True,
    )


def test_summary_says_what_was_loaded_and_how_to_open_it(tiny_loaded):
    settings = tiny_loaded  # read only
    result = _boomerang(settings, "summary")
    assert result.returncode == 0, result.stderr
    assert "raw.transactions" in result.stdout
    assert str(settings.warehouse_path) in result.stdout
    assert "read-only" in result.stdout


def test_sql_runs_a_read_only_query(tiny_loaded):
    settings = tiny_loaded  # read only: the refused `drop table` proves it
    result = _boomerang(settings, "sql", "select count(*) as customers from raw.customers")
    assert result.returncode == 0, result.stderr
    assert "customers" in result.stdout
    denied = _boomerang(settings, "sql", "drop table raw.customers")
    assert denied.returncode == 1 and "read-only" in denied.stderr.lower()


def test_a_missing_warehouse_is_a_message_not_a_traceback(settings):
    result = _boomerang(settings, "summary")
    assert result.returncode == 1
    assert "No warehouse at" in result.stderr and "make demo" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_names_the_variable(settings):
    result = _boomerang(settings, "settings", BOOMERANG_WORLD_SEED="forty-two")
    assert result.returncode == 1
    assert "BOOMERANG_WORLD_SEED" in result.stderr and "Traceback" not in result.stderr


def test_run_without_airflow_builds_the_marts(tiny_world, settings):
    from datetime import timedelta

    from conftest import TINY_DAYS, TINY_START

    settings = settings.with_(landing_dir=tiny_world.landing_dir, world_enabled=False)
    result = _boomerang(settings, "run", "--as-of", str(TINY_START + timedelta(days=TINY_DAYS)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "marts.dim_customers" in result.stdout


def test_load_and_validate_need_the_run_date(settings):
    """Without an as-of date nothing could wait for a later run: the loader refuses to guess."""
    for command in ("load", "validate"):
        result = _boomerang(settings, command)
        assert result.returncode == 2 and "--as-of" in result.stderr, command

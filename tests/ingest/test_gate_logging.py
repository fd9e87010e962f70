"""The gate's log says what the gate decided, not what Great Expectations says while it imports."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from conftest import CUSTOMERS, TRANSACTIONS, write_file


def test_validate_logs_the_gates_decisions_without_gx_chatter(settings):
    write_file(settings.landing_dir, "customers/a.csv", CUSTOMERS)
    write_file(settings.landing_dir, "transactions/b.csv", TRANSACTIONS)
    result = subprocess.run(
        [sys.executable, "-m", "boomerang.cli", "validate", "--as-of", "2025-06-01"],
        env={**os.environ, **settings.to_env(), "BOOMERANG_WORLD": "off"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    # GX's docs registry used to log "Skipping registering function ... because it is a closure" ~213
    # times per process (and the same in every Airflow task log).
    assert not [line for line in lines if "closure" in line or "does not have a class" in line]
    assert not [line for line in lines if "INFO great_expectations" in line]
    assert "Passed customers/a.csv" in result.stderr and "Passed transactions/b.csv" in result.stderr
    # What is left: one line per file, the gate's summary, and the command's result (a few lines).
    # Ten leaves room for the result's wording to grow, and is still far below the 200+ of before.
    assert len(lines) <= 10, "\n".join(lines)


def test_gx_warnings_still_reach_the_log():
    from boomerang.ingest.gate import _import_gx

    _import_gx()
    for name in (
        "great_expectations",
        "great_expectations._docs_decorators",
        "great_expectations.data_context.types.base",
        "great_expectations.validator.validator",
    ):
        logger = logging.getLogger(name)
        assert logger.isEnabledFor(logging.WARNING) and not logger.isEnabledFor(logging.INFO), name

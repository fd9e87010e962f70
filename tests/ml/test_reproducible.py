"""Training is reproducible: the same data and parameters give the same model, byte for byte, and
the same version name, in two separate processes, even when the warehouse holds the rows in another
order (as two builds of the same data do: a table's row order follows how dbt's joins ran)."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
import pytest
from conftest import TINY_AS_OF, copy_warehouse

from boomerang.config import PROJECT_ROOT
from boomerang.warehouse.dbt import build_training_set

pytestmark = pytest.mark.slow

GRID = {
    "churn_lookback_days": 14,
    "churn_horizon_days": 14,
    "snapshot_interval_days": 7,
    "training_snapshots": 6,
}
FILES = ("model.json", "calibrator.json", "features.json", "clv.json", "params.yaml")

TRAIN = """
import sys
from datetime import date
from pathlib import Path

from ml import registry

print(registry.train(Path(sys.argv[1]), Path(sys.argv[2]), date.fromisoformat(sys.argv[3])))
"""


def _train_in_a_process(warehouse, models_dir, hash_seed: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", TRAIN, str(warehouse), str(models_dir), TINY_AS_OF.isoformat()],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_two_processes_train_the_same_model_from_the_same_data(tiny_loaded, tmp_path):
    first = copy_warehouse(tiny_loaded, tmp_path / "first").with_(**GRID)
    build_training_set(first, TINY_AS_OF)
    second = copy_warehouse(first, tmp_path / "second").with_(**GRID)
    con = duckdb.connect(str(second.warehouse_path))  # the same rows, stored in another order
    con.execute(
        "create or replace table marts.fct_training_snapshots as "
        "select * from marts.fct_training_snapshots order by customer_id desc, as_of_date"
    )
    con.close()

    version = _train_in_a_process(first.warehouse_path, first.models_dir, "1")
    again = _train_in_a_process(second.warehouse_path, second.models_dir, "2")

    assert again == version
    folder, other = first.models_dir / "churn" / version, second.models_dir / "churn" / again
    for name in FILES:
        assert (folder / name).read_bytes() == (other / name).read_bytes(), name

"""The steps of a run: none but the loading steps creates the warehouse (an Airflow task or a
`boomerang run` step on a missing one fails, saying what to do, and leaves nothing behind)."""

from __future__ import annotations

from datetime import date

import pytest

from boomerang import pipeline

# A run's first writers: they create the warehouse. simulate_world and publish_champion never open it.
CREATORS = {"simulate_world", "validate_landing", "load_landing", "publish_champion"}


@pytest.mark.parametrize(
    "step",
    [step.name for step in (*pipeline.DAILY_STEPS, *pipeline.TRAINING_STEPS) if step.name not in CREATORS],
)
def test_steps_on_a_missing_warehouse_refuse_and_create_nothing(settings, step):
    home = settings.warehouse_path.parents[1]
    home.mkdir(exist_ok=True)
    before = sorted(home.rglob("*"))
    with pytest.raises(pipeline.WarehouseMissing) as error:
        pipeline.run_step(step, settings, date(2025, 6, 1), version="v1")
    assert str(settings.warehouse_path) in str(error.value) and "BOOMERANG_WAREHOUSE" in str(error.value)
    assert step in str(error.value) and "make demo" in str(error.value)
    assert sorted(home.rglob("*")) == before

"""
### boomerang_train

Weekly: retrain the churn model on the warehouse's training snapshots and let it
replace the champion only if it earns it.

build the training set (`dbt build --select +fct_training_snapshots`) → train a
candidate (XGBoost `hist`, early stopping on a later slice, isotonic
calibration) → evaluate it out of time against two baselines (report, plots,
model card in `models/churn/<version>/`) → promotion gate → publish the
`boomerang_churn_champion` Asset, only when a new champion was promoted.

A rejected challenger stays in `models/churn/<version>/` with the reason in
`status.json` and `metrics.json`; the run still succeeds (rejecting is the
gate doing its job) and the Asset is not published.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, dag, get_current_context, task

CHAMPION = Asset("boomerang_churn_champion")

DEFAULT_ARGS = {
    "owner": "boomerang",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}


def _as_of():
    """The run's as-of date: its logical date."""
    return get_current_context()["logical_date"].date()


@dag(
    dag_id="boomerang_train",
    schedule="@weekly",
    start_date=datetime(2025, 1, 5),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["boomerang", "ml", "weekly"],
    doc_md=__doc__,
)
def boomerang_train():
    @task
    def build_training_set() -> None:
        from boomerang import pipeline
        from boomerang.config import Settings

        pipeline.build_training_set(Settings.from_env(), _as_of())

    @task
    def train() -> str:
        from boomerang import pipeline
        from boomerang.config import Settings

        return pipeline.train_model(Settings.from_env(), _as_of())

    @task
    def evaluate(version: str) -> str:
        from boomerang import pipeline
        from boomerang.config import Settings

        pipeline.evaluate_model(Settings.from_env(), version)
        return version

    @task.short_circuit
    def promote(version: str) -> bool:
        from boomerang import pipeline
        from boomerang.config import Settings

        return pipeline.promote_model(Settings.from_env(), version)

    @task(outlets=[CHAMPION])
    def publish_champion(version: str) -> str:
        return version

    version = train()
    build_training_set() >> version
    evaluated = evaluate(version)
    promote(evaluated) >> publish_champion(evaluated)


boomerang_train()

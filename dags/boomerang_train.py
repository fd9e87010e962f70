"""
### boomerang_train

Weekly: retrain the mileage and churn models on the warehouse's training
snapshots and let each replace its champion only if it earns it.

build the training set (`dbt build --select +fct_training_snapshots
--indirect-selection cautious`, skipped when already built) → train the mileage
model (BG/NBD x Gamma-Gamma against XGBoost Tweedie, its own gate, in
`models/mileage/<version>/`) → train a churn candidate (XGBoost `hist`, early
stopping on a later slice, isotonic calibration) → evaluate it out of time
against its baselines (recency, RFM logistic, BG/NBD) with paired bootstrap
intervals (report, plots, model card in `models/churn/<version>/`) → promotion
gate → publish the `boomerang_churn_champion` Asset, only when a new champion
was promoted.

A rejected challenger stays in `models/churn/<version>/` with the reason in
`status.json` and `metrics.json`; the run still succeeds (rejecting is the
gate doing its job) and the Asset is not published.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag

from boomerang.pipeline import TRAINING_STEPS, airflow_tasks

DEFAULT_ARGS = {
    "owner": "boomerang",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}


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
    # The steps, their order, retries and trigger rules are declared once, in boomerang.pipeline:
    # build_training_set >> train >> evaluate >> promote (short-circuit) >> publish_champion (Asset).
    airflow_tasks(TRAINING_STEPS)


boomerang_train()

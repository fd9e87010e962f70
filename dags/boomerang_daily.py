"""
### boomerang_daily

The daily run for one as-of date (the run's logical date): advance the
simulated world when it is on, load new landing files into `raw` (each file
once, all or nothing), then `dbt build` the warehouse in a subprocess.

* **Idempotent**: re-running a date loads nothing new and rebuilds the same marts.
* **One run at a time**: DuckDB has one writer, so `max_active_runs=1`.
* **Backfill**: `airflow backfill create --dag-id boomerang_daily --from-date 2025-06-01 --to-date 2025-06-30`
  (runs go one at a time, oldest first).
* A failed load names the file, column and problem; the file stays in landing:
  fix it and clear the task.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, get_current_context, task

DEFAULT_ARGS = {
    "owner": "boomerang",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
}


def _as_of():
    """The run's as-of date: its logical date (a daily run's data interval has zero width)."""
    return get_current_context()["logical_date"].date()


@dag(
    dag_id="boomerang_daily",
    schedule="@daily",
    start_date=datetime(2025, 1, 2),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["boomerang", "daily"],
    doc_md=__doc__,
)
def boomerang_daily():
    @task
    def simulate_world() -> int:
        from boomerang import pipeline
        from boomerang.config import Settings

        return pipeline.simulate_world(Settings.from_env(), _as_of())

    @task(retries=0)  # a bad file needs a person, not a retry
    def load_landing() -> dict[str, int]:
        from boomerang import pipeline
        from boomerang.config import Settings

        return pipeline.load_landing(Settings.from_env(), _as_of())

    @task
    def dbt_build() -> None:
        from boomerang import pipeline
        from boomerang.config import Settings

        pipeline.dbt_build(Settings.from_env(), _as_of())

    simulate_world() >> load_landing() >> dbt_build()


boomerang_daily()

"""
### boomerang_daily

The daily run for one as-of date (the run's logical date): advance the
simulated world when it is on, validate new landing files with the Great
Expectations gate (bad batches are quarantined whole), load the good ones into
`raw` (each file once, all or nothing), `dbt build` the warehouse in a
subprocess, then score every active customer with the champion churn model
into `ml.churn_scores` (skipped with a warning until `boomerang_train` has
promoted a champion). Then the rewards: claw back the unused points of every
pre-grant that expired by the as-of date, decide the day's pre-grants and
holdout with the policy, and record both in the append-only `ledger.entries`
with their `ledger.outbox` rows (and `state/outbox/<date>.jsonl` for the loyalty
system). Finally build the marts that show scores and the ledger
(`customer_360`, `fct_pregrant_lots`, `fct_pregrant_decisions`,
`rewards_daily`), check the ledger's invariants in SQL, and publish the
serving snapshot BI tools read (`BOOMERANG_SERVING`: every `marts` table and
`ml.churn_scores`, no PII, a new version behind a link so readers never see half of it)
and the campaign report for marketers (`state/reports/campaign/index.html`). In the
simulated world, `truth_check` also compares the holdout measurement with the
world's hidden truth (`ops.truth_check`); on your own data it does nothing.

* **Idempotent**: re-running a date loads nothing new, writes no new ledger entry and
  rebuilds the same marts. A re-run whose inputs changed (another champion's scores)
  fails with a payload-mismatch error instead of granting again.
* **The books balance**: `check_ledger` fails the run if any ledger invariant breaks
  (results in `ops.ledger_invariants`).
* **BI never blocks a run**: BI tools open the serving snapshot read-only, never the
  warehouse; `publish_serving` writes a new file and swaps it in, and refuses to publish
  (the old snapshot stays) if a table would carry a column tagged `pii` in dbt.
* **One run at a time**: DuckDB has one writer, so `max_active_runs=1`.
* **Backfill**: `airflow backfill create --dag-id boomerang_daily --from-date 2025-06-01 --to-date 2025-06-30`
  (runs go one at a time, oldest first).
* A quarantined batch fails `validate_landing` with a message naming the file,
  the broken rules with example rows, and where the batch and its report went.
  Good batches of the same run still load (`load_landing` runs anyway) and
  `dbt build` still runs; `quality_verdict` then fails the run with the same
  message, so the run shows red. Fix the file and drop it back into landing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag

from boomerang.pipeline import DAILY_STEPS, airflow_tasks

DEFAULT_ARGS = {
    "owner": "boomerang",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
}


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
    # The steps, their order, retries and trigger rules are declared once, in boomerang.pipeline.
    airflow_tasks(DAILY_STEPS)


boomerang_daily()

"""The truth check: does the holdout measurement find the effect the grants really had?

Only in the simulated world. The world draws its main random numbers from ``(seed, day)`` and the
grant reactions from a stream of their own, so a *twin* world advanced with the same seed, size and
start but no outbox is the same world without any grant: the counterfactual of every treated
customer, drawn with the same random numbers wherever the grants did not change what happened.
(Once a grant changes who buys on a day, the rest of that day's draws - basket sizes, complaints -
shift; the next day starts in step again. The twin is still an honest draw of the world without
grants, only not a perfectly coupled one.)

For every decision of the campaign whose retention window is complete, the real outcome (a purchase
in the window; revenue) comes from the warehouse's ``raw.transactions`` and the counterfactual one
from the twin's landing files. The **true** incremental retention is the mean of real minus
counterfactual over the treated (the effect on the treated, ATT); the **measured** one is treated
minus control, exactly as ``marts.fct_campaign_results`` computes its cohort 'all' overall row. The
result goes to ``ops.truth_check`` (aggregates only: no hidden trait ever reaches the warehouse).
"""

from __future__ import annotations

import logging
import math
from datetime import date, timedelta
from pathlib import Path

import duckdb

from boomerang.config import Settings

log = logging.getLogger(__name__)

TWIN_DIR = "twin"  # inside the world folder: <world_dir>/twin/ (state) and <world_dir>/twin/landing/
Z_95 = 1.96  # as in fct_campaign_results


def twin_dir(settings: Settings) -> Path:
    """Where the twin world lives: ``<world_dir>/twin/``, its landing files in ``landing/`` inside."""
    return settings.world_dir / TWIN_DIR


def advance_twin(settings: Settings, as_of: date) -> Path:
    """Advance the twin world (same seed, size and start; no outbox) up to ``as_of``; its landing folder."""
    from boomerang.world.simulator import advance_world

    folder = twin_dir(settings)
    landing = folder / "landing"
    advance_world(
        folder,
        landing,
        as_of,
        customers=settings.world_customers,
        seed=settings.world_seed,
        start=settings.world_start,
        file_format=settings.world_file_format,
        outbox_dir=None,  # never hears of a grant: the world as it would have been
    )
    return landing


def truth_check(settings: Settings, as_of: date, retention_window_days: int | None = None) -> dict | None:
    """Compare the measured incremental retention with the simulator's truth, as of ``as_of``.

    Advances the twin world to ``as_of``, then, for the campaign ``settings.policy.campaign_id``,
    pools every decision (pre-grant: treatment, holdout: control) whose retention window ended
    before ``as_of``, and writes one row to ``ops.truth_check`` (replacing that date's row). Returns
    the row as a dict, or None when the simulated world is off (there is no truth to check).
    ``retention_window_days`` defaults to the setting (``BOOMERANG_RETENTION_WINDOW_DAYS``), which
    the dbt var of the same name follows, so the figures match the mart's.
    """
    if retention_window_days is None:
        retention_window_days = settings.retention_window_days
    if not settings.world_enabled:
        log.info("Simulated world is off (BOOMERANG_WORLD=off): no truth to check the measurement against")
        return None
    from boomerang.warehouse.db import connect
    from boomerang.warehouse.schema import ensure_schemas

    landing = advance_twin(settings, as_of)
    campaign_id = settings.policy.campaign_id
    last_cohort = as_of - timedelta(days=retention_window_days)
    with connect(settings.warehouse_path) as con:
        ensure_schemas(con)
        rows = _outcomes(
            con, landing, settings.world_file_format, campaign_id, last_cohort, retention_window_days
        )
        result = {
            "as_of_date": as_of,
            "campaign_id": campaign_id,
            "cohort": "all",
            "retention_window_days": retention_window_days,
            **summarise(rows),
        }
        con.execute("begin transaction")
        try:
            con.execute(
                "delete from ops.truth_check where as_of_date = ? and campaign_id = ? and cohort = 'all'",
                [as_of, campaign_id],
            )
            columns = list(result)
            con.execute(
                f"insert into ops.truth_check ({', '.join(columns)}) values ({', '.join('?' for _ in columns)})",
                [result[name] for name in columns],
            )
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    log.info(
        "Truth check %s: measured incremental retention %s [%s, %s], true %s, covered: %s",
        as_of,
        _fmt(result["measured_incremental_retention"]),
        _fmt(result["measured_ci_low"]),
        _fmt(result["measured_ci_high"]),
        _fmt(result["true_incremental_retention"]),
        result["is_covered"],
    )
    return result


def _outcomes(
    con: duckdb.DuckDBPyConnection,
    twin_landing: Path,
    file_format: str,
    campaign_id: str,
    last_cohort: date,
    window_days: int,
) -> list[tuple]:
    """(arm, cohort date, real retained, real revenue, twin retained, twin revenue) per decision."""
    pattern = str(twin_landing / "transactions" / f"*.{file_format}")
    reader = (
        f"read_parquet('{pattern}')" if file_format == "parquet" else f"read_csv('{pattern}', header = true)"
    )
    has_twin_files = any((twin_landing / "transactions").glob(f"*.{file_format}"))
    twin_source = (
        f"select customer_id, kind, cast(amount as double) as amount, "
        f"cast(cast(occurred_at as timestamptz) as timestamp) as occurred_at from {reader}"
        if has_twin_files
        else "select null::varchar as customer_id, null::varchar as kind, null::double as amount, "
        "null::timestamp as occurred_at where false"
    )
    return con.execute(
        f"""
        with
        decisions as (
            select
                entry_key,
                customer_id,
                case kind when 'pregrant' then 'treatment' else 'control' end as arm,
                as_of_date as cohort_date,
                cast(as_of_date as timestamp) as window_starts_at,
                cast(as_of_date as timestamp) + to_days({int(window_days)}) as window_ends_at
            from ledger.entries
            where kind in ('pregrant', 'holdout') and campaign_id = ? and as_of_date <= ?
        ),
        real_purchases as (
            select customer_id, cast(amount as double) as amount, cast(occurred_at as timestamp) as occurred_at
            from raw.transactions
            where kind = 'purchase'
        ),
        twin_purchases as (
            select customer_id, amount, occurred_at from ({twin_source}) where kind = 'purchase'
        ),
        real_outcomes as (
            select decisions.entry_key, count(real_purchases.customer_id) as purchases,
                coalesce(sum(real_purchases.amount), 0) as revenue
            from decisions
            left join real_purchases
                on decisions.customer_id = real_purchases.customer_id
                and real_purchases.occurred_at >= decisions.window_starts_at
                and real_purchases.occurred_at < decisions.window_ends_at
            group by decisions.entry_key
        ),
        twin_outcomes as (
            select decisions.entry_key, count(twin_purchases.customer_id) as purchases,
                coalesce(sum(twin_purchases.amount), 0) as revenue
            from decisions
            left join twin_purchases
                on decisions.customer_id = twin_purchases.customer_id
                and twin_purchases.occurred_at >= decisions.window_starts_at
                and twin_purchases.occurred_at < decisions.window_ends_at
            group by decisions.entry_key
        )
        select
            decisions.arm,
            decisions.cohort_date,
            real_outcomes.purchases > 0,
            real_outcomes.revenue,
            twin_outcomes.purchases > 0,
            twin_outcomes.revenue
        from decisions
        inner join real_outcomes using (entry_key)
        inner join twin_outcomes using (entry_key)
        order by decisions.entry_key
        """,
        [campaign_id, last_cohort],
    ).fetchall()


def summarise(rows: list[tuple]) -> dict:
    """Measured (treated - control) and true (real - twin over the treated) effects of ``rows``.

    Each row: (arm, cohort date, real retained, real revenue, twin retained, twin revenue).
    """
    treated = [row for row in rows if row[0] == "treatment"]
    control = [row for row in rows if row[0] == "control"]
    real_t = [float(row[2]) for row in treated]
    real_c = [float(row[2]) for row in control]
    revenue_t = [float(row[3]) for row in treated]
    revenue_c = [float(row[3]) for row in control]
    twin_t = [float(row[4]) for row in treated]
    twin_revenue_t = [float(row[5]) for row in treated]
    retention, retention_low, retention_high = difference_of_proportions(real_t, real_c)
    revenue, revenue_low, revenue_high = difference_of_means(revenue_t, revenue_c)
    true_retention = _mean([real - twin for real, twin in zip(real_t, twin_t, strict=True)])
    true_revenue = _mean([real - twin for real, twin in zip(revenue_t, twin_revenue_t, strict=True)])
    return {
        "cohorts": len({row[1] for row in rows}),
        "treated_customers": len(treated),
        "control_customers": len(control),
        "treated_retention_rate": _mean(real_t),
        "control_retention_rate": _mean(real_c),
        "treated_counterfactual_retention_rate": _mean(twin_t),
        "measured_incremental_retention": retention,
        "measured_ci_low": retention_low,
        "measured_ci_high": retention_high,
        "true_incremental_retention": true_retention,
        "measurement_error": None
        if retention is None or true_retention is None
        else retention - true_retention,
        "is_covered": _covers(retention_low, retention_high, true_retention),
        "measured_incremental_revenue_per_customer": revenue,
        "measured_revenue_ci_low": revenue_low,
        "measured_revenue_ci_high": revenue_high,
        "true_incremental_revenue_per_customer": true_revenue,
        "is_revenue_covered": _covers(revenue_low, revenue_high, true_revenue),
        "control_twin_agreement": _mean([float(row[2] == row[4]) for row in control]),
    }


def difference_of_proportions(
    treated: list[float], control: list[float]
) -> tuple[float | None, float | None, float | None]:
    """Treated rate - control rate and its 95% interval (normal approximation, unpooled variance)."""
    if not treated or not control:
        return None, None, None
    p_t, p_c = _mean(treated), _mean(control)
    assert p_t is not None and p_c is not None
    se = math.sqrt(p_t * (1 - p_t) / len(treated) + p_c * (1 - p_c) / len(control))
    return p_t - p_c, p_t - p_c - Z_95 * se, p_t - p_c + Z_95 * se


def difference_of_means(
    treated: list[float], control: list[float]
) -> tuple[float | None, float | None, float | None]:
    """Treated mean - control mean and its 95% interval (Welch's standard error)."""
    if len(treated) < 2 or len(control) < 2:
        return None, None, None
    m_t, m_c = _mean(treated), _mean(control)
    assert m_t is not None and m_c is not None
    var_t = sum((x - m_t) ** 2 for x in treated) / (len(treated) - 1)
    var_c = sum((x - m_c) ** 2 for x in control) / (len(control) - 1)
    se = math.sqrt(var_t / len(treated) + var_c / len(control))
    return m_t - m_c, m_t - m_c - Z_95 * se, m_t - m_c + Z_95 * se


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _covers(low: float | None, high: float | None, value: float | None) -> bool | None:
    if low is None or high is None or value is None:
        return None
    return low <= value <= high


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"

"""The truth check: does the holdout measurement find the effect the grants really had?

Only in the simulated world. The world draws its main random numbers from ``(seed, day)`` and the
grant reactions from a stream of their own, so a *twin* world advanced with the same seed, size and
start but no outbox is the same world without any grant: the counterfactual of every treated
customer, drawn with the same random numbers wherever the grants did not change what happened.
(Once a grant changes who buys on a day, the rest of that day's draws - basket sizes, complaints -
shift; the next day starts in step again. The twin is still an honest draw of the world without
grants, only not a perfectly coupled one.)

The **measured** effect is the mart's own: ``marts.fct_campaign_results``' overall rows of cohort
'all' (treated minus control over every decision whose retention window is complete) and of each
complete cohort, with their 95% intervals (the headline, regression-adjusted ones), read as the run
built them. This module keeps only the twin-world side: for each of those decisions
(``marts.fct_campaign_outcomes``: its window and real outcome) the outcome in the twin's landing
files, and from them the **true** incremental retention, the mean of real minus counterfactual over
the treated (the effect on the treated, ATT), for 'all' and for each cohort. The rows go to
``ops.truth_check`` (aggregates only: no hidden trait ever reaches the warehouse).

Over many cohorts, the cohort rows say whether the intervals are honest: a 95% interval should
cover the true effect of its own decisions about 95% of the time. :func:`coverage` counts it, from
rows of ``ops.truth_check`` (:func:`cohort_rows` reads them), for this check's log, the demo and
the policy evaluation alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path

import duckdb

from boomerang.config import Settings
from boomerang.warehouse.db import table_exists

log = logging.getLogger(__name__)

TWIN_DIR = "twin"  # inside the world folder: <world_dir>/twin/ (state) and <world_dir>/twin/landing/


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


def truth_check(settings: Settings, as_of: date) -> dict | None:
    """Compare the mart's measured incremental retention with the simulator's truth, as of ``as_of``.

    Advances the twin world to ``as_of``, reads the measurement of the campaign
    ``settings.policy.campaign_id`` from the marts built for ``as_of`` (cohort 'all': every decision
    whose retention window ended by then; and each of those cohorts alone), computes the true effect
    of the same decisions from the twin, and writes a row per cohort and one for 'all' to
    ``ops.truth_check`` (replacing that date's rows). Returns the 'all' row as a dict, or None when
    the simulated world is off (there is no truth to check).
    """
    if not settings.world_enabled:
        log.info("Simulated world is off (BOOMERANG_WORLD=off): no truth to check the measurement against")
        return None
    from boomerang.warehouse.db import connect
    from boomerang.warehouse.schema import ensure_schemas

    landing = advance_twin(settings, as_of)
    campaign_id = settings.policy.campaign_id
    with connect(settings.warehouse_path) as con:
        ensure_schemas(con)
        measured = measured_effects(con, campaign_id, as_of)
        rows = _outcomes(con, landing, settings.world_file_format, campaign_id)
        window_days = (
            measured["all"]["retention_window_days"] if "all" in measured else settings.retention_window_days
        )
        checked = [
            {
                "as_of_date": as_of,
                "campaign_id": campaign_id,
                "cohort": cohort,
                "retention_window_days": window_days,
                **summarise(
                    measured.get(cohort), [row for row in rows if cohort == "all" or _day(row[1]) == cohort]
                ),
            }
            for cohort in ["all", *sorted({_day(row[1]) for row in rows})]
        ]
        result = checked[0]
        con.execute("begin transaction")
        try:
            con.execute(
                "delete from ops.truth_check where as_of_date = ? and campaign_id = ?", [as_of, campaign_id]
            )
            columns = list(result)
            con.executemany(
                f"insert into ops.truth_check ({', '.join(columns)}) values ({', '.join('?' for _ in columns)})",
                [[row[name] for name in columns] for row in checked],
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
    covered = coverage(checked)
    log.info(
        "Truth check %s: the 95%% intervals of %d of %d complete cohorts cover their true effect (%s)",
        as_of,
        covered["covered"],
        covered["cohorts"],
        "n/a" if covered["coverage"] is None else f"{covered['coverage']:.0%}",
    )
    return result


def coverage(rows: Iterable[Mapping]) -> dict:
    """How often the measured 95% intervals cover the true effect, over cohort rows of
    ``ops.truth_check`` (as dicts; pooled rows, cohort 'all' or 'period', are left out, and so are
    cohorts that could not conclude: too small, no interval).

    Returns ``cohorts`` (intervals checked), ``covered`` (of those, covering the true incremental
    retention), ``coverage`` (covered / cohorts, None without any), and the same for revenue per
    customer (``revenue_cohorts``, ``revenue_covered``, ``revenue_coverage``). Honest intervals cover
    about 95% of the time; over n cohorts, within about 0.44 / (square root of n) of it.
    """
    cohorts = [row for row in rows if row.get("cohort") not in ("all", "period")]
    retention = [bool(row["is_covered"]) for row in cohorts if row.get("is_covered") is not None]
    revenue = [
        bool(row["is_revenue_covered"]) for row in cohorts if row.get("is_revenue_covered") is not None
    ]
    return {
        "cohorts": len(retention),
        "covered": sum(retention),
        "coverage": sum(retention) / len(retention) if retention else None,
        "revenue_cohorts": len(revenue),
        "revenue_covered": sum(revenue),
        "revenue_coverage": sum(revenue) / len(revenue) if revenue else None,
    }


def cohort_rows(con: duckdb.DuckDBPyConnection, campaign_id: str | None = None) -> list[dict]:
    """Every cohort's latest row of ``ops.truth_check`` (the one checked at the latest as-of date,
    when its window long closed and its figures stopped moving), as dicts for :func:`coverage`."""
    if not table_exists(con, "ops", "truth_check"):
        return []
    cursor = con.execute(
        "select * from ops.truth_check where cohort not in ('all', 'period') "
        "and (? is null or campaign_id = ?) "
        "qualify row_number() over (partition by campaign_id, cohort order by as_of_date desc) = 1 "
        "order by campaign_id, cohort",
        [campaign_id, campaign_id],
    )
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _day(value: object) -> str:
    """A decision date as the mart's cohort label (YYYY-MM-DD)."""
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


# The mart's columns the truth check reports as the measurement, by the name ops.truth_check gives them.
MEASURED_COLUMNS = {
    "treated_customers": "treated_customers",
    "control_customers": "control_customers",
    "treated_retention_rate": "treated_retention_rate",
    "control_retention_rate": "control_retention_rate",
    "measured_incremental_retention": "incremental_retention",
    "measured_ci_low": "incremental_retention_ci_low",
    "measured_ci_high": "incremental_retention_ci_high",
    "measured_incremental_revenue_per_customer": "incremental_revenue_per_customer",
    "measured_revenue_ci_low": "incremental_revenue_per_customer_ci_low",
    "measured_revenue_ci_high": "incremental_revenue_per_customer_ci_high",
}


def measured_effect(con: duckdb.DuckDBPyConnection, campaign_id: str, as_of: date) -> dict | None:
    """The campaign's overall row of cohort 'all' in ``marts.fct_campaign_results``, as of ``as_of``,
    under the names of ``ops.truth_check`` (plus ``retention_window_days``); None when the campaign
    decided nothing yet. Raises when the marts were not built for ``as_of``."""
    return measured_effects(con, campaign_id, as_of).get("all")


def measured_effects(con: duckdb.DuckDBPyConnection, campaign_id: str, as_of: date) -> dict[str, dict]:
    """The campaign's overall rows in ``marts.fct_campaign_results`` as of ``as_of`` by cohort ('all'
    and each decision date, YYYY-MM-DD; not 'period'), under the names of ``ops.truth_check`` (plus
    ``retention_window_days``); empty when the campaign decided nothing yet. Raises when the marts
    were not built for ``as_of``."""
    if not table_exists(con, "marts", "fct_campaign_results"):
        raise RuntimeError(
            "marts.fct_campaign_results does not exist: the truth check reads the campaign's measurement "
            "from it. Build the marts first (the daily run's dbt steps, or boomerang dbt build)."
        )
    columns = ["cohort", "as_of_date", "retention_window_days", *MEASURED_COLUMNS.values()]
    rows = con.execute(
        f"select {', '.join(columns)} from marts.fct_campaign_results "
        "where campaign_id = ? and cohort <> 'period' and dimension = 'overall'",
        [campaign_id],
    ).fetchall()
    found = {}
    for values in rows:
        row = dict(zip(columns, values, strict=True))
        if row["as_of_date"] != as_of:
            raise RuntimeError(
                f"marts.fct_campaign_results was built for {row['as_of_date']}, not {as_of}: rebuild the "
                f"marts for {as_of} (the daily run's build_ledger_marts step) before its truth check."
            )
        found[row["cohort"]] = {
            "retention_window_days": row["retention_window_days"],
            **{name: row[column] for name, column in MEASURED_COLUMNS.items()},
        }
    return found


def _outcomes(
    con: duckdb.DuckDBPyConnection, twin_landing: Path, file_format: str, campaign_id: str
) -> list[tuple]:
    """(arm, decision date, real retained, real revenue, twin retained, twin revenue) per decision
    whose window is complete: the real side and the window as ``marts.fct_campaign_outcomes`` has
    them, the twin side from the twin world's landing files over the same window."""
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
                decision_id,
                customer_id,
                arm,
                decision_date,
                is_retained,
                revenue,
                cast(decision_date as timestamp) as window_starts_at,
                cast(window_end_date as timestamp) as window_ends_at
            from marts.fct_campaign_outcomes
            where campaign_id = ? and is_window_complete
        ),
        twin_purchases as (
            select customer_id, amount, occurred_at from ({twin_source}) where kind = 'purchase'
        ),
        twin_outcomes as (
            select decisions.decision_id, count(twin_purchases.customer_id) as purchases,
                coalesce(sum(twin_purchases.amount), 0) as revenue
            from decisions
            left join twin_purchases
                on decisions.customer_id = twin_purchases.customer_id
                and twin_purchases.occurred_at >= decisions.window_starts_at
                and twin_purchases.occurred_at < decisions.window_ends_at
            group by decisions.decision_id
        )
        select
            decisions.arm,
            decisions.decision_date,
            decisions.is_retained,
            decisions.revenue,
            twin_outcomes.purchases > 0,
            twin_outcomes.revenue
        from decisions
        inner join twin_outcomes using (decision_id)
        order by decisions.decision_id
        """,
        [campaign_id],
    ).fetchall()


def summarise(measured: dict | None, rows: list[tuple]) -> dict:
    """The mart's measurement (``measured``, see :func:`measured_effect`) against the true effect of
    ``rows`` (real - twin over the treated).

    Each row: (arm, decision date, real retained, real revenue, twin retained, twin revenue).
    """
    treated = [row for row in rows if row[0] == "treatment"]
    control = [row for row in rows if row[0] == "control"]
    real_t = [float(row[2]) for row in treated]
    twin_t = [float(row[4]) for row in treated]
    true_retention = _mean([real - twin for real, twin in zip(real_t, twin_t, strict=True)])
    true_revenue = _mean([float(row[3]) - float(row[5]) for row in treated])
    figures = {name: (measured or {}).get(name) for name in MEASURED_COLUMNS}
    figures["treated_customers"] = figures["treated_customers"] or 0
    figures["control_customers"] = figures["control_customers"] or 0
    retention = figures["measured_incremental_retention"]
    return {
        "cohorts": len({row[1] for row in rows}),
        "treated_customers": figures["treated_customers"],
        "control_customers": figures["control_customers"],
        "treated_retention_rate": figures["treated_retention_rate"],
        "control_retention_rate": figures["control_retention_rate"],
        "treated_counterfactual_retention_rate": _mean(twin_t),
        "measured_incremental_retention": retention,
        "measured_ci_low": figures["measured_ci_low"],
        "measured_ci_high": figures["measured_ci_high"],
        "true_incremental_retention": true_retention,
        "measurement_error": None
        if retention is None or true_retention is None
        else retention - true_retention,
        "is_covered": _covers(figures["measured_ci_low"], figures["measured_ci_high"], true_retention),
        "measured_incremental_revenue_per_customer": figures["measured_incremental_revenue_per_customer"],
        "measured_revenue_ci_low": figures["measured_revenue_ci_low"],
        "measured_revenue_ci_high": figures["measured_revenue_ci_high"],
        "true_incremental_revenue_per_customer": true_revenue,
        "is_revenue_covered": _covers(
            figures["measured_revenue_ci_low"], figures["measured_revenue_ci_high"], true_revenue
        ),
        "control_twin_agreement": _mean([float(row[2] == row[4]) for row in control]),
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _covers(low: float | None, high: float | None, value: float | None) -> bool | None:
    if low is None or high is None or value is None:
        return None
    return low <= value <= high


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"

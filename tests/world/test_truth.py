"""The truth check: in a simulated world with grants, the holdout measurement finds the true effect.

Two cohorts of lapsing customers (active, but no purchase for three weeks) are decided by hand,
a random half of each granted (ledger entries and the outbox file, as the rewards step writes them)
and the rest held out; the world reads the outbox and reacts; the warehouse is loaded and built; the
truth check compares the mart's measurement with the twin world that never heard of the grants.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import duckdb
import numpy as np
import pytest
from conftest import make_settings, query

from boomerang import pipeline
from boomerang.rewards import ledger, outbox
from boomerang.warehouse.db import connect
from boomerang.warehouse.schema import ensure_schemas
from boomerang.world.simulator import advance_world
from boomerang.world.truth import MEASURED_COLUMNS, cohort_rows, coverage, summarise, truth_check

START = date(2025, 1, 1)
CUSTOMERS = 10_000
COHORTS = (START + timedelta(days=45), START + timedelta(days=60))
AS_OF = COHORTS[-1] + timedelta(days=30)  # both retention windows are complete
EXPIRY_DAYS = 14


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def _lapsing(landing, day: date, exclude: set[str]) -> list[str]:
    """Customers who bought in the 90 days before ``day`` but not in the last 21: the ones at risk."""
    rows = duckdb.sql(
        f"""
        select customer_id
        from read_parquet('{landing}/transactions/*.parquet')
        where kind = 'purchase' and occurred_at < timestamptz '{day} 00:00:00+00'
        group by customer_id
        having max(occurred_at) >= timestamptz '{day - timedelta(days=90)} 00:00:00+00'
            and max(occurred_at) < timestamptz '{day - timedelta(days=21)} 00:00:00+00'
        order by customer_id
        """
    ).fetchall()
    return [customer for (customer,) in rows if customer not in exclude]


def _decisions(campaign: str, day: date, treated: list[str], control: list[str]) -> list[ledger.Entry]:
    common = {
        "campaign_id": campaign,
        "policy_version": "test-policy",
        "as_of_date": day,
        "grant_rule": "promotional",
    }
    entries = [
        ledger.Entry(
            entry_key=ledger.pregrant_key(campaign, customer, day),
            kind="pregrant",
            customer_id=customer,
            lot_id=ledger.pregrant_key(campaign, customer, day),
            points=500,
            effective_at=_midnight(day),
            expires_at=_midnight(day + timedelta(days=EXPIRY_DAYS)),
            arm="treatment",
            churn_probability=0.4,
            channel="email",
            message="500 miles on us",
            **common,
        )
        for customer in treated
    ]
    entries += [
        ledger.Entry(
            entry_key=ledger.holdout_key(campaign, customer, day),
            kind="holdout",
            customer_id=customer,
            points=0,
            effective_at=_midnight(day),
            arm="control",
            churn_probability=0.4,
            **common,
        )
        for customer in control
    ]
    return entries


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """The world with two hand-decided cohorts, loaded and built as of AS_OF, and its truth check."""
    settings = make_settings(
        tmp_path_factory.mktemp("truth"),
        BOOMERANG_WORLD_CUSTOMERS=str(CUSTOMERS),
        BOOMERANG_RETENTION_WINDOW_DAYS="30",
    )
    campaign_id = settings.policy.campaign_id
    rng = np.random.default_rng(2025)
    decided: set[str] = set()
    for day in COHORTS:
        advance_world(
            settings.world_dir,
            settings.landing_dir,
            day,
            customers=CUSTOMERS,
            seed=settings.world_seed,
            start=START,
            outbox_dir=settings.outbox_dir,
        )
        group = _lapsing(settings.landing_dir, day, decided)
        decided |= set(group)
        treated_mask = rng.random(len(group)) < 0.5
        treated = [customer for customer, t in zip(group, treated_mask, strict=True) if t]
        control = [customer for customer, t in zip(group, treated_mask, strict=True) if not t]
        with connect(settings.warehouse_path) as con:  # as the rewards step does: ledger, then the file
            ensure_schemas(con)
            ledger.record(con, _decisions(campaign_id, day, treated, control), run_date=day)
            outbox.write_outbox_file(con, settings.outbox_dir, day)
    advance_world(
        settings.world_dir,
        settings.landing_dir,
        AS_OF,
        customers=CUSTOMERS,
        seed=settings.world_seed,
        start=START,
        outbox_dir=settings.outbox_dir,
    )
    pipeline.load_landing(settings, AS_OF)
    pipeline.dbt_build(settings, AS_OF)
    pipeline.build_ledger_marts(settings, AS_OF)  # the campaign marts, as the daily run builds them
    return settings, truth_check(settings, AS_OF)


@pytest.mark.slow
def test_the_measured_interval_covers_the_true_effect(campaign):
    settings, result = campaign
    assert result["cohorts"] == 2
    assert result["treated_customers"] > 800 and result["control_customers"] > 800
    assert result["true_incremental_retention"] > 0.01, "the grants should keep some customers"
    assert result["measured_ci_low"] <= result["true_incremental_retention"] <= result["measured_ci_high"]
    assert result["is_covered"] is True
    assert result["measured_ci_high"] - result["measured_ci_low"] < 0.12  # an informative interval
    # The control customers never got anything: they behave alike in the twin (up to the few whose
    # day's draws shifted after a treated customer bought).
    assert result["control_twin_agreement"] > 0.97


@pytest.mark.slow
def test_ignoring_the_holdout_would_miss_the_truth(campaign):
    """Treated against the customers nobody decided on (no holdout): selection bias, not the effect."""
    settings, result = campaign
    [(others_rate,)] = query(
        settings,
        """
        with windows as (
            select distinct as_of_date as decision_date from ledger.entries where kind = 'pregrant'
        ),
        undecided as (
            select customers.customer_id, windows.decision_date
            from (select distinct customer_id from raw.transactions) as customers
            cross join windows
            where customers.customer_id not in (select customer_id from ledger.entries)
        )
        select avg(case when exists (
            select 1 from raw.transactions
            where transactions.customer_id = undecided.customer_id and kind = 'purchase'
                and occurred_at >= undecided.decision_date
                and occurred_at < undecided.decision_date + interval 30 day
        ) then 1.0 else 0.0 end)
        from undecided
        """,
    )
    naive = result["treated_retention_rate"] - float(others_rate)
    assert not abs(naive - result["true_incremental_retention"]) < 0.05
    assert not (result["measured_ci_low"] <= naive <= result["measured_ci_high"])


@pytest.mark.slow
def test_the_truth_checks_measured_figures_are_the_marts_row(campaign):
    """The measurement is the mart's own (cohort 'all', overall), figure for figure: nothing re-computed."""
    settings, result = campaign
    columns = list(MEASURED_COLUMNS.values())
    [mart] = query(
        settings,
        f"select retention_window_days, {', '.join(columns)} from marts.fct_campaign_results "
        "where cohort = 'all' and dimension = 'overall' and campaign_id = ?",
        [settings.policy.campaign_id],
    )
    assert mart[0] == result["retention_window_days"] == 30
    assert dict(zip(MEASURED_COLUMNS, mart[1:], strict=True)) == {
        name: result[name] for name in MEASURED_COLUMNS
    }
    assert set(MEASURED_COLUMNS) >= {
        "treated_customers",
        "control_customers",
        "measured_incremental_retention",
        "measured_ci_low",
        "measured_ci_high",
        "measured_incremental_revenue_per_customer",
        "measured_revenue_ci_low",
        "measured_revenue_ci_high",
    }
    # the twin side covers the same decisions: the mart's pooled cohorts
    [(cohorts,)] = query(
        settings,
        "select count(distinct decision_date) from marts.fct_campaign_outcomes "
        "where campaign_id = ? and is_window_complete",
        [settings.policy.campaign_id],
    )
    assert result["cohorts"] == cohorts == 2
    # written once per as-of date: a re-run replaces the row
    assert truth_check(settings, AS_OF) == result
    rows = query(settings, "select as_of_date, cohort, cohorts from ops.truth_check order by cohort")
    assert rows == [(AS_OF, str(COHORTS[0]), 1), (AS_OF, str(COHORTS[1]), 1), (AS_OF, "all", 2)]
    marts_columns = {
        name
        for (name,) in query(
            settings, "select column_name from information_schema.columns where table_schema = 'marts'"
        )
    }
    assert not {name for name in marts_columns if "persuad" in name or "truth" in name}


@pytest.mark.slow
def test_each_cohort_is_checked_against_its_own_truth(campaign):
    """Beside 'all', a row per complete cohort: the mart's measurement of that cohort (its own row of
    marts.fct_campaign_results) against the true effect on that cohort's treated; the cohorts'
    true effects, weighted by their treated, make up the pooled one; coverage counts the cohorts."""
    settings, result = campaign
    columns = ["cohort", *MEASURED_COLUMNS]
    checked = {
        row[0]: dict(zip(columns, row, strict=True))
        for row in query(settings, f"select {', '.join(columns)} from ops.truth_check where cohort <> 'all'")
    }
    assert set(checked) == {str(day) for day in COHORTS}
    for cohort, row in checked.items():
        [mart] = query(
            settings,
            f"select {', '.join(MEASURED_COLUMNS.values())} from marts.fct_campaign_results "
            "where cohort = ? and dimension = 'overall' and campaign_id = ?",
            [cohort, settings.policy.campaign_id],
        )
        assert {name: row[name] for name in MEASURED_COLUMNS} == dict(
            zip(MEASURED_COLUMNS, mart, strict=True)
        )
    truths = query(
        settings,
        "select treated_customers, true_incremental_retention from ops.truth_check where cohort <> 'all'",
    )
    pooled = sum(n * truth for n, truth in truths) / sum(n for n, _ in truths)
    assert pooled == pytest.approx(result["true_incremental_retention"])
    with connect(settings.warehouse_path, read_only=True) as con:
        rows = cohort_rows(con, settings.policy.campaign_id)
    assert [row["cohort"] for row in rows] == [str(day) for day in COHORTS]
    found = coverage(rows)
    assert found["cohorts"] == 2 and 0 <= found["covered"] <= 2
    assert found["coverage"] == found["covered"] / 2


def test_coverage_by_hand():
    """Coverage counts the cohorts whose interval could conclude, never the pooled rows."""
    rows = [
        {"cohort": "all", "is_covered": False, "is_revenue_covered": False},
        {"cohort": "period", "is_covered": False, "is_revenue_covered": None},
        {"cohort": "2025-03-01", "is_covered": True, "is_revenue_covered": True},
        {"cohort": "2025-03-02", "is_covered": True, "is_revenue_covered": False},
        {"cohort": "2025-03-03", "is_covered": False, "is_revenue_covered": True},
        {"cohort": "2025-03-04", "is_covered": True, "is_revenue_covered": True},
        {"cohort": "2025-03-05", "is_covered": None, "is_revenue_covered": None},  # too small
    ]
    assert coverage(rows) == {
        "cohorts": 4,
        "covered": 3,
        "coverage": 0.75,
        "revenue_cohorts": 4,
        "revenue_covered": 3,
        "revenue_coverage": 0.75,
    }
    assert coverage([])["coverage"] is None


def test_nothing_to_check_when_the_world_is_off(tmp_path):
    settings = make_settings(tmp_path, BOOMERANG_WORLD="off")
    assert truth_check(settings, AS_OF) is None
    assert not settings.warehouse_path.exists() and not (settings.world_dir / "twin").exists()


def test_the_summary_by_hand():
    """The measurement is passed through as the mart gave it; the truth is real - twin over the treated."""
    measured = {
        "treated_customers": 4,
        "control_customers": 3,
        "treated_retention_rate": 0.75,
        "control_retention_rate": 0.333333,
        "measured_incremental_retention": 0.416667,
        "measured_ci_low": -0.2,
        "measured_ci_high": 0.2,
        "measured_incremental_revenue_per_customer": 58.33,
        "measured_revenue_ci_low": 10.0,
        "measured_revenue_ci_high": 100.0,
    }
    # (arm, decision date, real retained, real revenue, twin retained, twin revenue)
    rows = [
        ("treatment", COHORTS[0], True, 100.0, False, 0.0),
        ("treatment", COHORTS[0], True, 100.0, True, 80.0),
        ("treatment", COHORTS[0], True, 100.0, True, 100.0),
        ("treatment", COHORTS[1], False, 0.0, False, 0.0),
        ("control", COHORTS[0], True, 50.0, True, 50.0),
        ("control", COHORTS[1], False, 0.0, False, 0.0),
        ("control", COHORTS[1], False, 0.0, True, 20.0),
    ]
    result = summarise(measured, rows)
    assert {name: result[name] for name in measured} == measured
    assert result["cohorts"] == 2
    assert result["true_incremental_retention"] == pytest.approx(1 / 4)  # one of four kept by the grant
    assert result["treated_counterfactual_retention_rate"] == pytest.approx(2 / 4)
    assert result["measurement_error"] == pytest.approx(0.416667 - 1 / 4)
    assert result["is_covered"] is False  # 0.25 lies outside [-0.2, 0.2]
    assert result["true_incremental_revenue_per_customer"] == pytest.approx((100 + 20 + 0 + 0) / 4)
    assert result["is_revenue_covered"] is True
    assert result["control_twin_agreement"] == pytest.approx(2 / 3)
    # a campaign with no decision yet: no measurement, nothing to compare
    empty = summarise(None, [])
    assert empty["treated_customers"] == 0
    assert empty["measured_incremental_retention"] is None and empty["is_covered"] is None

"""Campaign results on a warehouse built by hand: known answers, end to end (one dbt build).

As of 2025-04-15, 30-day retention window:
- cohort 2025-03-01: 40 treated (30 buy 50.00 on 03-10; 10 of them redeem 200 of their 500 miles)
  against 40 control (20 buy 40.00): raw retention 0.75 - 0.50 = 0.25, se = sqrt(0.75*0.25/40 +
  0.5*0.5/40) = 0.104583, interval [0.045018, 0.454982]: incremental. C031, treated, bought just
  before the window and at its very end: not retained. Everyone bought three times in the 90 days
  before (C031 four times): the pre-period covariate the adjusted (headline) figures net out.
- cohort 2025-04-01: 10 against 10, window open until 05-01: too young (C081's purchase on the
  as-of date itself does not count).
- cohort 2025-04-15 (the as-of date): 5 treated, too young.
Segments come from the decision records: cohort A's treated were 'at_risk' when decided, everyone
else 'occasional'. Odd customers had been with us 100 days at the decision, even ones 800; treated
odd ones were told by email, even ones by SMS; every grant is 500 miles.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import make_settings, query, write_file

from boomerang import pipeline
from boomerang.rewards import ledger
from boomerang.warehouse.db import connect

pytestmark = pytest.mark.slow

AS_OF = date(2025, 4, 15)
CAMPAIGN = "test-campaign"
COHORT_A, COHORT_B = date(2025, 3, 1), date(2025, 4, 1)


def _customer(number: int) -> str:
    return f"C{number:03d}"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def _decision(number: int, day: date, arm: str) -> ledger.Entry:
    customer = _customer(number)
    common = {
        "customer_id": customer,
        "effective_at": _midnight(day),
        "campaign_id": CAMPAIGN,
        "policy_version": "test-policy",
        "as_of_date": day,
        "arm": arm,
        "grant_rule": "promotional",
        "churn_probability": 0.6,
        "model_version": "test-model",
        "segment": "at_risk" if (day == COHORT_A and arm == "treatment") else "occasional",
        "tenure_days": 100 if number % 2 else 800,
    }
    if arm == "control":
        return ledger.Entry(
            entry_key=ledger.holdout_key(CAMPAIGN, customer, day), kind="holdout", points=0, **common
        )
    key = ledger.pregrant_key(CAMPAIGN, customer, day)
    return ledger.Entry(
        entry_key=key,
        kind="pregrant",
        lot_id=key,
        points=500,
        expires_at=_midnight(day + timedelta(days=14)),
        channel="email" if number % 2 else "sms",
        message="500 miles",
        **common,
    )


# (customer number, decision date, arm)
DECISIONS = (
    [(n, COHORT_A, "treatment") for n in range(1, 41)]
    + [(n, COHORT_A, "control") for n in range(41, 81)]
    + [(n, COHORT_B, "treatment") for n in range(81, 91)]
    + [(n, COHORT_B, "control") for n in range(91, 101)]
    + [(n, AS_OF, "treatment") for n in range(101, 106)]
)


def _transactions() -> list[tuple[str, str, str, float]]:
    """(customer, when, kind, amount)."""
    rows = []
    for n in range(1, 106):  # some history for everyone, before any window
        for day in ("2025-01-05", "2025-01-20", "2025-02-05"):
            rows.append((_customer(n), f"{day}T12:00:00Z", "purchase", 30.0))
    rows += [(_customer(n), "2025-03-10T10:00:00Z", "purchase", 50.0) for n in range(1, 31)]
    rows += [(_customer(n), "2025-03-10T10:00:00Z", "purchase", 40.0) for n in range(41, 61)]
    rows += [
        (_customer(31), "2025-02-28T23:59:59Z", "purchase", 99.0),  # the day before the window
        (_customer(31), "2025-03-31T00:00:00Z", "purchase", 99.0),  # the window's end: out
        (_customer(41), "2025-03-12T10:00:00Z", "refund", 40.0),  # a refund is not a purchase
        (_customer(81), "2025-04-14T10:00:00Z", "purchase", 25.0),
    ]
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    settings = make_settings(
        tmp_path_factory.mktemp("campaign_results"),
        BOOMERANG_WORLD="off",
        BOOMERANG_RETENTION_WINDOW_DAYS="30",
    )
    landing = settings.landing_dir
    write_file(
        landing,
        "customers/customers.csv",
        "customer_id,signup_date,region,birth_year,marketing_consent,email,phone,updated_at\n"
        + "".join(
            f"{_customer(n)},2024-01-01,north,1980,true,c{n}@example.com,,2024-01-01T09:00:00Z\n"
            for n in range(1, 106)
        ),
    )
    write_file(
        landing,
        "transactions/transactions.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
        + "".join(
            f"T{number:05d},{customer},{at},{kind},{amount:.2f},store\n"
            for number, (customer, at, kind, amount) in enumerate(_transactions())
        ),
    )
    write_file(  # 10 treated customers of cohort A redeem 200 miles, inside their pre-grant's window
        landing,
        "mileage_events/redemptions.csv",
        "event_id,customer_id,occurred_at,kind,points,transaction_id\n"
        + "".join(f"M{n:03d},{_customer(n)},2025-03-10T10:01:00Z,redeem,200,\n" for n in range(1, 11)),
    )
    pipeline.load_landing(settings, AS_OF)
    with connect(settings.warehouse_path) as con:
        # A purchase on the as-of date (the gate defers such a file: as if re-running an earlier date
        # on a warehouse loaded later) must not count yet.
        con.execute(
            "insert into raw.transactions values ('T-LATE', ?, timestamptz '2025-04-15 10:00:00+00', "
            "'purchase', 35.00, 'store', 'test', 'test')",
            [_customer(81)],
        )
        for day in (COHORT_A, COHORT_B, AS_OF):
            entries = [_decision(n, d, arm) for n, d, arm in DECISIONS if d == day]
            ledger.record(con, entries, run_date=day)
        # the scores the decisions used, with the band the model stored (the campaign marts read it)
        con.executemany(
            "insert into ml.churn_scores values (?, ?, 0.6, 'high', 'test-model', null, null, null, now(), null, null, null)",
            [(_customer(n), day) for n, day, _ in DECISIONS],
        )
    pipeline.dbt_build(settings, AS_OF)
    pipeline.build_ledger_marts(settings, AS_OF)  # the ledger and campaign marts, as the daily run does
    return settings


def _results(settings, cohort: str, dimension: str = "overall") -> list[dict]:
    cursor_rows = query(
        settings,
        "select dimension_value, treated_customers, control_customers, treated_retention_rate, "
        "control_retention_rate, incremental_retention, incremental_retention_ci_low, "
        "incremental_retention_ci_high, incremental_customers_kept, incremental_revenue_per_customer, "
        "incremental_revenue_per_customer_ci_low, incremental_revenue_per_customer_ci_high, points_granted, "
        "points_redeemed, redeemed_cost, incremental_profit, incremental_profit_ci_low, "
        "incremental_profit_ci_high, verdict, is_window_complete from marts.fct_campaign_results "
        "where cohort = ? and dimension = ? order by dimension_value",
        [cohort, dimension],
    )
    names = [
        "value", "treated", "control", "treated_rate", "control_rate", "retention", "retention_low",
        "retention_high", "kept", "revenue", "revenue_low", "revenue_high", "granted", "redeemed", "cost",
        "profit", "profit_low", "profit_high", "verdict", "complete",
    ]  # fmt: skip
    return [dict(zip(names, row, strict=True)) for row in cursor_rows]


def _welch(treated: list[float], control: list[float]) -> tuple[float, float]:
    def mean_var(values):
        mean = sum(values) / len(values)
        return mean, sum((x - mean) ** 2 for x in values) / (len(values) - 1)

    (m_t, v_t), (m_c, v_c) = mean_var(treated), mean_var(control)
    return m_t - m_c, 1.96 * math.sqrt(v_t / len(treated) + v_c / len(control))


def _cuped(x_t, y_t, x_c, y_c, ddof: int) -> tuple[float, float]:
    """The regression-adjusted difference and its 95% half-width, the textbook way (numpy, not the
    mart's sums): theta the within-arm slope of y on x pooled over both arms, residuals y - theta x."""
    x_t, y_t, x_c, y_c = (np.asarray(v, dtype=float) for v in (x_t, y_t, x_c, y_c))

    def centred(a, b):
        return float(((a - a.mean()) * (b - b.mean())).sum())

    xx = centred(x_t, x_t) + centred(x_c, x_c)
    theta = (centred(x_t, y_t) + centred(x_c, y_c)) / xx if xx else 0.0
    r_t, r_c = y_t - theta * x_t, y_c - theta * x_c
    estimate = (y_t.mean() - y_c.mean()) - theta * (x_t.mean() - x_c.mean())
    se = math.sqrt(np.var(r_t, ddof=ddof) / len(r_t) + np.var(r_c, ddof=ddof) / len(r_c))
    return estimate, 1.96 * se


def _unadjusted(settings, cohort: str) -> dict:
    names = ["retention", "low", "high", "revenue", "revenue_low", "revenue_high", "profit"]
    [row] = query(
        settings,
        "select incremental_retention_unadjusted, incremental_retention_unadjusted_ci_low, "
        "incremental_retention_unadjusted_ci_high, incremental_revenue_per_customer_unadjusted, "
        "incremental_revenue_per_customer_unadjusted_ci_low, incremental_revenue_per_customer_unadjusted_ci_high, "
        "incremental_profit_unadjusted from marts.fct_campaign_results "
        "where cohort = ? and dimension = 'overall'",
        [cohort],
    )
    return dict(zip(names, row, strict=True))


def test_a_mature_cohort_is_measured_against_its_holdout(built):
    [row] = _results(built, "2025-03-01")
    assert (row["treated"], row["control"], row["treated_rate"], row["control_rate"]) == (40, 40, 0.75, 0.5)
    assert row["verdict"] == "incremental" and row["complete"] is True
    # the plain differences, kept beside the adjusted ones
    raw = _unadjusted(built, "2025-03-01")
    assert (raw["retention"], raw["low"], raw["high"]) == (0.25, 0.045018, 0.454982)
    revenue, half_width = _welch([50.0] * 30 + [0.0] * 10, [40.0] * 20 + [0.0] * 20)
    assert revenue == 17.5
    assert (raw["revenue"], raw["revenue_low"], raw["revenue_high"]) == pytest.approx(
        (17.5, 17.5 - half_width, 17.5 + half_width), abs=0.005
    )
    assert raw["profit"] == 17.5 * 0.3 * 40 - 20.0  # 190
    # the headline: adjusted for the 90 days before (3 purchases of 30.00 each; C031 one more of 99.00)
    x_t = [3] * 30 + [4] + [3] * 9  # C001-C030 retained, C031 not, C032-C040 not
    y_t = [1] * 30 + [0] * 10
    x_c, y_c = [3] * 40, [1] * 20 + [0] * 20
    retention, retention_half = _cuped(x_t, y_t, x_c, y_c, ddof=0)
    assert (row["retention"], row["retention_low"], row["retention_high"]) == pytest.approx(
        (retention, retention - retention_half, retention + retention_half), abs=1e-6
    )
    assert row["kept"] == pytest.approx(40 * retention, abs=0.01)
    v_t = [90.0] * 30 + [189.0] + [90.0] * 9
    r_t = [50.0] * 30 + [0.0] * 10
    v_c, r_c = [90.0] * 40, [40.0] * 20 + [0.0] * 20
    revenue, revenue_half = _cuped(v_t, r_t, v_c, r_c, ddof=1)
    assert (row["revenue"], row["revenue_low"], row["revenue_high"]) == pytest.approx(
        (revenue, revenue - revenue_half, revenue + revenue_half), abs=0.005
    )
    assert (row["granted"], row["redeemed"], row["cost"]) == (40 * 500, 10 * 200, 20.0)
    assert row["profit"] == pytest.approx(revenue * 0.3 * 40 - 20.0, abs=0.01)
    assert (row["profit_low"], row["profit_high"]) == pytest.approx(
        ((revenue - revenue_half) * 12 - 20, (revenue + revenue_half) * 12 - 20), abs=0.01
    )


def test_young_cohorts_wait_and_all_pools_only_the_mature_ones(built):
    [young] = _results(built, "2025-04-01")
    assert (young["treated"], young["control"], young["verdict"], young["complete"]) == (
        10,
        10,
        "too young",
        False,
    )
    assert young["treated_rate"] == 0.1  # C081 bought on 04-14; its purchase on the as-of date waits
    assert young["retention"] is None and young["profit"] is None
    [today] = _results(built, "2025-04-15")
    assert (today["treated"], today["control"], today["verdict"]) == (5, 0, "too young")
    [mature] = _results(built, "2025-03-01")
    [pooled] = _results(built, "all")
    assert pooled == {**mature, "value": "all"}
    [period] = _results(built, "period")  # no period chosen: every complete cohort, as 'all'
    assert period == pooled


def test_slices_add_up_to_the_cohort(built):
    for cohort in ("2025-03-01", "2025-04-01", "all"):
        [overall] = _results(built, cohort)
        for dimension in ("segment", "risk_band", "channel", "tenure_band", "grant_size_band"):
            rows = _results(built, cohort, dimension)
            assert sum(row["treated"] for row in rows) == overall["treated"]
            assert sum(row["control"] for row in rows) == overall["control"]
    assert [row["value"] for row in _results(built, "all", "risk_band")] == ["high"]


def test_the_segment_is_the_one_recorded_at_the_decision(built):
    """A grant moves a customer's segment later; the comparison uses the segment the decision kept."""
    rows = query(
        built,
        "select decision_date, arm, segment, count(*) from marts.fct_campaign_outcomes group by all order by all",
    )
    assert (date(2025, 3, 1), "treatment", "at_risk", 40) in rows
    assert {segment for _, _, segment, _ in rows} == {"at_risk", "occasional"}
    [control] = [r for r in _results(built, "2025-03-01", "segment") if r["value"] == "occasional"]
    assert control["treated"] == 0 and control["control"] == 40


def _slices(settings, dimension: str, cohort: str = "2025-03-01") -> dict[str, tuple[int, int]]:
    rows = query(
        settings,
        "select dimension_value, treated_customers, control_customers from marts.fct_campaign_results "
        "where cohort = ? and dimension = ?",
        [cohort, dimension],
    )
    return {value: (treated, control) for value, treated, control in rows}


def test_results_by_channel_tenure_and_grant_size(built):
    """The slices of the decision, the same for both arms: a holdout sends nothing, so its channel is
    the one the policy would pick (no engagement here: email); its grant size is what the treated of
    its cohort and tenure year got."""
    assert _slices(built, "channel") == {"email": (20, 40), "sms": (20, 0)}
    assert _slices(built, "tenure_band") == {"0-6 months": (20, 20), "1-3 years": (20, 20)}
    assert _slices(built, "grant_size_band") == {"251-500": (40, 40)}
    assert _slices(built, "grant_size_band", "all") == {"251-500": (40, 40)}
    dimensions = {row[0] for row in query(built, "select distinct dimension from marts.fct_campaign_results")}
    assert dimensions == {
        "overall", "segment", "risk_band", "channel", "tenure_band", "grant_size_band", "selection"
    }  # fmt: skip
    assert _slices(built, "selection") == {"ranked": (40, 40)}  # recorded before the ledger kept it


def test_the_pooled_effect_over_time_ends_at_cohort_all(built):
    trend = query(
        built,
        "select decision_date, cohorts, treated_customers, control_customers, incremental_retention, "
        "incremental_retention_ci_low, incremental_retention_ci_high, verdict "
        "from marts.fct_campaign_effect_trend order by decision_date",
    )
    assert [row[:2] for row in trend] == [(COHORT_A, 1)]  # only cohort A's window is over
    [pooled] = _results(built, "all")
    assert trend[-1][2:] == (
        pooled["treated"],
        pooled["control"],
        pooled["retention"],
        pooled["retention_low"],
        pooled["retention_high"],
        pooled["verdict"],
    )


# ---------------------------------------------------------------- the measures on synthetic outcomes

OUTCOME_COLUMNS = {
    "decision_id": "varchar",
    "campaign_id": "varchar",
    "decision_date": "date",
    "arm": "varchar",
    "segment": "varchar",
    "risk_band": "varchar",
    "channel": "varchar",
    "tenure_band": "varchar",
    "grant_size_band": "varchar",
    "selection": "varchar",
    "window_end_date": "date",
    "is_window_complete": "boolean",
    "is_retained": "boolean",
    "revenue": "double",
    "pre_purchase_count": "bigint",
    "pre_revenue": "double",
    "granted_points": "bigint",
    "redeemed_points": "bigint",
    "clawed_back_points": "bigint",
    "redeemed_cost": "double",
}


def _run_compiled(settings, model: str, outcomes: pd.DataFrame, folder) -> pd.DataFrame:
    """The model as dbt compiled it for ``settings`` (vars and the as-of date filled in), run on
    ``outcomes`` in place of marts.fct_campaign_outcomes, in a scratch database of the same name."""
    [path] = list((settings.dbt_target_dir / "compiled").rglob(f"{model}.sql"))
    folder.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(folder / settings.warehouse_path.name)) as con:
        con.execute("create schema if not exists marts")
        frame = outcomes.assign(**{name: None for name in OUTCOME_COLUMNS if name not in outcomes.columns})[
            list(OUTCOME_COLUMNS)
        ]
        con.register("frame", frame)
        casts = ", ".join(f"cast({name} as {kind}) as {name}" for name, kind in OUTCOME_COLUMNS.items())
        con.execute(f"create or replace table marts.fct_campaign_outcomes as select {casts} from frame")
        return con.execute(path.read_text()).df()


def _arm(rng, n: int, treated: bool, effect: float) -> dict[str, np.ndarray]:
    """Customers whose 90 days before predict their window: purchases ~ Poisson(2), P(retained) =
    0.05 + 0.2 x purchases (capped), plus ``effect`` if treated; revenue 30 a purchase in the window."""
    x = rng.poisson(2.0, n)
    p = np.minimum(0.05 + 0.2 * x + (effect if treated else 0.0), 0.95)
    y = rng.random(n) < p
    bought = rng.poisson(1.0 + 0.5 * x) * y
    return {"x": x, "y": y, "pre_revenue": 30.0 * x, "revenue": 30.0 * bought}


def test_the_adjustment_narrows_the_interval_and_keeps_the_estimate(built, tmp_path):
    """300 randomised experiments (one campaign each, 150 customers an arm) with a pre-period
    correlate, measured by the mart's own compiled SQL: the adjusted intervals are narrower in
    nearly every one, the adjusted and raw estimates agree on average (same point estimate in
    expectation: the arms are alike before the decision) and both centre on the true effect, and
    the adjusted intervals cover it about 95% of the time."""
    rng = np.random.default_rng(14)
    effect, experiments, n = 0.08, 300, 150
    frames = []
    for k in range(experiments):
        for arm, treated in (("treatment", True), ("control", False)):
            a = _arm(rng, n, treated, effect)
            frames.append(
                pd.DataFrame(
                    {
                        "decision_id": [f"{k}-{arm}-{i}" for i in range(n)],
                        "campaign_id": f"K{k:03d}",
                        "decision_date": COHORT_A,
                        "arm": arm,
                        "is_window_complete": True,
                        "is_retained": a["y"],
                        "revenue": a["revenue"],
                        "pre_purchase_count": a["x"],
                        "pre_revenue": a["pre_revenue"],
                        "granted_points": 100 if treated else 0,
                        "redeemed_points": 0,
                        "clawed_back_points": 0,
                        "redeemed_cost": 0.0,
                    }
                )
            )
    trend = _run_compiled(built, "fct_campaign_effect_trend", pd.concat(frames), tmp_path / "sim")
    assert len(trend) == experiments
    raw_width = (
        trend["incremental_retention_unadjusted_ci_high"] - trend["incremental_retention_unadjusted_ci_low"]
    )
    width = trend["incremental_retention_ci_high"] - trend["incremental_retention_ci_low"]
    assert (width < raw_width).mean() > 0.95
    # corr(x, y) about 0.5: the standard error about sqrt(1 - 0.26) = 0.86 of the raw one
    assert (width / raw_width).mean() < 0.9
    assert trend["retention_variance_reduction"].median() > 0.2
    difference = trend["incremental_retention"] - trend["incremental_retention_unadjusted"]
    assert abs(difference.mean()) < 3 * difference.std() / math.sqrt(experiments)
    spread = trend["incremental_retention"].std() / math.sqrt(experiments)
    assert abs(trend["incremental_retention"].mean() - effect) < 3 * spread
    covered = (trend["incremental_retention_ci_low"] <= effect) & (
        effect <= trend["incremental_retention_ci_high"]
    )
    assert 0.9 <= covered.mean() <= 0.99
    revenue_width = (
        trend["incremental_revenue_per_customer_ci_high"] - trend["incremental_revenue_per_customer_ci_low"]
    )
    raw_revenue_width = (
        trend["incremental_revenue_per_customer_unadjusted_ci_high"]
        - trend["incremental_revenue_per_customer_unadjusted_ci_low"]
    )
    assert (revenue_width < raw_revenue_width).mean() > 0.95


def _cohort(day: date, treated: int, control: int, retained: tuple[int, int], complete: bool) -> pd.DataFrame:
    """A cohort of campaign K: the first ``retained`` of each arm bought 10.00 in their window."""
    rows = []
    for arm, count, kept in (("treatment", treated, retained[0]), ("control", control, retained[1])):
        for i in range(count):
            rows.append(
                {
                    "decision_id": f"{day}-{arm}-{i}",
                    "campaign_id": "K",
                    "decision_date": day,
                    "arm": arm,
                    "segment": "s",
                    "risk_band": "high",
                    "channel": "email",
                    "tenure_band": "1-3 years",
                    "grant_size_band": "51-100",
                    "selection": "ranked",
                    "window_end_date": day + timedelta(days=30),
                    "is_window_complete": complete,
                    "is_retained": i < kept,
                    "revenue": 10.0 if i < kept else 0.0,
                    "pre_purchase_count": 0,
                    "pre_revenue": 0.0,
                    "granted_points": 100 if arm == "treatment" else 0,
                    "redeemed_points": 0,
                    "clawed_back_points": 0,
                    "redeemed_cost": 0.0,
                }
            )
    return pd.DataFrame(rows)


def test_a_chosen_period_pools_its_cohorts_and_says_what_more_it_takes(built, tmp_path):
    """BOOMERANG_RESULTS_FROM / _TO choose the cohorts of 'period'; 'all' keeps every complete one.
    As of 2025-04-15 (30-day window, 30 an arm at least, 2 pp of interest): 02-01 (10 against 10:
    too small), 03-01 (100 against 100, 30% against 25%: no detectable effect), 04-01 (28 decisions,
    window open). The period is March: cohort 03-01 alone."""
    from boomerang.warehouse.dbt import run_dbt

    settings = built.with_(
        results_from=date(2025, 3, 1), results_to=date(2025, 3, 31), dbt_target_dir=tmp_path / "target"
    )
    run_dbt(settings, "compile", AS_OF, ["--select", "fct_campaign_results"])
    outcomes = pd.concat(
        [
            _cohort(date(2025, 2, 1), 10, 10, (3, 2), True),
            _cohort(COHORT_A, 100, 100, (30, 25), True),
            _cohort(COHORT_B, 14, 14, (0, 0), False),
        ]
    )
    results = _run_compiled(settings, "fct_campaign_results", outcomes, tmp_path / "period")
    rows = {row["cohort"]: row for row in results[results["dimension"] == "overall"].to_dict("records")}
    assert set(rows) == {"2025-02-01", "2025-03-01", "2025-04-01", "all", "period"}
    period, march, everything = rows["period"], rows["2025-03-01"], rows["all"]
    assert (period["treated_customers"], period["control_customers"]) == (100, 100)
    assert (everything["treated_customers"], everything["control_customers"]) == (110, 110)
    assert (period["first_cohort"], period["last_cohort"]) == (pd.Timestamp(COHORT_A),) * 2
    assert (everything["first_cohort"], everything["last_cohort"]) == (
        pd.Timestamp(2025, 2, 1),
        pd.Timestamp(COHORT_A),
    )
    figures = [c for c in results.columns if c.startswith("incremental_") or c.endswith("_needed")]
    assert {c: period[c] for c in figures} == {c: march[c] for c in figures}
    # no pre-period variation here: the adjusted figures are the raw ones
    assert march["incremental_retention"] == march["incremental_retention_unadjusted"] == 0.05
    # MDE and what it takes, by hand: se = sqrt(0.3*0.7/100 + 0.25*0.75/100) = 0.063048
    se = math.sqrt(0.3 * 0.7 / 100 + 0.25 * 0.75 / 100)
    assert march["retention_mde"] == pytest.approx((1.96 + 0.841621) * se, abs=1e-6)
    assert march["verdict"] == "no detectable effect"
    assert march["verdict_words"] == "too early: an effect of interest could still hide in the noise"
    scale = ((1.96 + 0.841621) * se / 0.02) ** 2  # 78.0: times today's customers
    assert march["more_treated_needed"] == march["more_control_needed"] == math.ceil(100 * scale) - 100
    # decisions per day: the 28 of 04-01 over the last 28 days (the campaign is older)
    assert march["decisions_per_day"] == 1.0
    assert march["more_days_needed"] == 2 * (math.ceil(100 * scale) - 100)
    # too small: sized from the pooled rate 5/20 (p (1 - p) = 0.1875), at least 30 an arm
    small = rows["2025-02-01"]
    assert (
        small["verdict"] == "too small" and small["retention_mde"] is None or pd.isna(small["retention_mde"])
    )
    scale = (1.96 + 0.841621) ** 2 / 0.02**2 * 0.1875 * (1 / 10 + 1 / 10)
    assert small["more_treated_needed"] == small["more_control_needed"] == math.ceil(10 * scale) - 10
    assert pd.isna(rows["2025-04-01"]["more_treated_needed"])  # too young: wait for the window

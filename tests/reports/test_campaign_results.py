"""Campaign results on a warehouse built by hand: known answers, end to end (one dbt build).

As of 2025-04-15, 30-day retention window:
- cohort 2025-03-01: 40 treated (30 buy 50.00 on 03-10; 10 of them redeem 200 of their 500 miles)
  against 40 control (20 buy 40.00): retention 0.75 - 0.50 = 0.25, se = sqrt(0.75*0.25/40 +
  0.5*0.5/40) = 0.104583, interval [0.045018, 0.454982]: incremental. C031, treated, bought just
  before the window and at its very end: not retained.
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
    pipeline.dbt_build(settings, AS_OF)  # the whole daily build, ledger and campaign marts included
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


def test_a_mature_cohort_is_measured_against_its_holdout(built):
    [row] = _results(built, "2025-03-01")
    assert (row["treated"], row["control"], row["treated_rate"], row["control_rate"]) == (40, 40, 0.75, 0.5)
    assert (row["retention"], row["retention_low"], row["retention_high"]) == (0.25, 0.045018, 0.454982)
    assert row["kept"] == 10.0 and row["verdict"] == "incremental" and row["complete"] is True
    revenue, half_width = _welch([50.0] * 30 + [0.0] * 10, [40.0] * 20 + [0.0] * 20)
    assert revenue == 17.5
    assert (row["revenue"], row["revenue_low"], row["revenue_high"]) == pytest.approx(
        (17.5, 17.5 - half_width, 17.5 + half_width), abs=0.005
    )
    assert (row["granted"], row["redeemed"], row["cost"]) == (40 * 500, 10 * 200, 20.0)
    assert row["profit"] == 17.5 * 0.3 * 40 - 20.0  # 190
    assert (row["profit_low"], row["profit_high"]) == pytest.approx(
        ((17.5 - half_width) * 12 - 20, (17.5 + half_width) * 12 - 20), abs=0.01
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
    assert dimensions == {"overall", "segment", "risk_band", "channel", "tenure_band", "grant_size_band"}


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

"""The rewards policy as pure functions: eligibility, amounts, budget, holdout, channel."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boomerang.config import Policy
from boomerang.rewards.policy import decide, grant_points, is_holdout, message

AS_OF = date(2025, 6, 1)
POLICY = Policy()


def candidate(customer_id: str = "C1", **overrides) -> dict:
    row = {
        "customer_id": customer_id,
        "churn_probability": 0.6,
        "model_version": "m1",
        "reason_1": "94 days since the last purchase",
        "reason_2": None,
        "reason_3": None,
        "has_marketing_consent": True,
        "tenure_days": 400,
        "spend_365d": 900.0,
        "best_channel": "sms",
        "open_complaint_days": None,
        "last_decision_date": None,
        "has_open_pregrant": False,
        "messages_in_window": 0,
    }
    return {**row, **overrides}


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def verdict(policy: Policy = POLICY, **overrides) -> pd.Series:
    return decide(frame(candidate(**overrides)), policy, AS_OF).iloc[0]


def test_a_consenting_at_risk_customer_is_selected_with_the_decision_recorded():
    row = verdict(policy=Policy(holdout_share=0))
    assert row["selected"] and row["arm"] == "treatment"
    assert row["ineligible_reason"] is None
    assert (row["decision_rank"], row["budget_used_points"], row["points"]) == (1, 600, 600)
    assert row["channel"] == "sms" and row["grant_rule"] == "promotional"
    assert row["expires_at"] == pd.Timestamp("2025-06-15")
    assert row["expected_value"] == pytest.approx(0.6 * 0.15 * 0.3 * 900 - 0.6 * 600 * 0.01)


def test_no_consent_no_grant():
    assert verdict(has_marketing_consent=False)["ineligible_reason"] == "no marketing consent"


@pytest.mark.parametrize(
    ("days_ago", "eligible"), [(1, False), (59, False), (60, True), (200, True)], ids=str
)
def test_cooldown_after_any_decision(days_ago, eligible):
    last = pd.Timestamp(AS_OF) - pd.Timedelta(days=days_ago)
    row = verdict(last_decision_date=last)
    assert (row["ineligible_reason"] is None) == eligible
    if not eligible:
        assert row["ineligible_reason"] == "in cooldown after a recent decision"


def test_an_open_pregrant_blocks_a_second_one():
    assert verdict(has_open_pregrant=True)["ineligible_reason"] == "holds an open pre-grant"


@pytest.mark.parametrize(("messages", "eligible"), [(0, True), (3, True), (4, False), (9, False)])
def test_contact_cap(messages, eligible):
    row = verdict(messages_in_window=messages)
    assert (row["ineligible_reason"] is None) == eligible
    if not eligible:
        assert row["ineligible_reason"] == "contact cap reached"


def test_an_open_complaint_suppresses_promotion_and_a_slow_one_gets_a_make_good():
    fresh = verdict(open_complaint_days=2)
    assert fresh["ineligible_reason"] == "open complaint (promotional grants suppressed)"
    slow = verdict(open_complaint_days=10)
    assert slow["ineligible_reason"] is None and slow["grant_rule"] == "make_good"
    assert "sorry" in message(slow, POLICY)
    off = verdict(policy=Policy(make_good=False), open_complaint_days=10)
    assert off["ineligible_reason"] == "open complaint (promotional grants suppressed)"


def test_low_risk_or_no_gain_is_never_contacted():
    assert verdict(churn_probability=0.1)["ineligible_reason"] == "churn risk below threshold"
    # at risk, but spends so little that the expected mileage cost exceeds the saved margin
    assert verdict(spend_365d=20.0)["ineligible_reason"] == "no expected gain"


@given(st.integers(0, 20 * 365), st.integers(0, 20 * 365))
def test_tenure_never_lowers_a_grant(shorter, longer_by):
    points = grant_points(np.array([shorter, shorter + longer_by]), POLICY)
    assert points[1] >= points[0] >= POLICY.grant_points
    assert points.max() <= POLICY.max_points_per_customer


def test_long_tenure_raises_the_grant_and_says_thank_you():
    row = verdict(policy=Policy(holdout_share=0), tenure_days=3 * 365 + 10)
    assert row["points"] == 800
    assert "Thank you for 3 years with us" in message(row, POLICY)


def _crowd(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame(
        *[
            candidate(
                f"C{i:06d}",
                churn_probability=float(rng.uniform(0.3, 0.9)),
                tenure_days=int(rng.integers(0, 3000)),
                spend_365d=float(rng.uniform(300, 3000)),
            )
            for i in range(n)
        ]
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 60_000), st.floats(0, 0.5), st.integers(0, 1000))
def test_the_budget_is_never_exceeded(budget, share, seed):
    policy = Policy(budget_points=budget, holdout_share=share)
    decisions = decide(_crowd(150, seed), policy, AS_OF)
    treated = decisions[decisions["arm"] == "treatment"]
    assert treated["points"].sum() <= budget
    assert (decisions.loc[decisions["selected"], "budget_used_points"] <= budget).all()
    # ranked by expected value, and every eligible customer left out was over budget
    eligible = decisions[decisions["decision_rank"].notna()]
    assert eligible["expected_value"].is_monotonic_decreasing
    assert set(eligible.loc[~eligible["selected"], "ineligible_reason"]) <= {"over budget"}


def test_holdout_share_is_within_tolerance_and_stable_across_reruns():
    crowd = _crowd(4000)
    policy = Policy(budget_points=10**9, holdout_share=0.1)
    first = decide(crowd, policy, AS_OF)
    again = decide(crowd.sample(frac=1, random_state=3), policy, AS_OF)
    selected = first[first["selected"]]
    share = (selected["arm"] == "control").mean()
    assert abs(share - 0.1) < 0.015  # 4,000 draws: 3 standard errors is about 0.014
    assert first.set_index("customer_id")["arm"].to_dict() == again.set_index("customer_id")["arm"].to_dict()
    # control customers use no budget and get no points
    assert (
        first.loc[first["arm"] == "treatment", "points"].sum()
        == first.loc[first["selected"], "budget_used_points"].max()
    )


def test_holdout_is_fresh_per_cohort():
    customers = [f"C{i}" for i in range(2000)]
    one = is_holdout("camp", date(2025, 6, 1), customers, 0.5)
    two = is_holdout("camp", date(2025, 6, 2), customers, 0.5)
    assert 0.4 < (one == two).mean() < 0.6


def test_missing_candidate_columns_are_named():
    with pytest.raises(ValueError, match="tenure_days"):
        decide(frame(candidate()).drop(columns=["tenure_days"]), POLICY, AS_OF)


def test_a_cooldown_shorter_than_the_expiry_is_refused():
    with pytest.raises(ValueError, match="COOLDOWN"):
        Policy(expiry_days=14, cooldown_days=10)


def test_policy_version_follows_the_knobs():
    assert Policy().version == Policy().version
    assert Policy(grant_points=600).version != Policy().version

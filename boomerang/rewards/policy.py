"""The rewards policy: who gets a pre-grant, how much, through which channel, and who is held out.

Pure functions over a frame of candidates (one row per scored customer with the facts the rules
need; :mod:`boomerang.rewards` reads it from the warehouse). The knobs are
:class:`boomerang.config.Policy`; the rules, in the order they are tried:

1. **Eligibility** (the first rule a customer fails is recorded as why not): marketing consent; no
   decision (grant *or* holdout) within ``cooldown_days``, so a control customer stays untreated
   while their cohort is measured; no open pre-grant; fewer than ``contact_cap`` messages in the
   last ``contact_window_days`` (every campaign's sends plus our own grants: the customer's time
   is precious); churn risk at least ``min_churn_probability``; a positive expected value.
2. **Complaints**: an open complaint suppresses promotional grants (a "spend more" message to
   someone waiting on us reads as tone-deaf). With ``make_good`` on, a complaint open for at least
   ``make_good_after_days`` turns the grant into a *make-good* instead: an apology with miles,
   under the same risk, value, budget and holdout rules.
3. **Amount**: ``grant_points`` plus ``tenure_bonus_points`` per full year with us, up to
   ``max_tenure_bonus_points``, capped at ``max_points_per_customer``. Tenure only ever raises it.
4. **Ranking** by expected value = risk x expected save x yearly margin - expected cost of the
   miles actually redeemed; ties by customer id. Walking down the ranking, a customer whose grant
   still fits the run's ``budget_points`` is selected (a larger grant that does not fit is
   skipped; a smaller one further down may still fit).
5. **Holdout**: a selected customer is control when a hash of (campaign, as-of date, customer)
   falls under ``holdout_share``: deterministic, so a re-run picks the same control group, and
   fresh per cohort, so nobody is excluded for ever. Control customers use no budget.
6. **Channel**: the channel the customer engages with best (email, SMS or push), email by default.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from boomerang.config import Policy

CANDIDATE_COLUMNS = (
    "customer_id",
    "churn_probability",
    "model_version",
    "reason_1",
    "reason_2",
    "reason_3",
    "has_marketing_consent",
    "tenure_days",
    "spend_365d",
    "best_channel",
    "open_complaint_days",  # days the oldest open complaint has been open; null when none
    "last_decision_date",  # the latest pre-grant or holdout decided for this customer before the run
    "has_open_pregrant",
    "messages_in_window",  # sends of every campaign plus our own grants in the contact window
)

INELIGIBLE_REASONS = (
    "no marketing consent",
    "in cooldown after a recent decision",
    "holds an open pre-grant",
    "contact cap reached",
    "open complaint (promotional grants suppressed)",
    "churn risk below threshold",
    "no expected gain",
)


def grant_points(tenure_days: np.ndarray | pd.Series, policy: Policy) -> np.ndarray:
    """The grant for each tenure: the base plus a bonus per full year, never lowered by tenure."""
    years = np.floor(np.maximum(np.asarray(tenure_days, dtype=float), 0) / 365.0)
    bonus = np.minimum(years * policy.tenure_bonus_points, policy.max_tenure_bonus_points)
    return np.minimum(policy.grant_points + bonus, policy.max_points_per_customer).astype(np.int64)


def expected_value(
    churn_probability: np.ndarray | pd.Series,
    spend_365d: np.ndarray | pd.Series,
    points: np.ndarray,
    policy: Policy,
) -> np.ndarray:
    """Expected gain of a grant, in currency: saved margin minus the expected cost of redeemed miles."""
    saved = (
        np.asarray(churn_probability, dtype=float)
        * policy.expected_save_rate
        * policy.margin_rate
        * np.nan_to_num(np.asarray(spend_365d, dtype=float))
    )
    return saved - policy.expected_redeem_rate * points * policy.value_per_mile


def is_holdout(
    campaign_id: str, as_of: date, customer_ids: pd.Series | list[str], share: float
) -> np.ndarray:
    """Deterministic random assignment: True for the control arm."""
    draws = [
        int.from_bytes(hashlib.sha256(f"{campaign_id}:{as_of}:{customer}".encode()).digest()[:8], "big")
        / 2**64
        for customer in customer_ids
    ]
    return np.asarray(draws, dtype=float) < share


def decide(candidates: pd.DataFrame, policy: Policy, as_of: date) -> pd.DataFrame:
    """Every candidate with the policy's verdict.

    Adds ``grant_rule`` (promotional / make_good), ``points``, ``expected_value``,
    ``ineligible_reason`` (null when eligible), ``decision_rank`` (1 = best, eligible only),
    ``selected``, ``arm`` (treatment / control, selected only), ``budget_used_points`` (points
    granted by this run up to and including this customer), ``channel`` and ``expires_at``.
    Rows are in rank order, eligible first.
    """
    missing = [column for column in CANDIDATE_COLUMNS if column not in candidates.columns]
    if missing:
        raise ValueError(f"Policy candidates lack column(s) {missing}")
    frame = candidates.copy()
    frame["points"] = grant_points(frame["tenure_days"].fillna(0), policy)
    frame["expected_value"] = expected_value(
        frame["churn_probability"], frame["spend_365d"], frame["points"].to_numpy(), policy
    )
    open_complaint = frame["open_complaint_days"].notna()
    make_good = (
        open_complaint & policy.make_good & (frame["open_complaint_days"] >= policy.make_good_after_days)
    )
    frame["grant_rule"] = np.where(make_good, "make_good", "promotional")

    last_decision = pd.to_datetime(frame["last_decision_date"])
    days_since_decision = (pd.Timestamp(as_of) - last_decision).dt.days
    checks = [
        ~frame["has_marketing_consent"].fillna(False).astype(bool),
        days_since_decision.notna() & (days_since_decision < policy.cooldown_days),
        frame["has_open_pregrant"].fillna(False).astype(bool),
        frame["messages_in_window"].fillna(0) >= policy.contact_cap,
        open_complaint & ~make_good,
        frame["churn_probability"] < policy.min_churn_probability,
        frame["expected_value"] <= 0,
    ]
    reason = pd.Series(None, index=frame.index, dtype=object)
    for words, failed in zip(INELIGIBLE_REASONS, checks, strict=True):
        reason = reason.where(reason.notna() | ~failed, words)
    frame["ineligible_reason"] = reason
    eligible = reason.isna()

    frame = pd.concat(
        [
            frame[eligible].sort_values(["expected_value", "customer_id"], ascending=[False, True]),
            frame[~eligible].sort_values("customer_id"),
        ]
    )
    eligible = frame["ineligible_reason"].isna().to_numpy()
    frame["decision_rank"] = pd.array(np.cumsum(eligible), dtype="Int64")
    frame.loc[~eligible, "decision_rank"] = pd.NA

    control = is_holdout(policy.campaign_id, as_of, frame["customer_id"], policy.holdout_share)
    points = frame["points"].to_numpy()
    selected = np.zeros(len(frame), bool)
    used = np.zeros(len(frame), np.int64)
    budget_left = policy.budget_points
    for row in np.flatnonzero(eligible):
        if points[row] <= budget_left:
            selected[row] = True
            if not control[row]:
                budget_left -= points[row]
        used[row] = policy.budget_points - budget_left
    frame["selected"] = selected
    frame["arm"] = np.where(selected, np.where(control, "control", "treatment"), None)
    frame["budget_used_points"] = pd.array(np.where(selected, used, 0), dtype="Int64")
    frame.loc[~selected, "budget_used_points"] = pd.NA
    frame.loc[eligible & ~selected, "ineligible_reason"] = "over budget"
    frame["channel"] = frame["best_channel"].fillna("email")
    frame["expires_at"] = datetime.combine(as_of, datetime.min.time()) + timedelta(days=policy.expiry_days)
    for column in ("ineligible_reason", "arm"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame.reset_index(drop=True)


def message(row: pd.Series | dict, policy: Policy) -> str:
    """What the customer reads with their pre-grant."""
    until = row["expires_at"]
    until_text = f"{until:%d %B %Y}".lstrip("0")
    years = int((row.get("tenure_days") or 0) // 365)
    if row["grant_rule"] == "make_good":
        return (
            f"We are sorry your complaint is taking us so long. {row['points']} miles are yours, "
            f"on us, to use before {until_text}."
        )
    thanks = f" Thank you for {years} year{'s' if years != 1 else ''} with us." if years >= 1 else ""
    return f"{row['points']} miles are yours, on us, to use before {until_text}.{thanks}"


def summarise(decisions: pd.DataFrame) -> dict[str, int]:
    """Counts for the log: candidates, eligible, treated, held out, points, and why not."""
    counts = {
        "candidates": len(decisions),
        "eligible": int(decisions["decision_rank"].notna().sum()),
        "treatment": int((decisions["arm"] == "treatment").sum()),
        "control": int((decisions["arm"] == "control").sum()),
        "points_granted": int(decisions.loc[decisions["arm"] == "treatment", "points"].sum()),
    }
    for reason, count in decisions["ineligible_reason"].value_counts().items():
        counts[f"not: {reason}"] = int(count)
    return counts

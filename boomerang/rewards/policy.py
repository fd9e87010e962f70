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
3. **Amount** (:func:`grant_amounts`; the rule is recorded as ``amount_rule``):

   - *predicted*: the miles the customer's purchases are predicted to earn over the grant's window
     (``predicted_miles``, the mileage model's), times the tenure multiplier ``1 +
     tenure_bonus_rate`` per full year with us (at most ``1 + max_tenure_bonus_rate``), rounded
     half up to a multiple of ``grant_round_points`` (``x.5`` units go up: 25 -> 30 in tens), then
     held between ``grant_floor_points`` and ``max_points_per_customer``. When the floor or the cap
     decided it, the rule says so: ``predicted (floor)``, ``predicted (cap)``.
   - *flat*, for a customer with no prediction: ``grant_points`` plus ``tenure_bonus_points`` per
     full year, up to ``max_tenure_bonus_points``, capped: ``flat (no mileage model)`` when nobody
     has a prediction that day (no mileage champion yet), ``flat (no prediction)`` otherwise.
   - *make_good*: ``make_good_points`` plus the flat tenure bonus, capped: an apology is not a
     prediction of anything.

   Tenure only ever raises an amount, under every rule.
4. **Ranking** by expected value = risk x expected save x yearly margin - expected cost of the
   miles actually redeemed (of the real amount); ties by customer id. The customer's value is the
   spend of the last 365 days, not the predicted spend: the prediction already discounts the
   chance that the customer leaves, and the saved margin is what they spend *if they stay*, so
   multiplying it by the churn risk again would count the risk twice. Walking down the ranking,
   a customer whose grant still fits the run's ``budget_points`` is selected (a larger grant that
   does not fit is skipped; a smaller one further down may still fit).
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
    "predicted_miles",  # the mileage model's miles over the grant's window; null without a prediction
    "mileage_model_version",  # the mileage model that predicted them
)

# What decided a grant's amount (``amount_rule``, recorded with every decision).
AMOUNT_RULES = (
    "predicted",
    "predicted (floor)",
    "predicted (cap)",
    "flat (no prediction)",
    "flat (no mileage model)",
    "make_good",
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


def _full_years(tenure_days: np.ndarray | pd.Series) -> np.ndarray:
    return np.floor(np.maximum(np.nan_to_num(np.asarray(tenure_days, dtype=float)), 0) / 365.0)


def grant_points(tenure_days: np.ndarray | pd.Series, policy: Policy, base: int | None = None) -> np.ndarray:
    """The flat grant for each tenure: ``base`` (default ``grant_points``) plus a bonus per full
    year, capped; never lowered by tenure."""
    bonus = np.minimum(_full_years(tenure_days) * policy.tenure_bonus_points, policy.max_tenure_bonus_points)
    base = policy.grant_points if base is None else base
    return np.minimum(base + bonus, policy.max_points_per_customer).astype(np.int64)


def tenure_multiplier(tenure_days: np.ndarray | pd.Series, policy: Policy) -> np.ndarray:
    """What a predicted grant is multiplied by for each tenure: 1 plus a share per full year, capped;
    at least 1, so tenure never lowers a grant."""
    return 1.0 + np.minimum(_full_years(tenure_days) * policy.tenure_bonus_rate, policy.max_tenure_bonus_rate)


def round_half_up(values: np.ndarray, unit: int) -> np.ndarray:
    """``values`` to the nearest multiple of ``unit``, halves up (25 -> 30 in tens, not banker's 20)."""
    # a hair of tolerance so that 2.5 units computed as 2.4999999999 still goes up
    return (np.floor(np.asarray(values, dtype=float) / unit + 0.5 + 1e-9) * unit).astype(np.int64)


def predicted_points(
    predicted_miles: np.ndarray | pd.Series, tenure_days: np.ndarray | pd.Series, policy: Policy
) -> tuple[np.ndarray, np.ndarray]:
    """The predicted amount for each customer with a prediction, and which bound decided it.

    Returns ``(points, bound)``: the prediction times the tenure multiplier, rounded half up to
    ``grant_round_points``, held in [``grant_floor_points``, ``max_points_per_customer``]; ``bound``
    is ``"floor"``, ``"cap"`` or ``""``. Non-decreasing in both the prediction and the tenure.
    """
    miles = np.maximum(np.asarray(predicted_miles, dtype=float), 0.0)
    rounded = round_half_up(miles * tenure_multiplier(tenure_days, policy), policy.grant_round_points)
    points = np.clip(rounded, policy.grant_floor_points, policy.max_points_per_customer)
    bound = np.where(
        rounded < policy.grant_floor_points,
        "floor",
        np.where(rounded > policy.max_points_per_customer, "cap", ""),
    )
    return points.astype(np.int64), bound


def grant_amounts(
    predicted_miles: np.ndarray | pd.Series,
    tenure_days: np.ndarray | pd.Series,
    is_make_good: np.ndarray | pd.Series,
    policy: Policy,
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's grant and the rule that decided it (one of :data:`AMOUNT_RULES`).

    A make-good gets ``make_good_points`` plus the flat tenure bonus; a customer with a prediction
    (not null) gets :func:`predicted_points`; the rest the flat :func:`grant_points`, labelled
    ``flat (no mileage model)`` when no one has a prediction, ``flat (no prediction)`` otherwise.
    """
    miles = pd.to_numeric(pd.Series(np.asarray(predicted_miles, dtype=object)), errors="coerce").to_numpy(
        float
    )
    tenure = np.nan_to_num(np.asarray(tenure_days, dtype=float))
    make_good = np.asarray(is_make_good, dtype=bool)
    has_prediction = ~np.isnan(miles)
    predicted, bound = predicted_points(np.where(has_prediction, miles, 0.0), tenure, policy)
    flat = grant_points(tenure, policy)
    apology = grant_points(tenure, policy, base=policy.make_good_points)
    points = np.where(make_good, apology, np.where(has_prediction, predicted, flat)).astype(np.int64)
    no_prediction = "flat (no prediction)" if has_prediction.any() else "flat (no mileage model)"
    rule = np.where(
        make_good,
        "make_good",
        np.where(
            has_prediction,
            np.where(bound == "", "predicted", np.char.add(np.char.add("predicted (", bound), ")")),
            no_prediction,
        ),
    ).astype(object)
    return points, rule


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

    Adds ``grant_rule`` (promotional / make_good), ``points`` and ``amount_rule`` (what decided
    the amount: :data:`AMOUNT_RULES`), ``expected_value``,
    ``ineligible_reason`` (null when eligible), ``decision_rank`` (1 = best, eligible only),
    ``selected``, ``arm`` (treatment / control, selected only), ``budget_used_points`` (points
    granted by this run up to and including this customer), ``channel`` and ``expires_at``.
    Rows are in rank order, eligible first.
    """
    missing = [column for column in CANDIDATE_COLUMNS if column not in candidates.columns]
    if missing:
        raise ValueError(f"Policy candidates lack column(s) {missing}")
    frame = candidates.copy()
    open_complaint = frame["open_complaint_days"].notna()
    make_good = (
        open_complaint & policy.make_good & (frame["open_complaint_days"] >= policy.make_good_after_days)
    )
    frame["grant_rule"] = np.where(make_good, "make_good", "promotional")
    frame["points"], frame["amount_rule"] = grant_amounts(
        frame["predicted_miles"], frame["tenure_days"].fillna(0), make_good.to_numpy(), policy
    )
    frame["expected_value"] = expected_value(
        frame["churn_probability"], frame["spend_365d"], frame["points"].to_numpy(), policy
    )

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
    """What the customer reads with their pre-grant, worded by its amount rule: a predicted grant
    says it is what their next purchases would earn; a flat one and a make-good say what they are.

    The date is the last day the miles can be spent (the lot is usable strictly before
    ``expires_at``), as the clawback's message names it.
    """
    last_day = row["expires_at"] - timedelta(microseconds=1)
    until = f"{last_day.day} {last_day:%B %Y}"
    points = f"{int(row['points']):,}"
    tenure = row.get("tenure_days")
    years = 0 if tenure is None or pd.isna(tenure) else int(tenure // 365)
    thanks = f" Thank you for {years} year{'s' if years != 1 else ''} with us." if years >= 1 else ""
    rule = row.get("amount_rule") or ""
    if row["grant_rule"] == "make_good":
        return (
            f"We are sorry your complaint is taking us so long. {points} miles are yours, "
            f"on us, to use until {until}."
        )
    if rule == "predicted":
        return f"{points} miles — what your next purchases would earn — are yours now, until {until}.{thanks}"
    if rule == "predicted (cap)":
        return (
            f"{points} miles — toward what your next purchases would earn — are yours now, "
            f"until {until}.{thanks}"
        )
    if rule == "predicted (floor)":
        return f"{points} miles for your next purchases are yours now, on us, until {until}.{thanks}"
    return f"{points} miles are yours, on us, to use until {until}.{thanks}"


def summarise(decisions: pd.DataFrame) -> dict[str, int]:
    """Counts for the log: candidates, eligible, treated, held out, points, amount rules, why not."""
    counts = {
        "candidates": len(decisions),
        "eligible": int(decisions["decision_rank"].notna().sum()),
        "treatment": int((decisions["arm"] == "treatment").sum()),
        "control": int((decisions["arm"] == "control").sum()),
        "points_granted": int(decisions.loc[decisions["arm"] == "treatment", "points"].sum()),
    }
    treated = decisions[decisions["arm"] == "treatment"]
    for rule, count in treated["amount_rule"].value_counts().sort_index().items():
        counts[f"amount: {rule}"] = int(count)
    for reason, count in decisions["ineligible_reason"].value_counts().items():
        counts[f"not: {reason}"] = int(count)
    return counts

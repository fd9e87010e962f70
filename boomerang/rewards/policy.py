"""The rewards policy: who gets a pre-grant, how much, through which channel, and who is held out.

Pure functions over a frame of candidates (one row per scored customer with the facts the rules
need; :mod:`boomerang.rewards` reads it from the warehouse). The knobs are
:class:`boomerang.config.Policy`; the rules, in the order they are tried:

1. **Eligibility** (the first rule a customer fails is recorded as why not). The *hard rules*:
   marketing consent; no decision (grant *or* holdout) within ``cooldown_days``, so a control
   customer stays untreated while their cohort is measured; no open pre-grant; fewer than
   ``contact_cap`` messages in the last ``contact_window_days`` (every campaign's sends plus our own
   grants: the customer's time is precious); no open complaint (below). Then the ranking's own:
   a predicted uplift below 0 is never granted ("a grant is predicted to put them off", nor
   explored); with the uplift ranking, a customer the uplift model did not score is not ranked;
   with the risk ranking, churn risk at least ``min_churn_probability``; a positive expected value.
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
4. **Exploration** first: ``explore_share`` of ``budget_points`` goes to customers picked in a
   random order (a hash of campaign, as-of date, customer and 'explore': the same on every re-run)
   among those who pass the hard rules, whatever their risk or expected value (never a negative
   predicted uplift), so that the uplift model learns from the whole eligible range, not only the
   top of a ranking. The walk stops at the first grant that would exceed the explored share: it
   takes at most that share (within one grant of it, unless the explorable customers run out), even on a day when the budget does not bind
   and the ranking would have picked everyone anyway. Recorded as ``selection = 'explore'``.
5. **Ranking** (``ranking``) of the rest by expected value, in currency, with the run's redemption
   rate (``redeem_rate``: learned from the campaign's closed lots once there are enough, else
   ``expected_redeem_rate``) pricing the miles:

   - *uplift*, when an uplift model scored the day (the candidates carry ``predicted_uplift``):
     predicted uplift x margin x 365-day spend - redemption rate x points x value per mile: the
     expected incremental profit. No churn-risk threshold: the uplift already is the effect.
   - *risk*, the fallback without uplift predictions: risk x expected save x margin x 365-day
     spend - the same mileage cost. The customer's value is the spend of the last 365 days, not
     the predicted spend: the prediction already discounts the chance that the customer leaves,
     and the saved margin is what they spend *if they stay*, so multiplying it by the churn risk
     again would count the risk twice.

   Ties by customer id. Walking down the ranking, a customer whose grant still fits what the
   explore picks left of ``budget_points`` is selected (a larger grant that does not fit is
   skipped; a smaller one further down may still fit). Recorded as ``selection = 'ranked'``.
   :func:`select` ranks the same candidates by risk, uplift or any score with exploration off,
   for comparing policies.
6. **Holdout**: a selected customer, explored or ranked, is control when a hash of (campaign,
   as-of date, customer) falls under ``holdout_share``: deterministic, so a re-run picks the same
   control group, and fresh per cohort, so nobody is excluded for ever. Explore picks thus have
   their own randomised control. Control customers use no budget.
7. **Channel**: the channel the customer engages with best (email, SMS or push), email by default.
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
# Read when present (null when absent): the uplift model's prediction for the day (steps.CANDIDATES_SQL).
OPTIONAL_CANDIDATE_COLUMNS = (
    "predicted_uplift",  # P(retained | granted) - P(retained | not); null without an uplift champion
    "uplift_model_version",
)

# What the run ranks by (``ranking``, a column of the decisions): see :func:`decide`.
RANKINGS = ("uplift", "risk", "score")

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
    # the hard rules end here: exploration picks among the customers who pass them
    "a grant is predicted to put them off",  # negative predicted uplift: never granted, not even explored
    "no uplift prediction",  # uplift ranking only: the model did not score this customer
    "churn risk below threshold",  # risk ranking only
    "no expected gain",
)
HARD_RULES = INELIGIBLE_REASONS[:5]


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


def mileage_cost(points: np.ndarray, policy: Policy, redeem_rate: float | None = None) -> np.ndarray:
    """The expected cost of a grant's miles: the share redeemed x points x value per mile."""
    rate = policy.expected_redeem_rate if redeem_rate is None else redeem_rate
    return rate * np.asarray(points, dtype=float) * policy.value_per_mile


def expected_value(
    churn_probability: np.ndarray | pd.Series,
    spend_365d: np.ndarray | pd.Series,
    points: np.ndarray,
    policy: Policy,
    redeem_rate: float | None = None,
) -> np.ndarray:
    """Expected gain of a grant under the risk ranking, in currency: risk x expected save rate x
    margin on the year's spend, minus the expected cost of redeemed miles."""
    saved = (
        np.asarray(churn_probability, dtype=float)
        * policy.expected_save_rate
        * policy.margin_rate
        * np.nan_to_num(np.asarray(spend_365d, dtype=float))
    )
    return saved - mileage_cost(points, policy, redeem_rate)


def expected_incremental_profit(
    predicted_uplift: np.ndarray | pd.Series,
    spend_365d: np.ndarray | pd.Series,
    points: np.ndarray,
    policy: Policy,
    redeem_rate: float | None = None,
) -> np.ndarray:
    """Expected gain of a grant under the uplift ranking, in currency: the predicted change in the
    chance of keeping the customer x margin on the year's spend, minus the expected cost of redeemed
    miles (null where there is no prediction). No churn-risk factor: the uplift is already the effect."""
    gained = (
        np.asarray(predicted_uplift, dtype=float)
        * policy.margin_rate
        * np.nan_to_num(np.asarray(spend_365d, dtype=float))
    )
    return gained - mileage_cost(points, policy, redeem_rate)


def _draws(campaign_id: str, as_of: date, customer_ids: pd.Series | list[str], salt: str = "") -> np.ndarray:
    """A uniform number in [0, 1) per customer from a hash of (campaign, as-of date, customer[, salt]):
    the same on every re-run, fresh per cohort."""
    suffix = f":{salt}" if salt else ""
    return np.asarray(
        [
            int.from_bytes(
                hashlib.sha256(f"{campaign_id}:{as_of}:{customer}{suffix}".encode()).digest()[:8], "big"
            )
            / 2**64
            for customer in customer_ids
        ],
        dtype=float,
    )


def is_holdout(
    campaign_id: str, as_of: date, customer_ids: pd.Series | list[str], share: float
) -> np.ndarray:
    """Deterministic random assignment: True for the control arm."""
    return _draws(campaign_id, as_of, customer_ids) < share


def explore_order(campaign_id: str, as_of: date, customer_ids: pd.Series | list[str]) -> np.ndarray:
    """The random order exploration walks (positions into ``customer_ids``): by a hash of (campaign,
    as-of date, customer, 'explore'), independent of the holdout's, so the same on every re-run and
    fresh per cohort."""
    ids = list(customer_ids)
    draws = _draws(campaign_id, as_of, ids, "explore")
    return np.lexsort((np.asarray(ids, dtype=object).astype(str), draws)) if ids else np.zeros(0, np.int64)


def _scores(score: np.ndarray | pd.Series | list[float] | None, customer_ids: pd.Series) -> np.ndarray:
    if score is None:
        raise ValueError('ranking="score" needs a score per candidate (score=...)')
    if isinstance(score, pd.Series):  # by customer id
        return pd.to_numeric(customer_ids.map(score), errors="coerce").to_numpy(float)
    values = np.asarray(score, dtype=float)
    if values.shape != (len(customer_ids),):
        raise ValueError(
            f"score has {values.size} value(s) for {len(customer_ids)} candidate(s): give one per candidate, "
            "in the candidates' order, or a Series indexed by customer_id"
        )
    return values


def decide(
    candidates: pd.DataFrame,
    policy: Policy,
    as_of: date,
    redeem_rate: float | None = None,
    *,
    ranking: str | None = None,
    score: np.ndarray | pd.Series | list[float] | None = None,
    explore_share: float | None = None,
) -> pd.DataFrame:
    """Every candidate with the policy's verdict.

    ``redeem_rate``: the share of granted miles expected to be redeemed (the campaign's learned rate,
    :func:`boomerang.rewards.steps.learned_redeem_rate`); default ``policy.expected_redeem_rate``.
    ``ranking``: ``"uplift"`` (expected incremental profit from ``predicted_uplift``), ``"risk"``
    (churn risk x expected save rate) or ``"score"`` (``score``, highest first: for the evaluation
    harness); default ``"uplift"`` when any candidate has a predicted uplift, ``"risk"`` otherwise.
    ``explore_share``: the share of ``budget_points`` spent first on random picks (default the policy's).

    Adds ``grant_rule`` (promotional / make_good), ``points`` and ``amount_rule`` (what decided
    the amount: :data:`AMOUNT_RULES`), ``expected_value`` (what the ranking ranks by),
    ``ineligible_reason`` (null when eligible or explored), ``decision_rank`` (the place in the
    run's walk: explore picks first, then the ranking; null for the rest), ``selected``,
    ``selection`` (ranked / explore, selected only), ``arm`` (treatment / control, selected only),
    ``budget_used_points`` (points granted by this run up to and including this customer),
    ``channel``, ``expires_at``, ``ranking`` and ``redeem_rate`` (the run's), ``predicted_uplift``
    and ``uplift_model_version``. Rows are in walk order (explore picks, the ranked eligible), then
    the rest by customer id.
    """
    missing = [column for column in CANDIDATE_COLUMNS if column not in candidates.columns]
    if missing:
        raise ValueError(f"Policy candidates lack column(s) {missing}")
    frame = candidates.copy()
    for column in OPTIONAL_CANDIDATE_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    uplift = pd.to_numeric(frame["predicted_uplift"], errors="coerce").astype(float)
    frame["predicted_uplift"] = uplift
    if ranking is None:
        ranking = "uplift" if uplift.notna().any() else "risk"
    if ranking not in RANKINGS:
        raise ValueError(f"ranking={ranking!r} is not one of {', '.join(RANKINGS)}")
    if ranking == "uplift" and len(frame) and uplift.isna().all():
        raise ValueError(
            'ranking="uplift" needs predicted_uplift on the candidates; none has one (no uplift '
            "champion scored the day?): rank by risk, or score the day with the uplift model first"
        )
    if score is not None and ranking != "score":
        raise ValueError(f'a score was given but ranking={ranking!r}: pass ranking="score" to rank by it')
    rate = policy.expected_redeem_rate if redeem_rate is None else float(redeem_rate)
    if not 0 <= rate <= 1:
        raise ValueError(f"redeem_rate={rate} is not a share of the granted miles in [0, 1]")
    share = policy.explore_share if explore_share is None else float(explore_share)
    if not 0 <= share < 1:
        raise ValueError(f"explore_share={share} must be in [0, 1)")

    open_complaint = frame["open_complaint_days"].notna()
    make_good = (
        open_complaint & policy.make_good & (frame["open_complaint_days"] >= policy.make_good_after_days)
    )
    frame["grant_rule"] = np.where(make_good, "make_good", "promotional")
    frame["points"], frame["amount_rule"] = grant_amounts(
        frame["predicted_miles"], frame["tenure_days"].fillna(0), make_good.to_numpy(), policy
    )
    points = frame["points"].to_numpy()
    if ranking == "risk":
        value = expected_value(frame["churn_probability"], frame["spend_365d"], points, policy, rate)
    elif ranking == "uplift":
        value = expected_incremental_profit(uplift, frame["spend_365d"], points, policy, rate)
    else:
        value = _scores(score, frame["customer_id"])
    frame["expected_value"] = value

    last_decision = pd.to_datetime(frame["last_decision_date"])
    days_since_decision = (pd.Timestamp(as_of) - last_decision).dt.days
    hard = [
        ~frame["has_marketing_consent"].fillna(False).astype(bool),
        days_since_decision.notna() & (days_since_decision < policy.cooldown_days),
        frame["has_open_pregrant"].fillna(False).astype(bool),
        frame["messages_in_window"].fillna(0) >= policy.contact_cap,
        open_complaint & ~make_good,
    ]
    put_off = (uplift < 0).fillna(False)
    never = pd.Series(False, index=frame.index)
    checks = [
        *hard,
        put_off if ranking == "uplift" else never,
        uplift.isna() if ranking == "uplift" else never,
        frame["churn_probability"] < policy.min_churn_probability if ranking == "risk" else never,
        ~(frame["expected_value"] > 0),
    ]
    reason = pd.Series(None, index=frame.index, dtype=object)
    for words, failed in zip(INELIGIBLE_REASONS, checks, strict=True):
        reason = reason.where(reason.notna() | ~failed, words)
    hard_ok = (
        ~np.logical_or.reduce([check.to_numpy(bool) for check in hard]) if len(frame) else np.zeros(0, bool)
    )
    # exploration never grants to a customer whom a grant is predicted to put off, whatever the ranking
    explorable = hard_ok & ~put_off.to_numpy(bool)

    frame = frame.reset_index(drop=True)
    reason = reason.reset_index(drop=True)
    control = is_holdout(policy.campaign_id, as_of, frame["customer_id"], policy.holdout_share)
    selected = np.zeros(len(frame), bool)
    explored = np.zeros(len(frame), bool)
    used = np.zeros(len(frame), np.int64)
    walk: list[int] = []
    spent = 0
    # 1. exploration: a random prefix of the explorable customers, until its share of the budget
    #    would be exceeded by the next grant (at most that share, even when the budget does not bind)
    explore_left = int(share * policy.budget_points)
    for row in explore_order(policy.campaign_id, as_of, frame["customer_id"]):
        if not explorable[row]:
            continue
        if points[row] > explore_left:
            break
        selected[row] = explored[row] = True
        if not control[row]:
            explore_left -= points[row]
            spent += points[row]
        used[row] = spent
        walk.append(int(row))
    # 2. the ranking's walk spends the rest
    eligible = reason.isna().to_numpy() & ~explored
    ranked = frame[eligible].sort_values(["expected_value", "customer_id"], ascending=[False, True]).index
    for row in ranked:
        if points[row] <= policy.budget_points - spent:
            selected[row] = True
            if not control[row]:
                spent += points[row]
        used[row] = spent
        walk.append(int(row))

    reason[eligible & ~selected] = "over budget"
    reason[explored] = None
    frame["ineligible_reason"] = reason.astype(object).where(reason.notna(), None)
    frame["selected"] = selected
    frame["selection"] = np.where(selected, np.where(explored, "explore", "ranked"), None)
    frame["arm"] = np.where(selected, np.where(control, "control", "treatment"), None)
    frame["budget_used_points"] = pd.array(np.where(selected, used, 0), dtype="Int64")
    frame.loc[~selected, "budget_used_points"] = pd.NA
    frame["decision_rank"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    frame.loc[walk, "decision_rank"] = np.arange(1, len(walk) + 1)
    frame["channel"] = frame["best_channel"].fillna("email")
    frame["expires_at"] = datetime.combine(as_of, datetime.min.time()) + timedelta(days=policy.expiry_days)
    frame["ranking"] = ranking
    frame["redeem_rate"] = rate
    for column in ("selection", "arm"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    # The walk in its order, then everyone else by customer id.
    walked = np.zeros(len(frame), dtype=bool)
    walked[walk] = True
    rest = np.flatnonzero(~walked)
    ids = frame["customer_id"].astype(str).to_numpy(dtype=str)
    rest = rest[np.argsort(ids[rest], kind="stable")]
    return frame.loc[walk + rest.tolist()].reset_index(drop=True)


def select(
    candidates: pd.DataFrame,
    policy: Policy,
    as_of: date,
    ranking: str,
    score: np.ndarray | pd.Series | list[float] | None = None,
    redeem_rate: float | None = None,
) -> pd.DataFrame:
    """The same decision as :func:`decide` with exploration off, ranked as asked: for comparing
    policies on the same candidates, budget and amount rule (devtools/evaluate_policy.py).

    ``ranking``: ``"risk"`` (today's: churn risk x expected save rate, with the risk threshold),
    ``"uplift"`` (expected incremental profit from the candidates' ``predicted_uplift``; a negative
    one is never granted) or ``"score"`` (``score``, highest first, one per candidate in their order
    or a Series by customer_id; a score that is missing or not above 0 is not granted, so give
    a random policy scores in (0, 1)). The hard rules (consent, cooldown, open pre-grant, contact
    cap, complaints) hold under every ranking; ``points`` are the amount rule's under every ranking.
    """
    return decide(candidates, policy, as_of, redeem_rate, ranking=ranking, score=score, explore_share=0.0)


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
    """Counts for the log: candidates, eligible, treated, held out, points, how the selected were
    picked (ranked / explore, with the explored points), the ranking, amount rules, why not."""
    counts = {
        "candidates": len(decisions),
        "eligible": int(decisions["decision_rank"].notna().sum()),
        "treatment": int((decisions["arm"] == "treatment").sum()),
        "control": int((decisions["arm"] == "control").sum()),
        "points_granted": int(decisions.loc[decisions["arm"] == "treatment", "points"].sum()),
    }
    if "selection" in decisions.columns:
        for selection in ("ranked", "explore"):
            picked = decisions["selection"] == selection
            counts[f"{selection}: treatment"] = int((picked & (decisions["arm"] == "treatment")).sum())
            counts[f"{selection}: control"] = int((picked & (decisions["arm"] == "control")).sum())
        explored = (decisions["selection"] == "explore") & (decisions["arm"] == "treatment")
        counts["explore: points"] = int(decisions.loc[explored, "points"].sum())
    if "ranking" in decisions.columns:
        for ranking, count in decisions["ranking"].value_counts().sort_index().items():
            counts[f"ranking: {ranking}"] = int(count)
    treated = decisions[decisions["arm"] == "treatment"]
    for rule, count in treated["amount_rule"].value_counts().sort_index().items():
        counts[f"amount: {rule}"] = int(count)
    for reason, count in decisions["ineligible_reason"].value_counts().items():
        counts[f"not: {reason}"] = int(count)
    return counts

"""The rewards steps of a daily run: claw back expired pre-grants, decide and record new ones,
and prove the ledger balances. Each step is keyed by the run's as-of date and safe to re-run.

The decisions are :mod:`boomerang.rewards.policy`'s; the writes are :mod:`boomerang.rewards.ledger`'s (one
transaction per step, exactly once). This module reads the facts the policy needs from the
warehouse, point in time: only ledger entries of earlier runs and events before the as-of date,
among them the redemption rate it learns from the campaign's closed lots (:func:`learned_redeem_rate`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd

from boomerang.config import Policy, Settings
from boomerang.rewards import ledger, outbox
from boomerang.rewards.policy import decide, message, summarise

log = logging.getLogger(__name__)

# One row per scored customer at the run's date, with what the policy needs to know about them:
# the day's churn scores (every active customer the champion scored) joined to the policy's facts,
# marts.customer_policy_facts, built by the day's dbt build for the same date (it owns what counts
# as an open complaint, a message in the contact window, an earlier decision), and to the day's
# mileage predictions over the grant's window (null for a customer the mileage model did not
# predict, or on a day with no mileage model: the policy's flat rule then decides the amount).
# When several mileage model versions predicted the day, the one that scored last is taken, whole:
# the champion of the moment (a re-promotion re-scores the day), never a mix of two models.
# A prediction over another window than the grant's (the expiry changed since it was scored) is
# not used: miles over 30 days are not a 14-day grant.
# The day's uplift predictions join the same way: the version that scored the day last, whole; with
# none (no uplift champion yet) predicted_uplift is null for everyone and the policy ranks by risk.
CANDIDATES_SQL = """
with
scores as (
    select customer_id, churn_probability, model_version, reason_1, reason_2, reason_3
    from staging.stg_ml__churn_scores
    where as_of_date = $as_of
),
mileage_versions as (
    select model_version, max(scored_at) as scored_at
    from staging.stg_ml__mileage_predictions
    where as_of_date = $as_of and window_days = $window_days
    group by model_version
),
mileage_model as (
    select model_version from mileage_versions order by scored_at desc, model_version desc limit 1
),
predictions as (
    select customer_id, predicted_miles, model_version as mileage_model_version
    from staging.stg_ml__mileage_predictions
    where
        as_of_date = $as_of
        and window_days = $window_days
        and model_version in (select model_version from mileage_model)
),
uplift_versions as (
    select model_version, max(scored_at) as scored_at
    from staging.stg_ml__uplift_predictions
    where as_of_date = $as_of
    group by model_version
),
uplift_model as (
    select model_version from uplift_versions order by scored_at desc, model_version desc limit 1
),
uplift as (
    select customer_id, predicted_uplift, model_version as uplift_model_version
    from staging.stg_ml__uplift_predictions
    where as_of_date = $as_of and model_version in (select model_version from uplift_model)
)
select
    scores.customer_id,
    scores.churn_probability,
    scores.model_version,
    scores.reason_1,
    scores.reason_2,
    scores.reason_3,
    facts.has_marketing_consent,
    facts.tenure_days,
    facts.segment,
    facts.spend_365d,
    facts.best_channel,
    facts.open_complaint_days,
    facts.last_decision_date,
    facts.has_open_pregrant,
    facts.messages_in_window,
    predictions.predicted_miles,
    predictions.mileage_model_version,
    uplift.predicted_uplift,
    uplift.uplift_model_version
from scores
inner join marts.customer_policy_facts as facts on scores.customer_id = facts.customer_id
left join predictions on scores.customer_id = predictions.customer_id
left join uplift on scores.customer_id = uplift.customer_id
order by scores.customer_id
"""


def read_candidates(con: duckdb.DuckDBPyConnection, as_of: date, window_days: int) -> pd.DataFrame:
    """The facts behind the policy for every customer scored at ``as_of`` (empty without scores),
    with the mileage predicted over ``window_days`` (the grant's expiry) and the uplift predicted
    for the day where there are.

    The contact window and the campaign the facts count messages for are the settings' (the dbt
    vars contact_window_days and campaign_id, from ``Settings.dbt_vars()``).
    """
    from boomerang.warehouse.db import table_exists

    for view, what in (
        ("stg_ml__mileage_predictions", "mileage predictions"),
        ("stg_ml__uplift_predictions", "uplift predictions"),
    ):
        if not table_exists(con, "staging", view):
            raise RuntimeError(
                f"staging.{view} does not exist in this warehouse: the policy reads the day's {what} "
                "through it. It is a dbt view: run the daily dbt build "
                f"(boomerang dbt build --as-of {as_of}, or the dbt_build step), then re-run this step."
            )
    candidates = con.execute(CANDIDATES_SQL, {"as_of": as_of, "window_days": window_days}).df()
    if not candidates.empty and candidates["predicted_miles"].isna().all():
        other = con.execute(
            "select list(distinct window_days order by window_days) from staging.stg_ml__mileage_predictions "
            "where as_of_date = ? and window_days <> ?",
            [as_of, window_days],
        ).fetchone()[0]  # type: ignore[index]
        if other:
            log.warning(
                "The mileage predictions for %s cover %s-day windows, not the grant's %d days "
                "(BOOMERANG_GRANT_EXPIRY_DAYS changed since they were scored?): they are not used, "
                "and every grant takes the flat amount. Re-run the predict_mileage step for %s.",
                as_of,
                "/".join(map(str, other)),
                window_days,
                as_of,
            )
    if not candidates.empty:
        [(built_for,)] = con.execute("select max(as_of_date) from marts.customer_policy_facts").fetchall()
        if built_for != as_of:
            raise RuntimeError(
                f"marts.customer_policy_facts describes {built_for}, not {as_of}: the policy would decide "
                f"on another day's facts. Run the daily dbt build for {as_of} first "
                f"(boomerang dbt build --as-of {as_of}, or the dbt_build step), then re-run this step."
            )
    return candidates


# The campaign's closed pre-grant lots (expired by the as-of date, so every redemption they will ever
# have happened before it) and the miles granted and redeemed in them: the ledger's own positions
# (ledger.LOT_POSITIONS_SQL, which marts.fct_pregrant_lots equals), so the rate is point in time and
# needs no dbt build: a re-run of the date learns the very same rate.
CLOSED_LOTS_SQL = f"""
select count(*) as lots, sum(granted_points) as granted, sum(used_points) as redeemed
from ({ledger.LOT_POSITIONS_SQL})
where campaign_id = $campaign_id and is_expired
"""


@dataclass(frozen=True)
class RedeemRate:
    """The share of granted miles the policy expects to be redeemed, and where it comes from."""

    rate: float
    source: str  # 'learned' (the campaign's closed lots) | 'setting' (expected_redeem_rate)
    closed_lots: int
    learned: float | None  # the closed lots' share, even when too few to use

    def describe(self, policy: Policy) -> str:
        if self.source == "learned":
            return f"{self.rate:.3f}, learned from the campaign's {self.closed_lots:,} closed pre-grant lots"
        seen = f" (their share so far: {self.learned:.3f})" if self.learned is not None else ""
        return (
            f"{self.rate:.3f}, BOOMERANG_EXPECTED_REDEEM_RATE: the campaign has {self.closed_lots:,} closed "
            f"pre-grant lot(s){seen}, fewer than BOOMERANG_REDEEM_RATE_MIN_LOTS={policy.redeem_rate_min_lots}"
        )


def learned_redeem_rate(con: duckdb.DuckDBPyConnection, policy: Policy, as_of: date) -> RedeemRate:
    """The share of granted miles redeemed over the campaign's pre-grant lots closed by ``as_of``
    (expired: used + clawed back = granted), once there are at least ``redeem_rate_min_lots``;
    ``expected_redeem_rate`` before. Rounded to 4 places, so the decisions' expected values (in the
    ledger's payload) do not hang on the last bits of a division."""
    lots, granted, redeemed = con.execute(
        CLOSED_LOTS_SQL, {"as_of": as_of, "campaign_id": policy.campaign_id}
    ).fetchone()  # type: ignore[misc]
    learned = round(float(redeemed) / float(granted), 4) if lots and granted else None
    if learned is not None and lots >= policy.redeem_rate_min_lots:
        return RedeemRate(learned, "learned", int(lots), learned)
    return RedeemRate(policy.expected_redeem_rate, "setting", int(lots or 0), learned)


def decision_entries(decisions: pd.DataFrame, policy: Policy, as_of: date) -> list[ledger.Entry]:
    """Ledger entries for the selected customers: a pre-grant for treatment, a holdout for control."""
    effective_at = datetime.combine(as_of, datetime.min.time())
    entries = []
    for row in decisions[decisions["selected"]].to_dict("records"):
        treated = row["arm"] == "treatment"
        key = (ledger.pregrant_key if treated else ledger.holdout_key)(
            policy.campaign_id, row["customer_id"], as_of
        )
        entries.append(
            ledger.Entry(
                entry_key=key,
                kind="pregrant" if treated else "holdout",
                customer_id=row["customer_id"],
                lot_id=key if treated else None,
                points=int(row["points"]) if treated else 0,
                effective_at=effective_at,
                expires_at=row["expires_at"].to_pydatetime() if treated else None,
                campaign_id=policy.campaign_id,
                policy_version=policy.version,
                as_of_date=as_of,
                arm=row["arm"],
                grant_rule=row["grant_rule"],
                churn_probability=round(float(row["churn_probability"]), 6),
                model_version=row["model_version"],
                reason_1=_text(row["reason_1"]),
                reason_2=_text(row["reason_2"]),
                reason_3=_text(row["reason_3"]),
                expected_value=round(float(row["expected_value"]), 4),
                decision_rank=int(row["decision_rank"]),
                budget_used_points=int(row["budget_used_points"]),
                tenure_days=None if pd.isna(row["tenure_days"]) else int(row["tenure_days"]),
                segment=_text(row.get("segment")),
                channel=row["channel"] if treated else None,
                # the amount's record, for the control too: what the policy would have granted
                predicted_miles=_number(row["predicted_miles"]),
                mileage_model_version=_text(row["mileage_model_version"]),
                amount_rule=row["amount_rule"],
                decided_points=int(row["points"]),
                # how the customer was picked, and the uplift the ranking used (null: ranked by risk)
                selection=row["selection"],
                predicted_uplift=_number(row.get("predicted_uplift"), 6),
                uplift_model_version=_text(row.get("uplift_model_version")),
                message=message(row, policy) if treated else None,
            )
        )
    return entries


def _text(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _number(value: object, places: int = 3) -> float | None:
    """A prediction for the record, rounded so its hash does not hang on the last float bits."""
    return None if value is None or pd.isna(value) else round(float(value), places)


def pregrant(settings: Settings, as_of: date) -> dict[str, int]:
    """Decide the run's pre-grants and holdouts and record them with their outbox rows.

    Re-running a date writes nothing new; a re-run that would decide differently (another model's
    scores, changed policy knobs) raises :class:`boomerang.rewards.ledger.LedgerConflictError`.
    """
    from boomerang.warehouse.db import connect
    from boomerang.warehouse.schema import ensure_schemas

    policy = settings.policy
    with connect(settings.warehouse_path) as con:
        ensure_schemas(con)
        candidates = read_candidates(con, as_of, policy.expiry_days)
        if candidates.empty:
            log.warning(
                "No churn scores for %s (no champion model yet?): no pre-grants decided. "
                "Run boomerang_train, then re-run this date.",
                as_of,
            )
        redeem = learned_redeem_rate(con, policy, as_of)
        decisions = decide(candidates, policy, as_of, redeem.rate)
        log.info(
            "Pre-grants for %s: %s; redemption rate %s",
            as_of,
            _ranking_words(decisions),
            redeem.describe(policy),
        )
        entries = decision_entries(decisions, policy, as_of)
        result = ledger.record(con, entries, decision_scope=(policy.campaign_id, as_of), run_date=as_of)
        path = outbox.write_outbox_file(con, settings.outbox_dir, as_of)
    counts = {**summarise(decisions), **result.as_dict()}
    log.info(
        "Pre-grants for %s (policy %s): %s; outbox file %s",
        as_of,
        policy.version,
        ", ".join(f"{key} {value:,}" for key, value in counts.items()),
        path or "(none: nothing to send)",
    )
    return counts


def _ranking_words(decisions: pd.DataFrame) -> str:
    """How the run ranked, in words for the log."""
    if decisions.empty:
        return "no candidates"
    if decisions["ranking"].iloc[0] == "uplift":
        versions = sorted(decisions["uplift_model_version"].dropna().unique())
        return f"ranked by expected incremental profit (uplift model {', '.join(versions)})"
    return (
        "ranked by churn risk (fallback: no uplift predictions for the day, no uplift champion yet; "
        "predicted_uplift is null on every decision)"
    )


def clawback_entries(con: duckdb.DuckDBPyConnection, as_of: date, policy: Policy) -> list[ledger.Entry]:
    """A clawback for each pre-grant lot expired by ``as_of`` with points unused and none yet.

    The amount is what the lot's allocation left unused before its expiry; the entry takes effect
    at the expiry and belongs to the date it fell due, so whichever run records it (the day it is
    due, or a later one after a gap) writes the very same entry.
    """
    entries = []
    for lot in ledger.lot_positions(con, as_of):
        unused = lot["granted_points"] - lot["used_points"]
        if not lot["is_expired"] or lot["clawback_count"] > 0 or unused <= 0:
            continue  # open, already clawed back, or fully used: closed with no entry
        expires_at: datetime = lot["expires_at"]
        last_day = expires_at - timedelta(days=1)  # the last day the gift could be spent
        entries.append(
            ledger.Entry(
                entry_key=ledger.clawback_key(lot["lot_id"]),
                kind="clawback",
                customer_id=lot["customer_id"],
                lot_id=lot["lot_id"],
                points=int(unused),
                effective_at=expires_at,
                campaign_id=lot["campaign_id"],
                policy_version=policy.version,
                as_of_date=expires_at.date(),
                message=f"{unused} unused gift miles expired after {last_day.day} {last_day:%B %Y}.",
            )
        )
    return entries


def clawback_expired(settings: Settings, as_of: date) -> dict[str, int]:
    """Claw back the unused points of every pre-grant lot expired by ``as_of``, exactly once."""
    from boomerang.warehouse.db import connect
    from boomerang.warehouse.schema import ensure_schemas

    with connect(settings.warehouse_path) as con:
        ensure_schemas(con)
        entries = clawback_entries(con, as_of, settings.policy)
        result = ledger.record(con, entries, run_date=as_of)
        path = outbox.write_outbox_file(con, settings.outbox_dir, as_of)
    counts = {
        "lots_clawed_back": len(entries),
        "points_clawed_back": sum(entry.points for entry in entries),
        **result.as_dict(),
    }
    log.info(
        "Clawbacks as of %s: %s; outbox file %s",
        as_of,
        ", ".join(f"{key} {value:,}" for key, value in counts.items()),
        path or "(none)",
    )
    return counts


def check_ledger(settings: Settings, as_of: date) -> dict[str, int]:
    """Check every ledger invariant as of ``as_of``, keep the results in ops.ledger_invariants,
    and raise :class:`boomerang.rewards.ledger.LedgerInvariantError` if any is broken."""
    from boomerang.warehouse.db import connect
    from boomerang.warehouse.schema import ensure_schemas

    with connect(settings.warehouse_path) as con:
        ensure_schemas(con)
        results = ledger.check_invariants(con, as_of)
        ledger.record_invariants(con, as_of, results)
    error = ledger.invariant_error(as_of, results)
    if error is not None:
        raise error
    log.info("Ledger invariants as of %s: all %d hold", as_of, len(results))
    return {result.name: result.violations for result in results}

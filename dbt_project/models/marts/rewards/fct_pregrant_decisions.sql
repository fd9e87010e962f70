-- One row per decision (pre-grant or holdout) taken on or before the run's as-of date: who, why
-- (score, reasons, expected value, rank, budget), what was granted, and for treatment rows what
-- became of the lot by the as-of date. The control rows grant nothing and are never in a lot.
with

ledger_entries as (
    select * from {{ ref('stg_ledger__entries') }}
),

pregrant_lots as (
    select * from {{ ref('fct_pregrant_lots') }}
),

decisions as (
    select * from ledger_entries
    where
        entry_kind in ('pregrant', 'holdout')
        and as_of_date <= {{ as_of_date() }}
),

final as (
    select
        ----------  ids
        decisions.entry_key as decision_id,
        decisions.customer_id,
        decisions.campaign_id,
        pregrant_lots.lot_id,
        ----------  the decision
        decisions.as_of_date as decision_date,
        decisions.arm,
        decisions.selection,
        decisions.grant_rule,
        decisions.channel,
        decisions.points as granted_points,
        ----------  how much: a treatment's amount, a control's would-have-been (by the same rule)
        decisions.amount_rule,
        decisions.decided_points,
        decisions.predicted_miles,
        decisions.mileage_model_version,
        decisions.effective_at,
        decisions.expires_at,
        ----------  why
        decisions.churn_probability,
        decisions.risk_reason_1,
        decisions.risk_reason_2,
        decisions.risk_reason_3,
        decisions.model_version,
        decisions.predicted_uplift,
        decisions.uplift_model_version,
        decisions.expected_value,
        decisions.decision_rank,
        decisions.budget_used_points,
        decisions.tenure_days,
        decisions.segment,
        decisions.policy_version,
        ----------  the lot as of the as-of date (treatment only)
        pregrant_lots.used_points,
        pregrant_lots.clawed_back_points,
        pregrant_lots.outstanding_points,
        pregrant_lots.awaiting_clawback_points,
        pregrant_lots.lot_status,
        {{ as_of_date() }} as as_of_date
    from decisions
    left join pregrant_lots
        on decisions.entry_key = pregrant_lots.lot_id
)

select * from final

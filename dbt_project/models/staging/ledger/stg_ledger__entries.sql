-- One row per ledger entry: a pre-grant (a mileage lot), a holdout (a control decision, nothing
-- granted) or a clawback (what was left of a pre-grant lot at its expiry, taken back).
with

source as (
    select * from {{ source('ledger', 'entries') }}
),

renamed as (
    select
        ----------  ids
        entry_key,
        customer_id,
        lot_id,
        campaign_id,
        ----------  attributes
        kind as entry_kind,
        arm,
        grant_rule,
        channel,
        policy_version,
        model_version,
        ----------  points and the decision's numbers
        cast(points as bigint) as points,
        churn_probability,
        expected_value,
        decision_rank,
        budget_used_points,
        tenure_days,
        segment,
        ----------  how much: the predicted miles, their model, the rule that set the amount
        predicted_miles,
        mileage_model_version,
        amount_rule,
        cast(decided_points as bigint) as decided_points,
        ----------  how the customer was picked: ranked or explored (decisions recorded before
        ----------  exploration existed were all ranked), and the uplift the ranking used
        case
            when kind in ('pregrant', 'holdout') then coalesce(selection, 'ranked')
        end as selection,
        predicted_uplift,
        uplift_model_version,
        ----------  why this customer: the model's top risk reasons
        reason_1 as risk_reason_1,
        reason_2 as risk_reason_2,
        reason_3 as risk_reason_3,
        ----------  timestamps
        effective_at,
        expires_at,
        as_of_date,
        ----------  lineage
        payload_hash,
        recorded_at
    from source
)

select * from renamed

-- One row per decision date with a decision or a clawback, on or before the run's as-of date: the
-- cohort the run decided (treated, held out, granted) and, as of the as-of date, what that cohort
-- redeemed, had clawed back and still holds; plus the clawbacks dated that day (the ledger dates a
-- clawback by the day its lot expired, whichever run recorded it).
with

decisions as (
    select * from {{ ref('fct_pregrant_decisions') }}
),

ledger_entries as (
    select * from {{ ref('stg_ledger__entries') }}
),

cohorts as (
    select
        decision_date,
        count(distinct customer_id) filter (where arm = 'treatment') as customers_treated,
        count(distinct customer_id) filter (where arm = 'control') as customers_held_out,
        -- points are BIGINT (a sum is HUGEINT, which BI drivers read badly); an overflow fails the build
        cast(coalesce(sum(granted_points) filter (where arm = 'treatment'), 0) as bigint) as points_granted,
        cast(coalesce(sum(used_points), 0) as bigint) as points_redeemed,
        cast(coalesce(sum(clawed_back_points), 0) as bigint) as points_clawed_back,
        cast(coalesce(sum(outstanding_points), 0) as bigint) as points_outstanding,
        cast(coalesce(sum(awaiting_clawback_points), 0) as bigint) as points_awaiting_clawback
    from decisions
    group by decision_date
),

clawbacks_recorded as (
    select
        as_of_date as decision_date,
        count(*) as clawbacks_recorded,
        cast(sum(points) as bigint) as clawback_points_recorded
    from ledger_entries
    where
        entry_kind = 'clawback'
        and as_of_date <= {{ as_of_date() }}
    group by as_of_date
),

decision_dates as (
    select decision_date from cohorts
    union
    select decision_date from clawbacks_recorded
),

final as (
    select
        ----------  the run
        decision_dates.decision_date,
        ----------  its cohort
        coalesce(cohorts.customers_treated, 0) as customers_treated,
        coalesce(cohorts.customers_held_out, 0) as customers_held_out,
        coalesce(cohorts.points_granted, 0) as points_granted,
        ----------  the cohort's lots as of the as-of date
        coalesce(cohorts.points_redeemed, 0) as points_redeemed,
        coalesce(cohorts.points_clawed_back, 0) as points_clawed_back,
        coalesce(cohorts.points_outstanding, 0) as points_outstanding,
        coalesce(cohorts.points_awaiting_clawback, 0) as points_awaiting_clawback,
        cohorts.points_redeemed / nullif(cohorts.points_granted, 0) as redemption_rate,
        ----------  the clawbacks dated this day (of earlier cohorts' lots)
        coalesce(clawbacks_recorded.clawbacks_recorded, 0) as clawbacks_recorded,
        coalesce(clawbacks_recorded.clawback_points_recorded, 0) as clawback_points_recorded,
        {{ as_of_date() }} as as_of_date
    from decision_dates
    left join cohorts
        on decision_dates.decision_date = cohorts.decision_date
    left join clawbacks_recorded
        on decision_dates.decision_date = clawbacks_recorded.decision_date
)

select * from final

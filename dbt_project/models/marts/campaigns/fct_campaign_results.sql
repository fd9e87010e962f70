-- One row per campaign, cohort and slice: treated against holdout, what the campaign cost and
-- whether it paid. A cohort is the run (decision date) that decided; cohort 'all' pools every
-- cohort whose retention window is complete. A slice is the whole cohort (dimension 'overall') or
-- one value of an attribute known at the decision: segment, risk band, channel, tenure band or
-- grant size band. The incremental figures come with 95% intervals (normal approximation) and stay
-- empty when the verdict is 'too young' or 'too small' (macros/campaign_measures.sql).
with

outcomes as (
    select * from {{ ref('fct_campaign_outcomes') }}
),

sliced as (
    -- every decision once per dimension, so the slices of a dimension add up to the cohort
    select
        *,
        'overall' as dimension,
        'all' as dimension_value
    from outcomes
    union all
    select
        *,
        'segment' as dimension,
        segment as dimension_value
    from outcomes
    union all
    select
        *,
        'risk_band' as dimension,
        risk_band as dimension_value
    from outcomes
    union all
    select
        *,
        'channel' as dimension,
        channel as dimension_value
    from outcomes
    union all
    select
        *,
        'tenure_band' as dimension,
        tenure_band as dimension_value
    from outcomes
    union all
    select
        *,
        'grant_size_band' as dimension,
        grant_size_band as dimension_value
    from outcomes
),

cohorts as (
    -- each decision counts in its own cohort, and in 'all' once its window is complete: pooling a
    -- window still open with finished ones would understate retention
    select
        campaign_id,
        strftime(decision_date, '%Y-%m-%d') as cohort,
        decision_date,
        dimension,
        dimension_value,
        window_end_date,
        is_window_complete,
        true as is_counted,
        arm,
        is_retained,
        revenue,
        granted_points,
        redeemed_points,
        clawed_back_points,
        redeemed_cost
    from sliced
    union all
    select
        campaign_id,
        'all' as cohort,
        null as decision_date,
        dimension,
        dimension_value,
        null as window_end_date,
        is_window_complete,
        is_window_complete as is_counted,
        arm,
        is_retained,
        revenue,
        granted_points,
        redeemed_points,
        clawed_back_points,
        redeemed_cost
    from sliced
),

arms as (
    select
        campaign_id,
        cohort,
        decision_date,
        dimension,
        dimension_value,
        max(window_end_date) as window_end_date,
        coalesce(bool_and(is_window_complete) filter (where is_counted), false) as is_window_complete,
        {{ campaign_arm_sums('is_counted') }}
    from cohorts
    group by campaign_id, cohort, decision_date, dimension, dimension_value
),

{{ campaign_measures('arms') }},

final as (
    select
        ----------  the slice
        campaign_id,
        cohort,
        decision_date,
        dimension,
        dimension_value,
        ----------  the retention window
        {{ setting('retention_window_days') }} as retention_window_days,
        window_end_date,
        is_window_complete,
        {{ campaign_figures() }},
        {{ as_of_date() }} as as_of_date
    from profits
)

select * from final

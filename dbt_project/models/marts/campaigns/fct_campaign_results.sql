-- One row per campaign, cohort and slice: treated against holdout, what the campaign cost and
-- whether it paid. A cohort is the run (decision date) that decided; cohort 'all' pools every
-- cohort whose retention window is complete. A slice is the whole cohort (dimension 'overall'),
-- one segment or one risk band. The incremental figures come with 95% intervals (normal
-- approximation) and stay empty when the verdict is 'too young' or 'too small'.
{%- set z = 1.96 %}
{%- set min_arm = var('min_arm_customers') %}
with

outcomes as (
    select * from {{ ref('fct_campaign_outcomes') }}
),

sliced as (
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
        ----------  treated
        count(*) filter (where is_counted and arm = 'treatment') as treated_customers,
        count(*) filter (where is_counted and arm = 'treatment' and is_retained) as treated_retained,
        coalesce(sum(revenue) filter (where is_counted and arm = 'treatment'), 0) as treated_revenue,
        var_samp(revenue) filter (where is_counted and arm = 'treatment') as treated_revenue_variance,
        ----------  control
        count(*) filter (where is_counted and arm = 'control') as control_customers,
        count(*) filter (where is_counted and arm = 'control' and is_retained) as control_retained,
        coalesce(sum(revenue) filter (where is_counted and arm = 'control'), 0) as control_revenue,
        var_samp(revenue) filter (where is_counted and arm = 'control') as control_revenue_variance,
        ----------  the miles (treated only: control is never granted)
        coalesce(sum(granted_points) filter (where is_counted and arm = 'treatment'), 0) as points_granted,
        coalesce(sum(redeemed_points) filter (where is_counted and arm = 'treatment'), 0) as points_redeemed,
        coalesce(sum(clawed_back_points) filter (where is_counted and arm = 'treatment'), 0)
            as points_clawed_back,
        coalesce(sum(redeemed_cost) filter (where is_counted and arm = 'treatment'), 0) as redeemed_cost
    from cohorts
    group by campaign_id, cohort, decision_date, dimension, dimension_value
),

rates as (
    select
        *,
        treated_retained / nullif(treated_customers, 0) as treated_retention_rate,
        control_retained / nullif(control_customers, 0) as control_retention_rate,
        treated_revenue / nullif(treated_customers, 0) as treated_revenue_per_customer,
        control_revenue / nullif(control_customers, 0) as control_revenue_per_customer,
        not is_window_complete as is_too_young,
        treated_customers < {{ min_arm }} or control_customers < {{ min_arm }} as is_too_small
    from arms
),

estimates as (
    -- difference of proportions with unpooled variance; difference of means with Welch's
    -- standard error; only where the cohort can conclude
    select
        *,
        case
            when not (is_too_young or is_too_small)
                then treated_retention_rate - control_retention_rate
        end as incremental_retention,
        case
            when not (is_too_young or is_too_small)
                then sqrt(
                        treated_retention_rate * (1 - treated_retention_rate) / treated_customers
                        + control_retention_rate * (1 - control_retention_rate) / control_customers
                    )
        end as retention_standard_error,
        case
            when not (is_too_young or is_too_small)
                then treated_revenue_per_customer - control_revenue_per_customer
        end as incremental_revenue_per_customer,
        case
            when not (is_too_young or is_too_small)
                then sqrt(
                        treated_revenue_variance / treated_customers
                        + control_revenue_variance / control_customers
                    )
        end as revenue_standard_error
    from rates
),

intervals as (
    select
        *,
        incremental_retention - {{ z }} * retention_standard_error as incremental_retention_ci_low,
        incremental_retention + {{ z }} * retention_standard_error as incremental_retention_ci_high,
        incremental_revenue_per_customer - {{ z }} * revenue_standard_error
            as incremental_revenue_per_customer_ci_low,
        incremental_revenue_per_customer + {{ z }} * revenue_standard_error
            as incremental_revenue_per_customer_ci_high
    from estimates
),

profits as (
    -- incremental profit = incremental revenue per customer x margin x treated customers - what
    -- the redeemed miles cost (a known amount: the interval comes from the revenue's alone)
    select
        *,
        incremental_revenue_per_customer * {{ setting('margin_rate') }} * treated_customers - redeemed_cost
            as incremental_profit,
        incremental_revenue_per_customer_ci_low * {{ setting('margin_rate') }} * treated_customers
        - redeemed_cost
            as incremental_profit_ci_low,
        incremental_revenue_per_customer_ci_high * {{ setting('margin_rate') }} * treated_customers
        - redeemed_cost
            as incremental_profit_ci_high
    from intervals
),

final as (
    -- rates to 6 decimals, currency to cents: what a reader needs, and exact enough to test
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
        ----------  treated against holdout
        treated_customers,
        control_customers,
        treated_retained,
        control_retained,
        round(treated_retention_rate, 6) as treated_retention_rate,
        round(control_retention_rate, 6) as control_retention_rate,
        round(treated_revenue, 2) as treated_revenue,
        round(control_revenue, 2) as control_revenue,
        round(treated_revenue_per_customer, 2) as treated_revenue_per_customer,
        round(control_revenue_per_customer, 2) as control_revenue_per_customer,
        ----------  what it cost
        points_granted,
        points_redeemed,
        points_clawed_back,
        round(redeemed_cost, 2) as redeemed_cost,
        ----------  what it brought: incremental figures with their 95% intervals
        round(incremental_retention, 6) as incremental_retention,
        round(incremental_retention_ci_low, 6) as incremental_retention_ci_low,
        round(incremental_retention_ci_high, 6) as incremental_retention_ci_high,
        round(incremental_retention * treated_customers, 2) as incremental_customers_kept,
        round(incremental_retention_ci_low * treated_customers, 2) as incremental_customers_kept_ci_low,
        round(incremental_retention_ci_high * treated_customers, 2) as incremental_customers_kept_ci_high,
        round(incremental_revenue_per_customer, 2) as incremental_revenue_per_customer,
        round(incremental_revenue_per_customer_ci_low, 2) as incremental_revenue_per_customer_ci_low,
        round(incremental_revenue_per_customer_ci_high, 2) as incremental_revenue_per_customer_ci_high,
        round(incremental_profit, 2) as incremental_profit,
        round(incremental_profit_ci_low, 2) as incremental_profit_ci_low,
        round(incremental_profit_ci_high, 2) as incremental_profit_ci_high,
        ----------  the verdicts
        case
            when is_too_young then 'too young'
            when is_too_small then 'too small'
            when incremental_retention_ci_low > 0 then 'incremental'
            when incremental_retention_ci_high < 0 then 'harmful'
            else 'no detectable effect'
        end as verdict,
        case
            when is_too_young then 'too young'
            when is_too_small then 'too small'
            when incremental_profit_ci_low > 0 then 'pays'
            when incremental_profit_ci_high < 0 then 'loses money'
            else 'no detectable profit'
        end as profit_verdict,
        {{ as_of_date() }} as as_of_date
    from profits
)

select * from final

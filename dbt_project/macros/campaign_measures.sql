{#- The comparison of treated against the holdout, in one place: fct_campaign_results (per cohort
    and slice) and fct_campaign_effect_trend (cohorts pooled cumulatively) compute their figures,
    intervals and verdicts with these macros, so the two always agree.

    campaign_arm_sums(counted): the sums per arm, aggregated over rows of fct_campaign_outcomes
    where `counted` holds. Revenue keeps its sum of squares beside its sum, so sums of several
    groups can be added up (a running total over cohorts) and still give the variance.

    campaign_measures(arms): the CTEs `rates`, `estimates`, `intervals` and `profits` over a
    relation `arms` holding those sums plus is_window_complete; use it after a `with ... arms as
    (...),` clause. campaign_figures(): the select list of the figures, rounded, and the verdicts,
    to select from `profits`. -#}
{% macro campaign_arm_sums(counted='true') -%}
        ----------  treated
        count(*) filter (where {{ counted }} and arm = 'treatment') as treated_customers,
        count(*) filter (where {{ counted }} and arm = 'treatment' and is_retained) as treated_retained,
        coalesce(sum(revenue) filter (where {{ counted }} and arm = 'treatment'), 0) as treated_revenue,
        coalesce(sum(revenue * revenue) filter (where {{ counted }} and arm = 'treatment'), 0)
            as treated_revenue_squares,
        ----------  control
        count(*) filter (where {{ counted }} and arm = 'control') as control_customers,
        count(*) filter (where {{ counted }} and arm = 'control' and is_retained) as control_retained,
        coalesce(sum(revenue) filter (where {{ counted }} and arm = 'control'), 0) as control_revenue,
        coalesce(sum(revenue * revenue) filter (where {{ counted }} and arm = 'control'), 0)
            as control_revenue_squares,
        ----------  the miles (treated only: control is never granted); bigint, not a sum's hugeint
        cast(coalesce(sum(granted_points) filter (where {{ counted }} and arm = 'treatment'), 0) as bigint)
            as points_granted,
        cast(coalesce(sum(redeemed_points) filter (where {{ counted }} and arm = 'treatment'), 0) as bigint)
            as points_redeemed,
        cast(coalesce(sum(clawed_back_points) filter (where {{ counted }} and arm = 'treatment'), 0) as bigint)
            as points_clawed_back,
        coalesce(sum(redeemed_cost) filter (where {{ counted }} and arm = 'treatment'), 0) as redeemed_cost
{%- endmacro %}

{% macro campaign_measures(arms) -%}
{%- set z = 1.96 %}
{%- set min_arm = var('min_arm_customers') %}
rates as (
    select
        *,
        treated_retained / nullif(treated_customers, 0) as treated_retention_rate,
        control_retained / nullif(control_customers, 0) as control_retention_rate,
        treated_revenue / nullif(treated_customers, 0) as treated_revenue_per_customer,
        control_revenue / nullif(control_customers, 0) as control_revenue_per_customer,
        -- sample variance from the sums (var_samp's; never below 0 by rounding, none for one customer)
        case
            when treated_customers > 1
                then greatest(
                        0.0,
                        (treated_revenue_squares - treated_revenue * treated_revenue / treated_customers)
                        / (treated_customers - 1)
                    )
        end as treated_revenue_variance,
        case
            when control_customers > 1
                then greatest(
                        0.0,
                        (control_revenue_squares - control_revenue * control_revenue / control_customers)
                        / (control_customers - 1)
                    )
        end as control_revenue_variance,
        not is_window_complete as is_too_young,
        treated_customers < {{ min_arm }} or control_customers < {{ min_arm }} as is_too_small
    from {{ arms }}
),

estimates as (
    -- difference of proportions with unpooled variance; difference of means with Welch's
    -- standard error; only where the comparison can conclude
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
)
{%- endmacro %}

{% macro campaign_figures() -%}
        ----------  treated against holdout (rates to 6 decimals, currency to cents)
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
        end as profit_verdict
{%- endmacro %}

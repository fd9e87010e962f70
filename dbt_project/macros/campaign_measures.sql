{#- The comparison of treated against the holdout, in one place: fct_campaign_results (per cohort,
    pooled over a period and over everything, and per slice) and fct_campaign_effect_trend (cohorts
    pooled cumulatively) compute their figures, intervals and verdicts with these macros, so they
    always agree.

    Everything a figure needs is a sum over customers, per arm (campaign_sums()): customers, the
    outcome y, y squared, the pre-period covariate x, x squared and x times y. Sums of several
    groups add up (a running total over cohorts, a period's cohorts pooled) and still give every
    mean, variance and covariance, so the regression adjustment pools as the raw figures do.

    The regression adjustment (CUPED, as experimentation platforms do; Deng et al. 2013): each
    customer's outcome y is compared net of what their own behaviour before the decision predicts,
    y - theta x, with x the pre-period covariate (retention: purchases in the 90 days before the
    decision; revenue: what they spent in those 90 days, fct_campaign_outcomes) and theta the
    within-arm regression slope pooled over both arms: sum over the arms of cov(x, y) / sum of
    var(x). The arms are randomised, so x has the same mean in both in expectation: the adjusted
    difference (mean y_t - mean y_c) - theta (mean x_t - mean x_c) estimates the same effect as the
    raw one, with the residual variance var(y) - 2 theta cov(x, y) + theta^2 var(x), i.e. (1 - rho^2)
    of the raw one at the best theta. When x does not vary, theta is 0 and the adjusted figures are
    the raw ones.

    campaign_arm_sums(counted): the sums per arm over rows of fct_campaign_outcomes where `counted`.
    campaign_running_sums(window): the same sums, totalled over a window of such rows (cohorts).
    campaign_measures(arms): the CTEs `rates`, `estimates`, `intervals`, `powers` and `profits` over
    a relation `arms` holding those sums, is_window_complete and decisions_per_day (the recent
    decisions of both arms per day, for the days still needed); use it after a
    `with ... arms as (...),` clause. campaign_figures(): the select list of the figures, rounded,
    and the verdicts, to select from `profits`. -#}

{#- (name, expression summed over the rows of fct_campaign_outcomes, type): the sums each arm keeps.
    The covariates are chosen here, once: for retention, the purchases in the 90 days before the
    decision; for revenue, the revenue of those 90 days (the pre-period figures that correlate best
    with the window's outcomes in the simulated world: about 0.25 and 0.35 among active customers). -#}
{% macro campaign_sums() -%}
    {{ return([
        ('customers', '1', 'bigint'),
        ('retained', 'cast(is_retained as integer)', 'bigint'),
        ('revenue', 'revenue', 'double'),
        ('revenue_squares', 'revenue * revenue', 'double'),
        ('retention_covariate', 'pre_purchase_count', 'double'),
        ('retention_covariate_squares', 'pre_purchase_count * pre_purchase_count', 'double'),
        ('retention_covariate_products', 'pre_purchase_count * cast(is_retained as integer)', 'double'),
        ('revenue_covariate', 'pre_revenue', 'double'),
        ('revenue_covariate_squares', 'pre_revenue * pre_revenue', 'double'),
        ('revenue_covariate_products', 'pre_revenue * revenue', 'double'),
    ]) }}
{%- endmacro %}

{#- The sums of the miles (treated only: control is never granted). -#}
{% macro campaign_cost_sums() -%}
    {{ return([
        ('points_granted', 'granted_points', 'bigint'),
        ('points_redeemed', 'redeemed_points', 'bigint'),
        ('points_clawed_back', 'clawed_back_points', 'bigint'),
        ('redeemed_cost', 'redeemed_cost', 'double'),
    ]) }}
{%- endmacro %}

{% macro campaign_arm_sums(counted='true') -%}
    {%- for arm, label in [('treatment', 'treated'), ('control', 'control')] %}
        ----------  {{ label }}
        {%- for name, expression, type in campaign_sums() %}
        cast(coalesce(sum({{ expression }}) filter (where {{ counted }} and arm = '{{ arm }}'), 0) as {{ type }})
            as {{ label }}_{{ name }},
        {%- endfor %}
    {%- endfor %}
        ----------  the miles (treated only: control is never granted); bigint, not a sum's hugeint
    {%- for name, expression, type in campaign_cost_sums() %}
        cast(coalesce(sum({{ expression }}) filter (where {{ counted }} and arm = 'treatment'), 0) as {{ type }})
            as {{ name }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{% macro campaign_running_sums(window) -%}
    {%- for label in ['treated', 'control'] %}
        {%- for name, expression, type in campaign_sums() %}
        cast(sum({{ label }}_{{ name }}) over {{ window }} as {{ type }}) as {{ label }}_{{ name }},
        {%- endfor %}
    {%- endfor %}
    {%- for name, expression, type in campaign_cost_sums() %}
        cast(sum({{ name }}) over {{ window }} as {{ type }}) as {{ name }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- An arm's centred sum of products: n cov(a, b) from the sums of a, b and a x b (n var(a) when
    b is a). -#}
{% macro _centred(label, sum_ab, sum_a, sum_b) -%}
    ({{ label }}_{{ sum_ab }} - {{ label }}_{{ sum_a }} * {{ label }}_{{ sum_b }} / {{ label }}_customers)
{%- endmacro %}

{#- (outcome, sum of y, sum of y squared, covariate x, ddof of the variance): the two outcomes.
    Retention's variance is p (1 - p), divided by n - 0 (the raw interval's, so an adjustment by
    nothing gives the raw interval); revenue's is the sample variance, divided by n - 1 (Welch's). -#}
{% macro _outcomes() -%}
    {{ return([
        ('retention', 'retained', 'retained', 'retention_covariate', 0),
        ('revenue', 'revenue', 'revenue_squares', 'revenue_covariate', 1),
    ]) }}
{%- endmacro %}

{% macro campaign_measures(arms) -%}
{#- z of a two-sided 95% interval; z of 80% power: an effect of (1.96 + 0.841621) standard errors
    is found 80% of the time by a two-sided 5% test - the minimum detectable effect (MDE). -#}
{%- set z = 1.96 %}
{%- set z_power = 0.841621 %}
{%- set min_arm = var('min_arm_customers') %}
{%- set effect = setting('effect_of_interest') %}
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

thetas as (
    -- CUPED's theta per outcome: the within-arm slope of y on x, pooled over both arms; 0 (no
    -- adjustment) when x does not vary (its centred sum of squares is 0 but for rounding)
    select
        *,
        {%- for outcome, y, yy, x, ddof in _outcomes() %}
        case
            when treated_customers > 1 and control_customers > 1
                and {{ _centred('treated', x ~ '_squares', x, x) }} + {{ _centred('control', x ~ '_squares', x, x) }}
                > 1e-9 * (treated_{{ x }}_squares + control_{{ x }}_squares)
                then (
                        {{ _centred('treated', x ~ '_products', x, y) }}
                        + {{ _centred('control', x ~ '_products', x, y) }}
                    ) / (
                        {{ _centred('treated', x ~ '_squares', x, x) }}
                        + {{ _centred('control', x ~ '_squares', x, x) }}
                    )
            else 0.0
        end as {{ outcome }}_theta{{ ',' if not loop.last }}
        {%- endfor %}
    from rates
),

residuals as (
    -- each arm's variance of y - theta x (never below 0 by rounding): the adjusted outcome's
    select
        *,
        {%- for outcome, y, yy, x, ddof in _outcomes() %}
        {%- for label in ['treated', 'control'] %}
        case
            when {{ label }}_customers > 1
                then greatest(
                        0.0,
                        (
                            {{ _centred(label, yy, y, y) }}
                            - 2 * {{ outcome }}_theta * {{ _centred(label, x ~ '_products', x, y) }}
                            + {{ outcome }}_theta * {{ outcome }}_theta * {{ _centred(label, x ~ '_squares', x, x) }}
                        ) / ({{ label }}_customers - {{ ddof }})
                    )
        end as {{ label }}_{{ outcome }}_adjusted_variance{{ ',' if not (loop.last and outcome == 'revenue') }}
        {%- endfor %}
        {%- endfor %}
    from thetas
),

estimates as (
    -- only where the comparison can conclude. Raw: difference of proportions with unpooled variance,
    -- difference of means with Welch's standard error. Adjusted (the headline): the same differences
    -- net of theta x the arms' difference in the covariate, with the residuals' variances.
    select
        *,
        case
            when not (is_too_young or is_too_small)
                then treated_retention_rate - control_retention_rate
        end as incremental_retention_unadjusted,
        case
            when not (is_too_young or is_too_small)
                then sqrt(
                        treated_retention_rate * (1 - treated_retention_rate) / treated_customers
                        + control_retention_rate * (1 - control_retention_rate) / control_customers
                    )
        end as retention_standard_error_unadjusted,
        case
            when not (is_too_young or is_too_small)
                then treated_revenue_per_customer - control_revenue_per_customer
        end as incremental_revenue_per_customer_unadjusted,
        case
            when not (is_too_young or is_too_small)
                then sqrt(
                        treated_revenue_variance / treated_customers
                        + control_revenue_variance / control_customers
                    )
        end as revenue_standard_error_unadjusted,
        case
            when not (is_too_young or is_too_small)
                then treated_retention_rate - control_retention_rate
                    - retention_theta * (
                        treated_retention_covariate / treated_customers
                        - control_retention_covariate / control_customers
                    )
        end as incremental_retention,
        case
            when not (is_too_young or is_too_small)
                then sqrt(
                        treated_retention_adjusted_variance / treated_customers
                        + control_retention_adjusted_variance / control_customers
                    )
        end as retention_standard_error,
        case
            when not (is_too_young or is_too_small)
                then treated_revenue_per_customer - control_revenue_per_customer
                    - revenue_theta * (
                        treated_revenue_covariate / treated_customers
                        - control_revenue_covariate / control_customers
                    )
        end as incremental_revenue_per_customer,
        case
            when not (is_too_young or is_too_small)
                then sqrt(
                        treated_revenue_adjusted_variance / treated_customers
                        + control_revenue_adjusted_variance / control_customers
                    )
        end as revenue_standard_error
    from residuals
),

intervals as (
    select
        *,
        incremental_retention - {{ z }} * retention_standard_error as incremental_retention_ci_low,
        incremental_retention + {{ z }} * retention_standard_error as incremental_retention_ci_high,
        incremental_revenue_per_customer - {{ z }} * revenue_standard_error
            as incremental_revenue_per_customer_ci_low,
        incremental_revenue_per_customer + {{ z }} * revenue_standard_error
            as incremental_revenue_per_customer_ci_high,
        incremental_retention_unadjusted - {{ z }} * retention_standard_error_unadjusted
            as incremental_retention_unadjusted_ci_low,
        incremental_retention_unadjusted + {{ z }} * retention_standard_error_unadjusted
            as incremental_retention_unadjusted_ci_high,
        incremental_revenue_per_customer_unadjusted - {{ z }} * revenue_standard_error_unadjusted
            as incremental_revenue_per_customer_unadjusted_ci_low,
        incremental_revenue_per_customer_unadjusted + {{ z }} * revenue_standard_error_unadjusted
            as incremental_revenue_per_customer_unadjusted_ci_high,
        -- the smallest true effect the comparison finds 80% of the time (two-sided 5% test)
        ({{ z }} + {{ z_power }}) * retention_standard_error as retention_mde,
        ({{ z }} + {{ z_power }}) * revenue_standard_error as revenue_per_customer_mde,
        -- the share of the raw variance the adjustment removed (0: none; negative: it added some)
        1 - retention_standard_error * retention_standard_error
        / nullif(retention_standard_error_unadjusted * retention_standard_error_unadjusted, 0)
            as retention_variance_reduction,
        1 - revenue_standard_error * revenue_standard_error
        / nullif(revenue_standard_error_unadjusted * revenue_standard_error_unadjusted, 0)
            as revenue_variance_reduction
    from estimates
),

scales as (
    -- How many times today's customers (both arms, in today's proportions) it takes to find an
    -- effect of effect_of_interest on retention 80% of the time: (MDE / effect)^2, the standard
    -- error falling with the square root of the customers. Asked where the answer is not in yet:
    -- 'no detectable effect' (from the adjusted standard error) and 'too small' (from the pooled
    -- rate's p (1 - p), 0.25 when it is 0 or 1: too few customers to trust their own variance).
    select
        *,
        case
            when is_too_young then null
            when is_too_small and treated_customers > 0 and control_customers > 0
                then power(({{ z }} + {{ z_power }}) / {{ effect }}, 2)
                    * coalesce(
                        nullif(
                            (treated_retained + control_retained) / (treated_customers + control_customers)
                            * (1 - (treated_retained + control_retained) / (treated_customers + control_customers)),
                            0
                        ),
                        0.25
                    )
                    * (1.0 / treated_customers + 1.0 / control_customers)
            when not is_too_small and incremental_retention_ci_low <= 0 and incremental_retention_ci_high >= 0
                then power(retention_mde / {{ effect }}, 2)
        end as customers_scale
    from intervals
),

powers as (
    select
        *,
        -- both arms grow by the scale, and each reaches min_arm_customers
        case when customers_scale is not null then greatest(
            0, ceil(treated_customers * customers_scale) - treated_customers, {{ min_arm }} - treated_customers
        ) end as more_treated_needed,
        case when customers_scale is not null then greatest(
            0, ceil(control_customers * customers_scale) - control_customers, {{ min_arm }} - control_customers
        ) end as more_control_needed
    from scales
),

profits as (
    -- incremental profit = incremental revenue per customer x margin x treated customers - what
    -- the redeemed miles cost (a known amount: the interval comes from the revenue's alone)
    select
        *,
        cast(ceil((more_treated_needed + more_control_needed) / nullif(decisions_per_day, 0)) as bigint)
            as more_days_needed,
        incremental_revenue_per_customer * {{ setting('margin_rate') }} * treated_customers - redeemed_cost
            as incremental_profit,
        incremental_revenue_per_customer_ci_low * {{ setting('margin_rate') }} * treated_customers
        - redeemed_cost
            as incremental_profit_ci_low,
        incremental_revenue_per_customer_ci_high * {{ setting('margin_rate') }} * treated_customers
        - redeemed_cost
            as incremental_profit_ci_high,
        incremental_revenue_per_customer_unadjusted * {{ setting('margin_rate') }} * treated_customers
        - redeemed_cost
            as incremental_profit_unadjusted
    from powers
)
{%- endmacro %}

{% macro campaign_figures() -%}
{%- set effect = setting('effect_of_interest') %}
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
        ----------  what it brought: incremental figures (adjusted for the pre-period) with 95% intervals
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
        ----------  the same without the adjustment (plain differences), and what the adjustment did
        round(incremental_retention_unadjusted, 6) as incremental_retention_unadjusted,
        round(incremental_retention_unadjusted_ci_low, 6) as incremental_retention_unadjusted_ci_low,
        round(incremental_retention_unadjusted_ci_high, 6) as incremental_retention_unadjusted_ci_high,
        round(incremental_revenue_per_customer_unadjusted, 2) as incremental_revenue_per_customer_unadjusted,
        round(incremental_revenue_per_customer_unadjusted_ci_low, 2)
            as incremental_revenue_per_customer_unadjusted_ci_low,
        round(incremental_revenue_per_customer_unadjusted_ci_high, 2)
            as incremental_revenue_per_customer_unadjusted_ci_high,
        round(incremental_profit_unadjusted, 2) as incremental_profit_unadjusted,
        round(retention_theta, 6) as retention_theta,
        round(revenue_theta, 6) as revenue_theta,
        round(retention_variance_reduction, 6) as retention_variance_reduction,
        round(revenue_variance_reduction, 6) as revenue_variance_reduction,
        ----------  how small an effect it can see, and what it takes to see the one of interest
        round(retention_mde, 6) as retention_mde,
        round(revenue_per_customer_mde, 2) as revenue_per_customer_mde,
        {{ effect }} as effect_of_interest,
        cast(more_treated_needed as bigint) as more_treated_needed,
        cast(more_control_needed as bigint) as more_control_needed,
        round(decisions_per_day, 2) as decisions_per_day,
        more_days_needed,
        ----------  the verdicts
        case
            when is_too_young then 'too young'
            when is_too_small then 'too small'
            when incremental_retention_ci_low > 0 then 'incremental'
            when incremental_retention_ci_high < 0 then 'harmful'
            else 'no detectable effect'
        end as verdict,
        case
            when is_too_young then 'wait: the retention window is still open'
            when is_too_small then 'too early: too few customers to compare yet'
            when incremental_retention_ci_low > 0 then 'the grants kept customers'
            when incremental_retention_ci_high < 0 then 'the grants lost customers'
            when retention_mde > {{ effect }} then 'too early: an effect of interest could still hide in the noise'
            else 'no effect as large as the effect of interest'
        end as verdict_words,
        case
            when is_too_young then 'too young'
            when is_too_small then 'too small'
            when incremental_profit_ci_low > 0 then 'pays'
            when incremental_profit_ci_high < 0 then 'loses money'
            else 'no detectable profit'
        end as profit_verdict
{%- endmacro %}

-- One row per campaign, cohort and slice: treated against holdout, what the campaign cost and
-- whether it paid. A cohort is the run (decision date) that decided; cohort 'all' pools every
-- cohort whose retention window is complete, cohort 'period' those of them decided in the chosen
-- period (settings results_from / results_to; every one by default). A slice is the whole cohort
-- (dimension 'overall') or one value of an attribute known at the decision: segment, risk band,
-- channel, tenure band, grant size band or selection. The incremental figures are adjusted for the
-- customers' pre-period behaviour (CUPED), come with 95% intervals (normal approximation), the raw
-- figures beside them, and stay empty when the verdict is 'too young' or 'too small'; each row says
-- the smallest effect it can detect and, while it cannot tell, how many more customers and days it
-- takes to detect effect_of_interest (macros/campaign_measures.sql).
{%- set results_from = setting('results_from') | string | trim %}
{%- set results_to = setting('results_to') | string | trim %}
{%- set recent_days = 28 %}
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
    union all
    select
        *,
        'selection' as dimension,
        selection as dimension_value
    from outcomes
),

started as (
    -- days since each campaign's first decision, the as-of date included
    select
        campaign_id,
        date_diff('day', min(decision_date), {{ as_of_date() }}) + 1 as campaign_days
    from outcomes
    group by campaign_id
),

recent as (
    -- the decisions (both arms) per day of each slice over the last recent_days days up to the as-of
    -- date, or since the campaign's first decision when it is younger: the pace at which the
    -- customers still needed arrive
    select
        sliced.campaign_id,
        sliced.dimension,
        sliced.dimension_value,
        count(*) filter (
            where sliced.decision_date > {{ as_of_date() }} - {{ recent_days }}
        ) / least({{ recent_days }}, any_value(started.campaign_days)) as decisions_per_day
    from sliced
    inner join started
        on sliced.campaign_id = started.campaign_id
    group by sliced.campaign_id, sliced.dimension, sliced.dimension_value
),

cohorts as (
    -- each decision counts in its own cohort, in 'all' once its window is complete (pooling a window
    -- still open with finished ones would understate retention), and in 'period' when it is also
    -- decided in the chosen period
    select
        campaign_id,
        strftime(decision_date, '%Y-%m-%d') as cohort,
        decision_date,
        decision_date as decided_on,
        dimension,
        dimension_value,
        window_end_date,
        is_window_complete,
        true as is_counted,
        arm,
        is_retained,
        revenue,
        pre_purchase_count,
        pre_revenue,
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
        decision_date as decided_on,
        dimension,
        dimension_value,
        null as window_end_date,
        is_window_complete,
        is_window_complete as is_counted,
        arm,
        is_retained,
        revenue,
        pre_purchase_count,
        pre_revenue,
        granted_points,
        redeemed_points,
        clawed_back_points,
        redeemed_cost
    from sliced
    union all
    select
        campaign_id,
        'period' as cohort,
        null as decision_date,
        decision_date as decided_on,
        dimension,
        dimension_value,
        null as window_end_date,
        is_window_complete,
        is_window_complete
        {%- if results_from %} and decision_date >= date '{{ results_from }}'{% endif %}
        {%- if results_to %} and decision_date <= date '{{ results_to }}'{% endif %} as is_counted,
        arm,
        is_retained,
        revenue,
        pre_purchase_count,
        pre_revenue,
        granted_points,
        redeemed_points,
        clawed_back_points,
        redeemed_cost
    from sliced
),

sums as (
    select
        campaign_id,
        cohort,
        decision_date,
        dimension,
        dimension_value,
        max(window_end_date) as window_end_date,
        min(decided_on) filter (where is_counted) as first_cohort,
        max(decided_on) filter (where is_counted) as last_cohort,
        coalesce(bool_and(is_window_complete) filter (where is_counted), false) as is_window_complete,
        {{ campaign_arm_sums('is_counted') }}
    from cohorts
    group by campaign_id, cohort, decision_date, dimension, dimension_value
),

arms as (
    select
        sums.*,
        recent.decisions_per_day
    from sums
    left join recent
        on sums.campaign_id = recent.campaign_id
            and sums.dimension = recent.dimension
            and sums.dimension_value = recent.dimension_value
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
        ----------  the cohorts pooled (the cohort itself, or those counted in 'all' / 'period')
        first_cohort,
        last_cohort,
        {{ campaign_figures() }},
        {{ as_of_date() }} as as_of_date
    from profits
)

select * from final

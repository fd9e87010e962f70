-- One row per campaign and decision date whose cohort's retention window is complete: the pooled
-- effect of that cohort and every earlier one, treated against holdout, with its 95% interval. How
-- the measured effect and its certainty moved as cohorts matured; the latest row is cohort 'all'
-- of fct_campaign_results. The same figures and verdicts (macros/campaign_measures.sql).
with

outcomes as (
    select * from {{ ref('fct_campaign_outcomes') }}
),

cohort_sums as (
    -- a window closes in decision-date order, so the complete cohorts are a prefix of the dates
    select
        campaign_id,
        decision_date,
        {{ campaign_arm_sums() }}
    from outcomes
    where is_window_complete
    group by campaign_id, decision_date
),

arms as (
    -- running totals over the cohorts: sums (and sums of squares) add up
    select
        campaign_id,
        decision_date,
        count(*) over running as cohorts,
        true as is_window_complete,
        -- the pace of new decisions is today's question (fct_campaign_results), not the trend's
        null::double as decisions_per_day,
        {{ campaign_running_sums('running') }}
    from cohort_sums
    window running as (
        partition by campaign_id
        order by decision_date
        rows between unbounded preceding and current row
    )
),

{{ campaign_measures('arms') }},

final as (
    select
        ----------  the pool: every complete cohort decided on or before decision_date
        campaign_id,
        decision_date,
        cohorts,
        {{ setting('retention_window_days') }} as retention_window_days,
        {{ campaign_figures() }},
        {{ as_of_date() }} as as_of_date
    from profits
)

select * from final

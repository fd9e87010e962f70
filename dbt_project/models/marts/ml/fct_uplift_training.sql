-- Grain: one row per rewards decision (decision_id: a pre-grant to a treated customer or a holdout of
-- a control customer) whose retention window is complete by the run's as-of date
-- (fct_campaign_outcomes.is_window_complete). What the uplift model (ml/uplift.py) learns whom a grant
-- moves from: the point-in-time features as of the decision date (the customer_features macro over
-- the spine of decision dates: only events strictly before the decision), the arm (randomised by the
-- holdout hash), how the customer was picked (ranked or explore), and the outcome in the window:
-- retained, revenue, the cost of the miles redeemed and the profit (margin on revenue - that cost).
-- Built by the weekly training run (tag training), with the training snapshots.
{{ config(tags=['training']) }}
{%- set margin_rate = setting('margin_rate') %}
with

outcomes as (
    select * from {{ ref('fct_campaign_outcomes') }}
    where is_window_complete
),

decision_dates as (
    select distinct decision_date as as_of_date from outcomes
),

decision_features as (
    with as_of_dates as (select * from decision_dates)
    {{ customer_features('as_of_dates') }}
),

training_rows as (
    select
        ----------  ids and the cohort
        outcomes.decision_id,
        outcomes.customer_id,
        outcomes.campaign_id,
        outcomes.decision_date,
        outcomes.window_end_date,
        ----------  the experiment: the arm, and how the customer was picked (entries before the
        ----------  exploring policy were all ranked)
        outcomes.arm,
        coalesce(outcomes.selection, 'ranked') as selection,
        -- the churn risk the decision used: the ranking the uplift model must beat
        outcomes.churn_probability,
        outcomes.grant_size_points as decided_points,
        ----------  the outcome in the retention window
        outcomes.is_retained,
        outcomes.revenue,
        outcomes.redeemed_cost,
        cast({{ margin_rate }} * outcomes.revenue - outcomes.redeemed_cost as double) as profit,
        ----------  the features as of the decision date
        -- sqlfluff reads the names DuckDB's EXCLUDE leaves out as unqualified column references
        decision_features.* exclude (customer_id, as_of_date),  -- noqa: RF02
        {{ as_of_date() }} as as_of_date
    from outcomes
    left join decision_features
        on outcomes.customer_id = decision_features.customer_id
            and outcomes.decision_date = decision_features.as_of_date
)

select * from training_rows

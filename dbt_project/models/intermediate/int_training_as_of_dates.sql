-- One row per as-of date to snapshot for training: every `snapshot_interval_days` back from the run's
-- as-of date, as far as the data reaches (a date needs a full lookback window of history before it).
-- The most recent dates have a horizon that is not fully observed yet; they are kept and marked.
{%- set interval = var('snapshot_interval_days') -%}
{%- set unobserved = (var('churn_horizon_days') + interval - 1) // interval %}
with

transactions as (
    select * from {{ ref('stg_landing__transactions') }}
),

history as (
    select min(occurred_date) as first_event_date
    from transactions
),

candidate_dates as (
    select cast({{ as_of_date() }} - to_days(steps.step * {{ interval }}) as date) as as_of_date
    from range(0, {{ var('training_snapshots') + unobserved }}) as steps (step)
),

dates as (
    select
        candidate_dates.as_of_date,
        candidate_dates.as_of_date + to_days({{ var('churn_horizon_days') }}) <= {{ as_of_date() }}
            as is_label_observed
    from candidate_dates
    cross join history
    where candidate_dates.as_of_date >= history.first_event_date + to_days({{ var('churn_lookback_days') }})
)

select * from dates

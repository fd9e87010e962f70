-- One row per as-of date to snapshot for training: a fixed grid, every `snapshot_interval_days` days
-- counted from 1970-01-01, on or before the run's as-of date, as far back as the data reaches (a date
-- needs a full lookback window of history before it). A fixed grid means the dates do not shift from
-- one run to the next, so a model's test date stays the test date. The most recent dates have a
-- horizon that is not fully observed yet; they are kept and marked.
{%- set interval = var('snapshot_interval_days') -%}
{%- set unobserved = (setting('churn_horizon_days') | int + interval - 1) // interval %}
with

transactions as (
    select * from {{ ref('stg_landing__transactions') }}
),

history as (
    select min(occurred_date) as first_event_date
    from transactions
),

latest_grid_date as (
    select
        cast(
            date '1970-01-01'
            + to_days(({{ as_of_date() }} - date '1970-01-01') // {{ interval }} * {{ interval }}) as date
        ) as grid_date
),

candidate_dates as (
    select cast(latest_grid_date.grid_date - to_days(steps.step * {{ interval }}) as date) as as_of_date
    from latest_grid_date
    cross join range(0, {{ var('training_snapshots') + unobserved }}) as steps (step)
),

dates as (
    select
        candidate_dates.as_of_date,
        candidate_dates.as_of_date + to_days({{ setting('churn_horizon_days') }}) <= {{ as_of_date() }}
            as is_label_observed
    from candidate_dates
    cross join history
    where
        candidate_dates.as_of_date
        >= history.first_event_date + to_days({{ setting('churn_lookback_days') }})
)

select * from dates

-- Grain: one row per as-of date to snapshot for training.
-- The latest is the last date whose churn horizon is fully observed (the run's as-of date minus
-- churn_horizon_days: its label is known, no later date's is), then one every
-- `snapshot_interval_days` days back, `training_snapshots` dates in all, as far back as the data
-- reaches (a date needs a full lookback window, churn_lookback_days, of history before it). The
-- latest is the model's out-of-time test date (ml/data.py), so no fully labelled day is left unused.
-- The three are settings (boomerang.config: BOOMERANG_SNAPSHOT_INTERVAL_DAYS, ..._TRAINING_SNAPSHOTS,
-- ..._CHURN_HORIZON_DAYS), passed to every dbt call.
with

transactions as (
    select * from {{ ref('stg_landing__transactions') }}
),

history as (
    select min(occurred_date) as first_event_date
    from transactions
),

steps as (
    -- days back from the run's as-of date: the horizon, then one interval more per date
    select
        cast(
            {{ setting('churn_horizon_days') }}
            + grid.step * {{ setting('snapshot_interval_days') }} as integer
        ) as days_back
    from range(0, {{ setting('training_snapshots') }}) as grid (step)
),

candidate_dates as (
    select cast({{ as_of_date() }} - to_days(steps.days_back) as date) as as_of_date
    from steps
),

dates as (
    select
        candidate_dates.as_of_date,
        -- true for every date here (the grid starts at the last observed one); kept for the labels
        candidate_dates.as_of_date + to_days({{ setting('churn_horizon_days') }}) <= {{ as_of_date() }}
            as is_label_observed
    from candidate_dates
    cross join history
    where
        candidate_dates.as_of_date
        >= history.first_event_date + to_days({{ setting('churn_lookback_days') }})
)

select * from dates

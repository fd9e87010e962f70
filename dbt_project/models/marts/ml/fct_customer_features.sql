-- One row per customer who signed up before the run's as-of date: the point-in-time features the
-- churn model scores and the policy reads (events strictly before the as-of date only).
with as_of_dates as (
    select {{ as_of_date() }} as as_of_date
)

{{ customer_features('as_of_dates') }}

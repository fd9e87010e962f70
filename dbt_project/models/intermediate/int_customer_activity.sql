-- Grain: one row per customer with a transaction, interaction or mileage event before the run's
-- as-of date (as_of_date, the same on every row): the counts and sums the churn features are made
-- of (fct_customer_features), over the customer's lifetime and the features' windows, and the dates
-- of their purchases. The measures are listed once, in macros/customer_features.sql.
--
-- A daily build moves the previous build forward instead of reading all history: the events of the
-- days since its date enter (the lifetime and each window), the events a window's start passed
-- leave it, and only those days are read (DuckDB skips the rest of each landing table on
-- occurred_at_tz). It rebuilds from all history instead (customer_activity_moved_from says why, in
-- dbt's log) on a first build, `--full-refresh`, a re-run of a date not after its own, and when the
-- landing tables hold more or fewer events before its date than it counted: a back-dated event
-- (an arrival for a day already counted) is never missed. A measure added to the list gets its column
-- (on_schema_change) and a rebuild; tests/warehouse/test_incremental.py holds the moved table equal to
-- a rebuild, day after day.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='customer_id',
    on_schema_change='append_new_columns',
    post_hook=[
        "delete from {{ this }}"
        ~ " where purchases_lifetime + refunds_lifetime + interactions_lifetime + mileage_events_lifetime = 0",
    ],
) }}
{%- set moved_from = customer_activity_moved_from() %}

with as_of_dates as (
    select {{ as_of_date() }} as as_of_date
),

{{ customer_activity_moved(moved_from) if moved_from else customer_activity_rebuilt() }}

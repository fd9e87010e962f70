-- One row per customer per training as-of date (int_training_as_of_dates): active at the date
-- (macros/is_active_customer.sql, as fct_customer_features) and, once the horizon after it is fully observed,
-- churned (no purchase in the `churn_horizon_days` days starting on the date). Rows whose horizon
-- is not yet observed keep is_churned null: they are never silently labelled "churned".
with

as_of_dates as (
    select * from {{ ref('int_training_as_of_dates') }}
),

customers as (
    select * from {{ ref('stg_landing__customers') }}
),

purchases as (
    select * from {{ ref('stg_landing__transactions') }}
    where transaction_kind = 'purchase'
),

population as (
    select
        customers.customer_id,
        as_of_dates.as_of_date,
        as_of_dates.is_label_observed
    from customers
    inner join as_of_dates
        on customers.signup_date < as_of_dates.as_of_date
),

purchases_around as (
    select
        purchases.customer_id,
        as_of_dates.as_of_date,
        max(purchases.occurred_at) filter (where purchases.occurred_at < as_of_dates.as_of_date)
            as last_purchase_before,
        min(purchases.occurred_at) filter (where purchases.occurred_at >= as_of_dates.as_of_date)
            as first_purchase_after
    from purchases
    inner join as_of_dates
        on purchases.occurred_at >= {{ active_since('as_of_dates.as_of_date') }}
            and purchases.occurred_at < as_of_dates.as_of_date + to_days({{ setting('churn_horizon_days') }})
    group by purchases.customer_id, as_of_dates.as_of_date
),

activity as (
    select
        population.*,
        purchases_around.last_purchase_before,
        purchases_around.first_purchase_after,
        {{ is_active_customer('purchases_around.last_purchase_before', 'population.as_of_date') }}
            as is_active
    from population
    left join purchases_around
        on population.customer_id = purchases_around.customer_id
            and population.as_of_date = purchases_around.as_of_date
),

labelled as (
    select
        ----------  keys
        customer_id,
        as_of_date,
        ----------  label
        is_active,
        is_label_observed,
        case
            when not is_active then null
            when not is_label_observed then null
            else first_purchase_after is null
        end as is_churned,
        ----------  evidence
        last_purchase_before,
        first_purchase_after,
        {{ setting('churn_lookback_days') }} as lookback_days,
        {{ setting('churn_horizon_days') }} as horizon_days
    from activity
)

select * from labelled

-- One row per customer per training as-of date (int_training_as_of_dates): active at the date
-- (bought in the lookback window before it) and, once the horizon after it is fully observed,
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
        on purchases.occurred_at >= as_of_dates.as_of_date - to_days({{ var('churn_lookback_days') }})
            and purchases.occurred_at < as_of_dates.as_of_date + to_days({{ var('churn_horizon_days') }})
    group by purchases.customer_id, as_of_dates.as_of_date
),

labelled as (
    select
        ----------  keys
        population.customer_id,
        population.as_of_date,
        ----------  label
        purchases_around.last_purchase_before is not null as is_active,
        population.is_label_observed,
        case
            when purchases_around.last_purchase_before is null then null
            when not population.is_label_observed then null
            else purchases_around.first_purchase_after is null
        end as is_churned,
        ----------  evidence
        purchases_around.last_purchase_before,
        purchases_around.first_purchase_after,
        {{ var('churn_lookback_days') }} as lookback_days,
        {{ var('churn_horizon_days') }} as horizon_days
    from population
    left join purchases_around
        on population.customer_id = purchases_around.customer_id
            and population.as_of_date = purchases_around.as_of_date
)

select * from labelled

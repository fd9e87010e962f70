-- One row per customer who signed up before the run's as-of date, described as of that date.
with

customers as (
    select * from {{ ref('stg_landing__customers') }}
),

transactions as (
    select * from {{ ref('stg_landing__transactions') }}
),

segments as (
    select * from {{ ref('int_customer_segments') }}
),

purchase_history as (
    -- strictly before the as-of date: a re-run of the same date gives the same answer
    select
        customer_id,
        min(occurred_at) filter (where transaction_kind = 'purchase') as first_purchase_at,
        max(occurred_at) filter (where transaction_kind = 'purchase') as last_purchase_at,
        count(*) filter (where transaction_kind = 'purchase') as purchase_count,
        count(*) filter (where transaction_kind = 'refund') as refund_count,
        sum(signed_amount) as lifetime_value
    from transactions
    where occurred_at < {{ as_of_date() }}
    group by customer_id
),

described as (
    select
        ----------  ids
        customers.customer_id,
        ----------  attributes
        customers.region,
        customers.has_marketing_consent,
        case
            when customers.birth_year is null then 'unknown'
            when year({{ as_of_date() }}) - customers.birth_year < 30 then 'under 30'
            when year({{ as_of_date() }}) - customers.birth_year < 45 then '30-44'
            when year({{ as_of_date() }}) - customers.birth_year < 60 then '45-59'
            else '60+'
        end as age_band,
        ----------  segmentation
        segments.segment,
        segments.value_tier,
        ----------  tenure
        customers.signup_date,
        date_diff('day', customers.signup_date, {{ as_of_date() }}) as tenure_days,
        case
            when date_diff('day', customers.signup_date, {{ as_of_date() }}) < 180 then '0-6 months'
            when date_diff('day', customers.signup_date, {{ as_of_date() }}) < 365 then '6-12 months'
            when date_diff('day', customers.signup_date, {{ as_of_date() }}) < 3 * 365 then '1-3 years'
            else '3+ years'
        end as tenure_band,
        ----------  purchases
        purchase_history.first_purchase_at,
        purchase_history.last_purchase_at,
        date_diff('day', cast(purchase_history.last_purchase_at as date), {{ as_of_date() }})
            as days_since_last_purchase,
        coalesce(purchase_history.purchase_count, 0) as purchase_count,
        coalesce(purchase_history.refund_count, 0) as refund_count,
        coalesce(purchase_history.lifetime_value, 0) as lifetime_value,
        coalesce(purchase_history.purchase_count, 0) > 0 as has_purchased,
        ----------  as of
        {{ as_of_date() }} as as_of_date
    from customers
    left join purchase_history
        on customers.customer_id = purchase_history.customer_id
    left join segments
        on customers.customer_id = segments.customer_id
    where customers.signup_date < {{ as_of_date() }}
)

select * from described

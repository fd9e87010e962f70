-- One row per customer at the run's as-of date: the marketing segment (first matching rule of
-- seeds/segment_definitions.csv, by priority) and the value tier (quintile of 365-day spend).
with

features as (
    select * from {{ ref('fct_customer_features') }}
),

tiered as (
    select
        *,
        ntile(5) over (order by spend_365d desc, customer_id asc) as value_quintile
    from features
),

segmented as (
    select
        customer_id,
        as_of_date,
        case
            when tenure_days < 90 then 'new'
            when days_since_last_purchase is null or days_since_last_purchase > 180 then 'lapsed'
            when purchases_365d >= 2 and overdue_ratio > 2 then 'at_risk'
            when value_quintile = 1 and spend_365d > 0 and days_since_last_purchase <= 30 then 'champions'
            when purchases_365d >= 6 and tenure_days >= 365 then 'loyal'
            else 'occasional'
        end as segment,
        case value_quintile
            when 1 then 'top 20%'
            when 2 then '20-40%'
            when 3 then '40-60%'
            when 4 then '60-80%'
            else 'bottom 20%'
        end as value_tier
    from tiered
)

select * from segmented

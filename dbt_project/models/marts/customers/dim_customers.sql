-- One row per customer who signed up before the run's as-of date, described as of that date.
with

customers as (
    select * from {{ ref('stg_landing__customers') }}
),

consents as (
    -- consent as of the as-of date: the latest version recorded before it
    select
        customer_id,
        arg_max(has_marketing_consent, updated_at) as has_marketing_consent
    from {{ ref('stg_landing__customer_versions') }}
    where updated_at < {{ as_of_date() }}
    group by customer_id
),

features as (
    -- purchase history before the as-of date, computed once for every mart that needs it
    select * from {{ ref('fct_customer_features') }}
),

segments as (
    select * from {{ ref('int_customer_segments') }}
),

described as (
    select
        ----------  ids
        customers.customer_id,
        ----------  attributes
        customers.region,
        coalesce(consents.has_marketing_consent, customers.has_marketing_consent) as has_marketing_consent,
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
        features.tenure_days,
        {{ tenure_band('features.tenure_days') }} as tenure_band,
        ----------  purchases
        features.first_purchase_at,
        features.last_purchase_at,
        features.days_since_last_purchase,
        features.purchases_lifetime as purchase_count,
        features.refunds_lifetime as refund_count,
        features.net_spend_lifetime as lifetime_value,
        features.purchases_lifetime > 0 as has_purchased,
        ----------  contact: the message channel they answer best on, among those they were reached on
        case
            when greatest(features.email_sent_90d, features.sms_sent_90d, features.push_sent_90d) = 0
                then null
            when
                features.email_engagement_score
                >= greatest(features.sms_engagement_score, features.push_engagement_score)
                then 'email'
            when features.push_engagement_score >= features.sms_engagement_score then 'push'
            else 'sms'
        end as best_channel,
        ----------  as of
        features.as_of_date
    from customers
    inner join features
        on customers.customer_id = features.customer_id
    left join segments
        on customers.customer_id = segments.customer_id
    left join consents
        on customers.customer_id = consents.customer_id
)

select * from described

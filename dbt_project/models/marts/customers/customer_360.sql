-- One row per customer who signed up before the run's as-of date: everything a marketer filters on
-- in one place (segment, value, recency, churn risk and why, engagement per channel, complaint
-- status, mileage and the miles they are predicted to earn, tenure). No PII.
-- Tagged `scored`: the daily run builds it after scoring customers, so the risk and the predicted
-- mileage are today's.
{{ config(tags=['scored']) }}

with

customers as (
    select * from {{ ref('dim_customers') }}
),

features as (
    select * from {{ ref('fct_customer_features') }}
),

scores as (
    select * from {{ ref('stg_ml__churn_scores') }}
    where as_of_date = {{ as_of_date() }}
),

mileage_predictions as (
    -- the latest prediction of the day (a date predicted again by a new mileage champion keeps the newest)
    select * from {{ ref('stg_ml__mileage_predictions') }}
    where as_of_date = {{ as_of_date() }}
    qualify
        row_number() over (partition by customer_id order by scored_at desc, model_version desc) = 1
),

customer_360 as (
    select
        ----------  who
        customers.customer_id,
        customers.region,
        customers.age_band,
        customers.tenure_band,
        customers.tenure_days,
        customers.has_marketing_consent,
        ----------  segment and value
        customers.segment,
        customers.value_tier,
        customers.lifetime_value,
        features.spend_365d,
        features.purchases_365d,
        features.purchases_90d,
        features.purchases_trend_90d,
        customers.days_since_last_purchase,
        features.overdue_ratio,
        ----------  churn risk (active customers, once a champion model scored them)
        scores.churn_probability,
        scores.risk_band,
        scores.reason_1 as risk_reason_1,
        scores.reason_2 as risk_reason_2,
        scores.reason_3 as risk_reason_3,
        -- each reason's feature: a stable code to count reasons by (the words hold the number)
        scores.reason_1_code as risk_reason_1_code,
        scores.reason_2_code as risk_reason_2_code,
        scores.reason_3_code as risk_reason_3_code,
        ----------  engagement per channel
        features.email_engagement_score,
        features.sms_engagement_score,
        features.push_engagement_score,
        features.app_visits_90d,
        features.web_visits_90d,
        customers.best_channel,
        ----------  complaints
        features.complaints_open,
        features.complaints_365d,
        features.last_satisfaction_score,
        case
            when features.complaints_open > 0 then 'open complaint'
            when features.last_satisfaction_score <= 2 then 'unhappy after complaint'
            when features.complaints_365d > 0 then 'complained, resolved'
            else 'no complaint'
        end as complaint_status,
        ----------  mileage
        features.miles_balance,
        features.miles_expiring_30d,
        ----------  predicted mileage (active customers, once a mileage champion predicted them)
        mileage_predictions.window_days as predicted_window_days,
        mileage_predictions.predicted_purchases,
        mileage_predictions.predicted_spend,
        mileage_predictions.predicted_miles,
        mileage_predictions.predicted_miles_30d,
        mileage_predictions.predicted_miles_60d,
        mileage_predictions.model_version as mileage_model_version,
        ----------  as of
        customers.as_of_date
    from customers
    inner join features
        on customers.customer_id = features.customer_id
    left join scores
        on customers.customer_id = scores.customer_id
    left join mileage_predictions
        on customers.customer_id = mileage_predictions.customer_id
)

select * from customer_360

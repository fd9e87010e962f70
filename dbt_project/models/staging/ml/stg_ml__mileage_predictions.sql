-- One row per customer, as-of date and mileage model version: what the customer's purchases are
-- expected to earn over the pre-grant window (window_days), as ml/mileage.py wrote it. The policy
-- reads the champion's rows for its as-of date; customer_360 shows the latest version's.
with

source as (
    select * from {{ source('ml', 'mileage_predictions') }}
),

renamed as (
    select
        ----------  ids
        customer_id,
        model_version,
        ----------  prediction over the pre-grant window
        window_days,
        predicted_purchases,
        predicted_spend,
        predicted_miles,
        ----------  longer horizons, for reporting
        predicted_miles_30d,
        predicted_miles_60d,
        ----------  dates
        as_of_date,
        scored_at
    from source
)

select * from renamed

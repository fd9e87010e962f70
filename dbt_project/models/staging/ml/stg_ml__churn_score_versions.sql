-- One row per customer, as-of date and model version that scored them: every score as the model
-- wrote it, with the risk band it stored (ml/params.yaml's thresholds). A decision is measured
-- against the very score it used (its model_version); stg_ml__churn_scores keeps only the latest.
with

source as (
    select * from {{ source('ml', 'churn_scores') }}
),

renamed as (
    select
        ----------  ids
        customer_id,
        model_version,
        ----------  score
        churn_probability,
        risk_band,
        reason_1,
        reason_2,
        reason_3,
        -- each reason's feature (ml/features.py): the code to group by
        reason_1_code,
        reason_2_code,
        reason_3_code,
        ----------  dates
        as_of_date,
        scored_at
    from source
)

select * from renamed

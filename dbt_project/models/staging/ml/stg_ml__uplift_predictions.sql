-- One row per customer, as-of date and uplift model version: how much a grant is predicted to change
-- the customer's chance of being retained, as ml/uplift.py wrote it. The policy reads the rows of
-- the version that scored its as-of date last.
with

source as (
    select * from {{ source('ml', 'uplift_predictions') }}
),

renamed as (
    select
        ----------  ids
        customer_id,
        model_version,
        ----------  prediction
        predicted_uplift,
        ----------  dates
        as_of_date,
        scored_at
    from source
)

select * from renamed

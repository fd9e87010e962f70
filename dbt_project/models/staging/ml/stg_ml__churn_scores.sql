-- One row per customer per as-of date: the latest score (a date re-scored by a new champion keeps
-- the newest one), with its risk band and reasons.
with

source as (
    select * from {{ source('ml', 'churn_scores') }}
),

latest as (
    select
        *,
        row_number() over (
            partition by customer_id, as_of_date
            order by scored_at desc, model_version desc
        ) as score_rank
    from source
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
        ----------  dates
        as_of_date,
        scored_at
    from latest
    where score_rank = 1
)

select * from renamed

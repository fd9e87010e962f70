-- One row per customer per as-of date: the latest score (a date re-scored by a new champion keeps
-- the newest one), with its risk band and reasons. Every version's score, renamed from the source,
-- is stg_ml__churn_score_versions; this keeps the latest of them.
with

score_versions as (
    select * from {{ ref('stg_ml__churn_score_versions') }}
),

latest as (
    select *
    from score_versions
    qualify
        row_number() over (
            partition by customer_id, as_of_date
            order by scored_at desc, model_version desc
        ) = 1
)

select * from latest

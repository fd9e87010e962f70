-- One row per customer per training as-of date: the point-in-time features and the churn label,
-- for every date of int_training_as_of_dates in one set-based query (not one dbt run per date).
-- Train on rows that are is_active and is_label_observed.
with as_of_dates as (
    select as_of_date from {{ ref('int_training_as_of_dates') }}
),

snapshot_features as (
    with as_of_dates as (select * from as_of_dates)
    {{ customer_features('as_of_dates') }}
),

labels as (
    select * from {{ ref('fct_churn_labels') }}
),

snapshots as (
    select
        -- is_active comes with the features: the same rule (macros/is_active_customer.sql) as the labels'
        snapshot_features.*,
        labels.is_label_observed,
        labels.is_churned
    from snapshot_features
    inner join labels
        on snapshot_features.customer_id = labels.customer_id
            and snapshot_features.as_of_date = labels.as_of_date
)

select * from snapshots

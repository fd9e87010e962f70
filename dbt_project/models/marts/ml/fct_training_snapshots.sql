-- One row per customer per training as-of date: the point-in-time features, the churn label and
-- the mileage labels (fct_mileage_labels), for every date of int_training_as_of_dates in one
-- set-based query (not one dbt run per date). The churn model trains on rows that are is_active and
-- is_label_observed; the mileage model on is_active rows whose window is observed.
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

mileage_labels as (
    select * from {{ ref('fct_mileage_labels') }}
),

snapshots as (
    select
        -- is_active comes with the features: the same rule (macros/is_active_customer.sql) as the labels'
        snapshot_features.*,
        labels.is_label_observed,
        labels.is_churned,
        ----------  mileage labels: what the customer earned, spent and on how many days they bought
        ----------  in the pre-grant window (window_days), 30 and 60 days from the date
        {% for window in ['in_window', 'next_30d', 'next_60d'] %}
            mileage_labels.is_observed_{{ window }},
            mileage_labels.miles_{{ window }},
            mileage_labels.spend_{{ window }},
            mileage_labels.purchase_days_{{ window }},
        {% endfor %}
        mileage_labels.window_days
    from snapshot_features
    inner join labels
        on snapshot_features.customer_id = labels.customer_id
            and snapshot_features.as_of_date = labels.as_of_date
    left join mileage_labels
        on snapshot_features.customer_id = mileage_labels.customer_id
            and snapshot_features.as_of_date = mileage_labels.as_of_date
)

select * from snapshots

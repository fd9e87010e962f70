-- One row per customer who signed up before the run's as-of date: the point-in-time features the
-- churn model scores and the policy reads (events strictly before the as-of date only). The
-- activity (counts and sums over the windows) comes moved forward to the date by
-- int_customer_activity; the state (tenure, complaints, the mileage balance) is read here.
with as_of_dates as (
    select {{ as_of_date() }} as as_of_date
),

{{ customer_state_features('as_of_dates') }},

activity as (
    select
        customer_id,
        {% for column in customer_activity_columns() %}
            {{ column }},
        {% endfor %}
        -- built for another date (a dbt call that selected this model without it): fail, never mix dates
        case
            when as_of_date = {{ as_of_date() }} then as_of_date
            else
                error(
                    'int_customer_activity holds the activity as of ' || as_of_date
                    || ', not the run''s date: build them together, e.g. '
                    || 'boomerang dbt build --as-of <date> --select int_customer_activity+'
                )
        end as as_of_date
    from {{ ref('int_customer_activity') }}
),

{{ customer_features_select() }}

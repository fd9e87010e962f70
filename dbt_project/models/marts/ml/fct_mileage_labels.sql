-- One row per customer per training as-of date (int_training_as_of_dates, customers who signed up
-- before it): the miles they earned, what they spent and on how many days they bought in the windows
-- starting on the date: the pre-grant window (grant_expiry_days, the grant's expiry), 30 and 60 days.
-- A window is observed when it ends on or before the run's as-of date; until then its figures stay
-- null, never a silent 0. The mileage model (ml/mileage.py) learns from these.
{%- set windows = {'in_window': setting('grant_expiry_days') | int, 'next_30d': 30, 'next_60d': 60} %}
{%- set longest = windows.values() | max %}
with

as_of_dates as (
    select as_of_date from {{ ref('int_training_as_of_dates') }}
),

customers as (
    select * from {{ ref('stg_landing__customers') }}
),

purchases as (
    select * from {{ ref('stg_landing__transactions') }}
    where transaction_kind = 'purchase'
),

earnings as (
    select * from {{ ref('stg_landing__mileage_events') }}
    where mileage_event_kind = 'earn'
),

population as (
    select
        customers.customer_id,
        as_of_dates.as_of_date
    from customers
    inner join as_of_dates
        on customers.signup_date < as_of_dates.as_of_date
),

purchases_after as (
    -- window w counts [as_of_date, as_of_date + w days): the as-of date's own purchases are the
    -- first the features do not see
    select
        {% for name, days in windows.items() %}
            sum(purchases.amount) filter (
                where purchases.occurred_at < as_of_dates.as_of_date + to_days({{ days }})
            ) as spend_{{ name }},
            count(distinct cast(purchases.occurred_at as date)) filter (
                where purchases.occurred_at < as_of_dates.as_of_date + to_days({{ days }})
            ) as purchase_days_{{ name }},
        {% endfor %}
        purchases.customer_id,
        as_of_dates.as_of_date
    from purchases
    inner join as_of_dates
        on purchases.occurred_at >= as_of_dates.as_of_date
            and purchases.occurred_at < as_of_dates.as_of_date + to_days({{ longest }})
    group by purchases.customer_id, as_of_dates.as_of_date
),

earnings_after as (
    select
        {% for name, days in windows.items() %}
            sum(earnings.points) filter (
                where earnings.occurred_at < as_of_dates.as_of_date + to_days({{ days }})
            ) as miles_{{ name }},
        {% endfor %}
        earnings.customer_id,
        as_of_dates.as_of_date
    from earnings
    inner join as_of_dates
        on earnings.occurred_at >= as_of_dates.as_of_date
            and earnings.occurred_at < as_of_dates.as_of_date + to_days({{ longest }})
    group by earnings.customer_id, as_of_dates.as_of_date
),

labelled as (
    select
        ----------  keys
        population.customer_id,
        population.as_of_date,
        {% for name, days in windows.items() %}
        ----------  {{ name }}: {{ days }} days from the as-of date
            population.as_of_date + to_days({{ days }}) <= {{ as_of_date() }} as is_observed_{{ name }},
            case
                when is_observed_{{ name }}
                    then cast(coalesce(earnings_after.miles_{{ name }}, 0) as bigint)
            end as miles_{{ name }},
            case
                when is_observed_{{ name }}
                    then cast(coalesce(purchases_after.spend_{{ name }}, 0) as decimal(18, 2))
            end as spend_{{ name }},
            case
                when is_observed_{{ name }}
                    then coalesce(purchases_after.purchase_days_{{ name }}, 0)
            end as purchase_days_{{ name }},
        {% endfor %}
        {{ windows['in_window'] }} as window_days
    from population
    left join purchases_after
        on population.customer_id = purchases_after.customer_id
            and population.as_of_date = purchases_after.as_of_date
    left join earnings_after
        on population.customer_id = earnings_after.customer_id
            and population.as_of_date = earnings_after.as_of_date
)

select * from labelled

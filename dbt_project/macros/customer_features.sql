{#-
    Point-in-time customer features for every as-of date in `spine` (a CTE or relation with one
    column, as_of_date): one row per customer who signed up before the date, per date. Every
    feature uses only events strictly before its as-of date, so features for a past date never
    move when later events arrive, and many dates are one set-based query.

    Use it after a `with <spine> as (...)` clause:
        with as_of_dates as (select ... as as_of_date)
        {{ customer_features('as_of_dates') }}
-#}
{% macro customer_features(spine) %}
,

feature_customers as (
    select * from {{ ref('stg_landing__customers') }}
),

feature_transactions as (
    select * from {{ ref('stg_landing__transactions') }}
),

feature_purchase_days as (
    -- one row per customer per day with a purchase: the unit of the customer-base models (BG/NBD counts
    -- repeat purchase days, Gamma-Gamma averages their spend), so that a basket split in two is one purchase
    select
        customer_id,
        cast(occurred_at as date) as occurred_date,
        sum(amount) as day_spend
    from feature_transactions
    where transaction_kind = 'purchase'
    group by customer_id, cast(occurred_at as date)
),

feature_interactions as (
    select * from {{ ref('stg_landing__interactions') }}
),

feature_complaints as (
    select * from {{ ref('stg_landing__complaints') }}
),

feature_mileage_events as (
    select * from {{ ref('stg_landing__mileage_events') }}
),

feature_lots as (
    select * from {{ ref('int_mileage_lots') }}
),

feature_allocations as (
    select * from {{ ref('int_mileage_redemption_allocations') }}
    where lot_id is not null
),

population as (
    select
        feature_customers.customer_id,
        {{ spine }}.as_of_date,
        date_diff('day', feature_customers.signup_date, {{ spine }}.as_of_date) as tenure_days
    from feature_customers
    inner join {{ spine }}
        on feature_customers.signup_date < {{ spine }}.as_of_date
),

purchase_features as (
    select
        feature_transactions.customer_id,
        {{ spine }}.as_of_date,
        max(feature_transactions.occurred_at) filter (where transaction_kind = 'purchase') as last_purchase_at,
        min(feature_transactions.occurred_at) filter (where transaction_kind = 'purchase') as first_purchase_at,
        -- the two newest purchases, newest first: the last gap between purchases, without sorting them all
        max(feature_transactions.occurred_at, 2) filter (where transaction_kind = 'purchase') as last_two_purchases_at,
        count(*) filter (where transaction_kind = 'purchase') as purchases_lifetime,
        count(*) filter (where transaction_kind = 'refund') as refunds_lifetime,
        {% for days in [30, 90, 365] %}
        count(*) filter (
            where transaction_kind = 'purchase'
            and feature_transactions.occurred_at >= {{ spine }}.as_of_date - to_days({{ days }})
        ) as purchases_{{ days }}d,
        coalesce(sum(amount) filter (
            where transaction_kind = 'purchase'
            and feature_transactions.occurred_at >= {{ spine }}.as_of_date - to_days({{ days }})
        ), 0) as spend_{{ days }}d,
        {% endfor %}
        count(*) filter (
            where transaction_kind = 'purchase'
            and feature_transactions.occurred_at >= {{ spine }}.as_of_date - to_days(180)
            and feature_transactions.occurred_at < {{ spine }}.as_of_date - to_days(90)
        ) as purchases_prior_90d,
        coalesce(sum(amount) filter (
            where transaction_kind = 'purchase'
            and feature_transactions.occurred_at >= {{ spine }}.as_of_date - to_days(180)
            and feature_transactions.occurred_at < {{ spine }}.as_of_date - to_days(90)
        ), 0) as spend_prior_90d,
        coalesce(sum(amount) filter (
            where transaction_kind = 'refund'
            and feature_transactions.occurred_at >= {{ spine }}.as_of_date - to_days(365)
        ), 0) as refunds_365d,
        {% for channel in ['store', 'online', 'app'] %}
        count(*) filter (
            where transaction_kind = 'purchase' and channel = '{{ channel }}'
            and feature_transactions.occurred_at >= {{ spine }}.as_of_date - to_days(365)
        ) as purchases_{{ channel }}_365d,
        {% endfor %}
        sum(signed_amount) as net_spend_lifetime
    from feature_transactions
    inner join {{ spine }}
        on feature_transactions.occurred_at < {{ spine }}.as_of_date
    group by feature_transactions.customer_id, {{ spine }}.as_of_date
),

customer_base_features as (
    -- the RFM summary of the customer-base models (ml/clv.py): frequency, recency and age in days
    select
        feature_purchase_days.customer_id,
        {{ spine }}.as_of_date,
        count(*) as purchase_days_lifetime,
        min(feature_purchase_days.occurred_date) as first_purchase_date,
        max(feature_purchase_days.occurred_date) as last_purchase_date,
        -- spend after the first purchase day, per repeat day (Gamma-Gamma leaves the first one out)
        (sum(feature_purchase_days.day_spend) - arg_min(feature_purchase_days.day_spend, feature_purchase_days.occurred_date))
        / nullif(count(*) - 1, 0) as repeat_spend_per_day
    from feature_purchase_days
    inner join {{ spine }}
        on feature_purchase_days.occurred_date < {{ spine }}.as_of_date
    group by feature_purchase_days.customer_id, {{ spine }}.as_of_date
),

engagement_features as (
    select
        feature_interactions.customer_id,
        {{ spine }}.as_of_date,
        {% for channel in ['email', 'sms', 'push'] %}
        count(*) filter (where channel = '{{ channel }}' and interaction_kind = 'sent') as {{ channel }}_sent_90d,
        count(*) filter (where channel = '{{ channel }}' and interaction_kind = 'opened') as {{ channel }}_opened_90d,
        count(*) filter (where channel = '{{ channel }}' and interaction_kind = 'clicked') as {{ channel }}_clicked_90d,
        {% endfor %}
        count(*) filter (where channel = 'app' and interaction_kind = 'visit') as app_visits_90d,
        count(*) filter (where channel = 'web' and interaction_kind = 'visit') as web_visits_90d,
        count(*) filter (where channel = 'store' and interaction_kind = 'visit') as store_visits_90d,
        count(*) filter (where interaction_kind = 'call') as calls_90d
    from feature_interactions
    inner join {{ spine }}
        on feature_interactions.occurred_at_tz < {{ spine }}.as_of_date
        and feature_interactions.occurred_at_tz >= {{ spine }}.as_of_date - to_days(90)
    group by feature_interactions.customer_id, {{ spine }}.as_of_date
),

complaint_features as (
    select
        feature_complaints.customer_id,
        {{ spine }}.as_of_date,
        count(*) filter (
            where opened_at >= {{ spine }}.as_of_date - to_days(365)
        ) as complaints_365d,
        count(*) filter (
            where {{ is_open_complaint('opened_at', 'resolved_at', spine ~ '.as_of_date') }}
        ) as complaints_open,
        median(date_diff('hour', opened_at, resolved_at) / 24.0) filter (
            where resolved_at < {{ spine }}.as_of_date
            and opened_at >= {{ spine }}.as_of_date - to_days(365)
        ) as median_resolution_days_365d,
        arg_max(satisfaction_score, resolved_at) filter (
            where resolved_at < {{ spine }}.as_of_date and satisfaction_score is not null
        ) as last_satisfaction_score
    from feature_complaints
    inner join {{ spine }}
        on feature_complaints.opened_at < {{ spine }}.as_of_date
    group by feature_complaints.customer_id, {{ spine }}.as_of_date
),

mileage_flow_features as (
    select
        feature_mileage_events.customer_id,
        {{ spine }}.as_of_date,
        coalesce(sum(points) filter (where mileage_event_kind = 'earn'), 0) as miles_earned_365d,
        coalesce(sum(points) filter (where mileage_event_kind = 'redeem'), 0) as miles_redeemed_365d
    from feature_mileage_events
    inner join {{ spine }}
        on feature_mileage_events.occurred_at_tz < {{ spine }}.as_of_date
        and feature_mileage_events.occurred_at_tz >= {{ spine }}.as_of_date - to_days(365)
    group by feature_mileage_events.customer_id, {{ spine }}.as_of_date
),

lot_usage as (
    select
        feature_allocations.lot_id,
        {{ spine }}.as_of_date,
        sum(feature_allocations.allocated_points) as used_points
    from feature_allocations
    inner join {{ spine }}
        on feature_allocations.redeemed_at < {{ spine }}.as_of_date
    group by feature_allocations.lot_id, {{ spine }}.as_of_date
),

mileage_balance_features as (
    select
        feature_lots.customer_id,
        {{ spine }}.as_of_date,
        sum(feature_lots.granted_points - coalesce(lot_usage.used_points, 0)) as miles_balance,
        coalesce(sum(feature_lots.granted_points - coalesce(lot_usage.used_points, 0)) filter (
            where feature_lots.expires_at < {{ spine }}.as_of_date + to_days(30)
        ), 0) as miles_expiring_30d
    from feature_lots
    inner join {{ spine }}
        on feature_lots.granted_at < {{ spine }}.as_of_date
        and feature_lots.expires_at > {{ spine }}.as_of_date
    left join lot_usage
        on feature_lots.lot_id = lot_usage.lot_id
        and {{ spine }}.as_of_date = lot_usage.as_of_date
    group by feature_lots.customer_id, {{ spine }}.as_of_date
),

features as (
    select
        ----------  keys
        population.customer_id,
        population.as_of_date,
        ----------  tenure and recency
        population.tenure_days,
        date_diff('day', cast(purchase_features.last_purchase_at as date), population.as_of_date)
            as days_since_last_purchase,
        {{ is_active_customer('purchase_features.last_purchase_at', 'population.as_of_date') }} as is_active,
        ----------  purchases and spend: money DECIMAL(18, 2) and miles BIGINT, as the raw columns (a sum
        ----------  widens to DECIMAL(38, 2) / HUGEINT, which BI drivers read badly); an overflow fails
        purchase_features.first_purchase_at,
        purchase_features.last_purchase_at,
        coalesce(purchase_features.purchases_lifetime, 0) as purchases_lifetime,
        coalesce(purchase_features.refunds_lifetime, 0) as refunds_lifetime,
        coalesce(purchase_features.purchases_30d, 0) as purchases_30d,
        coalesce(purchase_features.purchases_90d, 0) as purchases_90d,
        coalesce(purchase_features.purchases_365d, 0) as purchases_365d,
        cast(coalesce(purchase_features.spend_30d, 0) as decimal(18, 2)) as spend_30d,
        cast(coalesce(purchase_features.spend_90d, 0) as decimal(18, 2)) as spend_90d,
        cast(coalesce(purchase_features.spend_365d, 0) as decimal(18, 2)) as spend_365d,
        cast(coalesce(purchase_features.net_spend_lifetime, 0) as decimal(18, 2)) as net_spend_lifetime,
        ----------  trend: the last 90 days against the 90 before
        coalesce(purchase_features.purchases_90d, 0) - coalesce(purchase_features.purchases_prior_90d, 0)
            as purchases_trend_90d,
        cast(coalesce(purchase_features.spend_90d, 0) - coalesce(purchase_features.spend_prior_90d, 0)
            as decimal(18, 2)) as spend_trend_90d,
        ----------  the customer-base models' summary (ml/clv.py), in purchase days: BG/NBD's frequency
        ----------  (repeat days), recency (first to last day) and age (first day to the as-of date),
        ----------  Gamma-Gamma's monetary value; empty for a customer who never bought
        coalesce(customer_base_features.purchase_days_lifetime, 0) as purchase_days_lifetime,
        customer_base_features.purchase_days_lifetime - 1 as repeat_purchase_days,
        cast(date_diff('day', customer_base_features.first_purchase_date, customer_base_features.last_purchase_date)
            as integer) as clv_recency_days,
        cast(date_diff('day', customer_base_features.first_purchase_date, population.as_of_date)
            as integer) as clv_age_days,
        cast(customer_base_features.repeat_spend_per_day as decimal(18, 2)) as repeat_spend_per_day,
        ----------  rhythm: the days between consecutive purchases (calendar days, so their sum is the days
        ----------  from the first purchase to the last: the average needs no sort), and the last such gap
        date_diff('day', purchase_features.first_purchase_at, purchase_features.last_purchase_at)
        / nullif(purchase_features.purchases_lifetime - 1, 0) as avg_gap_days,
        date_diff('day', purchase_features.last_two_purchases_at[2], purchase_features.last_two_purchases_at[1])
            as last_gap_days,
        date_diff('day', cast(purchase_features.last_purchase_at as date), population.as_of_date)
        / nullif(
            date_diff('day', purchase_features.first_purchase_at, purchase_features.last_purchase_at)
            / nullif(purchase_features.purchases_lifetime - 1, 0),
            0
        ) as overdue_ratio,
        ----------  refunds and channels (365 days)
        coalesce(purchase_features.refunds_365d, 0) / nullif(purchase_features.spend_365d, 0) as refund_share_365d,
        {% for channel in ['store', 'online', 'app'] %}
        coalesce(purchase_features.purchases_{{ channel }}_365d, 0)
        / nullif(purchase_features.purchases_365d, 0) as {{ channel }}_purchase_share_365d,
        {% endfor %}
        ----------  mileage
        cast(coalesce(mileage_flow_features.miles_earned_365d, 0) as bigint) as miles_earned_365d,
        cast(coalesce(mileage_flow_features.miles_redeemed_365d, 0) as bigint) as miles_redeemed_365d,
        cast(coalesce(mileage_balance_features.miles_balance, 0) as bigint) as miles_balance,
        cast(coalesce(mileage_balance_features.miles_expiring_30d, 0) as bigint) as miles_expiring_30d,
        -- the earn rule as observed: miles per unit of spend over 365 days (empty without spend)
        cast(coalesce(mileage_flow_features.miles_earned_365d, 0) as double)
        / nullif(purchase_features.spend_365d, 0) as miles_per_spend_365d,
        ----------  engagement per channel (90 days); score = (opens + 2 clicks) / 3 (sends + 2), in [0, 1]
        {% for channel in ['email', 'sms', 'push'] %}
        coalesce(engagement_features.{{ channel }}_sent_90d, 0) as {{ channel }}_sent_90d,
        engagement_features.{{ channel }}_opened_90d / nullif(engagement_features.{{ channel }}_sent_90d, 0)
            as {{ channel }}_open_rate_90d,
        engagement_features.{{ channel }}_clicked_90d / nullif(engagement_features.{{ channel }}_sent_90d, 0)
            as {{ channel }}_click_rate_90d,
        -- capped at 1: an open in the window can belong to a message sent just before it
        least(
            1.0,
            (coalesce(engagement_features.{{ channel }}_opened_90d, 0) + 2 * coalesce(engagement_features.{{ channel }}_clicked_90d, 0))
            / (3.0 * (coalesce(engagement_features.{{ channel }}_sent_90d, 0) + 2))
        ) as {{ channel }}_engagement_score,
        {% endfor %}
        coalesce(engagement_features.app_visits_90d, 0) as app_visits_90d,
        coalesce(engagement_features.web_visits_90d, 0) as web_visits_90d,
        coalesce(engagement_features.store_visits_90d, 0) as store_visits_90d,
        coalesce(engagement_features.calls_90d, 0) as calls_90d,
        ----------  complaints
        coalesce(complaint_features.complaints_365d, 0) as complaints_365d,
        coalesce(complaint_features.complaints_open, 0) as complaints_open,
        complaint_features.median_resolution_days_365d,
        complaint_features.last_satisfaction_score
    from population
    left join purchase_features
        on population.customer_id = purchase_features.customer_id
        and population.as_of_date = purchase_features.as_of_date
    left join customer_base_features
        on population.customer_id = customer_base_features.customer_id
        and population.as_of_date = customer_base_features.as_of_date
    left join engagement_features
        on population.customer_id = engagement_features.customer_id
        and population.as_of_date = engagement_features.as_of_date
    left join complaint_features
        on population.customer_id = complaint_features.customer_id
        and population.as_of_date = complaint_features.as_of_date
    left join mileage_flow_features
        on population.customer_id = mileage_flow_features.customer_id
        and population.as_of_date = mileage_flow_features.as_of_date
    left join mileage_balance_features
        on population.customer_id = mileage_balance_features.customer_id
        and population.as_of_date = mileage_balance_features.as_of_date
)

select * from features
{% endmacro %}

{#-
    Point-in-time customer features: one row per customer who signed up before an as-of date, per
    date. Every feature uses only events strictly before its as-of date, so features for a past date
    never move when later events arrive.

    They are built in two halves:

    * the customer's **activity**: counts and sums of their transactions, interactions and mileage
      events, over their lifetime and over the features' windows (customer_activity_measures lists
      the additive ones), and the dates of their purchases;
    * the **state** at the date: tenure, open complaints, the mileage balance; and the features in
      words of both (customer_features_select: rates, shares, recency, the rhythm).

    For many dates (the training snapshots) both halves are one set-based query:
        with as_of_dates as (select ... as as_of_date)
        {{ customer_features('as_of_dates') }}
    For the run's date, the activity is int_customer_activity, which a daily build moves forward
    from yesterday's instead of reading all history (fct_customer_features).
-#}
{% macro customer_features(spine) %}
,

{{ customer_activity_sources() }},

{{ customer_state_features(spine) }},

{{ customer_activity(spine, 'population') }},

{{ customer_features_select() }}
{% endmacro %}


{#-
    The additive activity measures: name, source (transactions | interactions | mileage_events), the
    value summed (none: rows counted), the rows' condition, and the window in days back from the
    as-of date: [start, end) means events at or after as_of - start and before as_of - end (none:
    the lifetime). One definition for the set-based query (customer_activity_measure) and for moving
    the activity forward a day (customer_activity_measure_moved, int_customer_activity).
-#}
{% macro customer_activity_measures() %}
    {%- set purchase = "transaction_kind = 'purchase'" -%}
    {%- set measures = [
        {'name': 'purchases_lifetime', 'source': 'transactions', 'value': none, 'where': purchase, 'window': none},
        {'name': 'refunds_lifetime', 'source': 'transactions', 'value': none, 'where': "transaction_kind = 'refund'", 'window': none},
        {'name': 'net_spend_lifetime', 'source': 'transactions', 'value': 'signed_amount', 'where': none, 'window': none},
        {'name': 'purchase_spend_lifetime', 'source': 'transactions', 'value': 'amount', 'where': purchase, 'window': none},
    ] -%}
    {%- for days in [30, 90, 365] -%}
        {%- do measures.append({'name': 'purchases_' ~ days ~ 'd', 'source': 'transactions', 'value': none, 'where': purchase, 'window': [days, 0]}) -%}
        {%- do measures.append({'name': 'spend_' ~ days ~ 'd', 'source': 'transactions', 'value': 'amount', 'where': purchase, 'window': [days, 0]}) -%}
    {%- endfor -%}
    {%- do measures.append({'name': 'purchases_prior_90d', 'source': 'transactions', 'value': none, 'where': purchase, 'window': [180, 90]}) -%}
    {%- do measures.append({'name': 'spend_prior_90d', 'source': 'transactions', 'value': 'amount', 'where': purchase, 'window': [180, 90]}) -%}
    {%- do measures.append({'name': 'refunds_365d', 'source': 'transactions', 'value': 'amount', 'where': "transaction_kind = 'refund'", 'window': [365, 0]}) -%}
    {%- for channel in ['store', 'online', 'app'] -%}
        {%- do measures.append({'name': 'purchases_' ~ channel ~ '_365d', 'source': 'transactions', 'value': none, 'where': purchase ~ " and channel = '" ~ channel ~ "'", 'window': [365, 0]}) -%}
    {%- endfor -%}
    {%- for channel in ['email', 'sms', 'push'] -%}
        {%- for kind in ['sent', 'opened', 'clicked'] -%}
            {%- do measures.append({'name': channel ~ '_' ~ kind ~ '_90d', 'source': 'interactions', 'value': none, 'where': "channel = '" ~ channel ~ "' and interaction_kind = '" ~ kind ~ "'", 'window': [90, 0]}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for channel in ['app', 'web', 'store'] -%}
        {%- do measures.append({'name': channel ~ '_visits_90d', 'source': 'interactions', 'value': none, 'where': "channel = '" ~ channel ~ "' and interaction_kind = 'visit'", 'window': [90, 0]}) -%}
    {%- endfor -%}
    {%- do measures.append({'name': 'calls_90d', 'source': 'interactions', 'value': none, 'where': "interaction_kind = 'call'", 'window': [90, 0]}) -%}
    {%- do measures.append({'name': 'miles_earned_365d', 'source': 'mileage_events', 'value': 'points', 'where': "mileage_event_kind = 'earn'", 'window': [365, 0]}) -%}
    {%- do measures.append({'name': 'miles_redeemed_365d', 'source': 'mileage_events', 'value': 'points', 'where': "mileage_event_kind = 'redeem'", 'window': [365, 0]}) -%}
    {{ return(measures) }}
{% endmacro %}


{#- The activity's columns after customer_id and as_of_date: the purchase dates, then the measures. -#}
{% macro customer_activity_columns() %}
    {%- set columns = ['first_purchase_at', 'last_purchase_at', 'last_two_purchases_at', 'purchase_days_lifetime', 'first_day_spend'] -%}
    {%- for measure in customer_activity_measures() -%}
        {%- do columns.append(measure.name) -%}
    {%- endfor -%}
    {{ return(columns) }}
{% endmacro %}


{#- One measure over the events joined to their as-of date (set-based): 0 when none. -#}
{% macro customer_activity_measure(measure, occurred_at, as_of_date) -%}
    {%- set conditions = [] -%}
    {%- if measure.where -%}{%- do conditions.append(measure.where) -%}{%- endif -%}
    {%- if measure.window -%}
        {%- do conditions.append(occurred_at ~ ' >= ' ~ as_of_date ~ ' - to_days(' ~ measure.window[0] ~ ')') -%}
        {%- if measure.window[1] -%}
            {%- do conditions.append(occurred_at ~ ' < ' ~ as_of_date ~ ' - to_days(' ~ measure.window[1] ~ ')') -%}
        {%- endif -%}
    {%- endif -%}
    {%- set filter = (' filter (where ' ~ conditions | join(' and ') ~ ')') if conditions else '' -%}
    {%- if measure.value is none -%}
        count(*){{ filter }}
    {%- else -%}
        coalesce(sum({{ measure.value }}){{ filter }}, 0)
    {%- endif -%}
{%- endmacro %}


{#-
    One measure's change when the as-of date moves forward (int_customer_activity): the events are
    tagged `moved` = 'back_<k>' when they fall in [previous as-of - k days, as-of - k days). A
    window [start, end) gains the events of back_<end> and loses those of back_<start>; the lifetime
    gains back_0.
-#}
{% macro customer_activity_measure_moved(measure) -%}
    {%- set value = measure.value if measure.value is not none else '1' -%}
    {%- set condition = (' and ' ~ measure.where) if measure.where else '' -%}
    {%- set window = measure.window if measure.window else [none, 0] -%}
    sum(case
        when moved = 'back_{{ window[1] }}'{{ condition }} then {{ value }}
        {%- if window[0] is not none %}
        when moved = 'back_{{ window[0] }}'{{ condition }} then -{{ value }}
        {%- endif %}
        else 0
    end)
{%- endmacro %}


{#- The days back (k of back_<k>) whose events move a source's measures. -#}
{% macro customer_activity_moving_days(source) -%}
    {%- set days = [] -%}
    {%- for measure in customer_activity_measures() if measure.source == source -%}
        {%- for day in (measure.window if measure.window else [0]) -%}
            {%- if day not in days -%}{%- do days.append(day) -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(days | sort) }}
{%- endmacro %}


{#- The event sources of the activity (CTEs). -#}
{% macro customer_activity_sources() %}
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

feature_mileage_events as (
    select * from {{ ref('stg_landing__mileage_events') }}
)
{% endmacro %}


{#-
    The activity for every date of `spine` and customer of `keys` (a CTE with customer_id and
    as_of_date), set-based: the CTE `activity`, one row per key. A measure is 0 and a purchase date
    empty when the customer had no such event.
-#}
{% macro customer_activity(spine, keys) %}
{%- set measures = customer_activity_measures() -%}
transaction_activity as (
    select
        feature_transactions.customer_id,
        {{ spine }}.as_of_date,
        max(feature_transactions.occurred_at) filter (where transaction_kind = 'purchase') as last_purchase_at,
        min(feature_transactions.occurred_at) filter (where transaction_kind = 'purchase') as first_purchase_at,
        -- the two newest purchases, newest first: the last gap between purchases, without sorting them all
        max(feature_transactions.occurred_at, 2) filter (where transaction_kind = 'purchase') as last_two_purchases_at,
        {% for measure in measures if measure.source == 'transactions' %}
        {{ customer_activity_measure(measure, 'feature_transactions.occurred_at', spine ~ '.as_of_date') }}
            as {{ measure.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from feature_transactions
    inner join {{ spine }}
        on feature_transactions.occurred_at < {{ spine }}.as_of_date
    group by feature_transactions.customer_id, {{ spine }}.as_of_date
),

purchase_day_activity as (
    -- the customer-base models' summary (ml/clv.py) counts purchase days; Gamma-Gamma leaves the first out
    select
        feature_purchase_days.customer_id,
        {{ spine }}.as_of_date,
        count(*) as purchase_days_lifetime,
        arg_min(feature_purchase_days.day_spend, feature_purchase_days.occurred_date) as first_day_spend
    from feature_purchase_days
    inner join {{ spine }}
        on feature_purchase_days.occurred_date < {{ spine }}.as_of_date
    group by feature_purchase_days.customer_id, {{ spine }}.as_of_date
),

interaction_activity as (
    -- the window's days only: on the stored occurred_at_tz, DuckDB reads only their row groups
    select
        feature_interactions.customer_id,
        {{ spine }}.as_of_date,
        {% for measure in measures if measure.source == 'interactions' %}
        {{ customer_activity_measure(measure, 'feature_interactions.occurred_at', spine ~ '.as_of_date') }}
            as {{ measure.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from feature_interactions
    inner join {{ spine }}
        on feature_interactions.occurred_at_tz < {{ spine }}.as_of_date
        and feature_interactions.occurred_at_tz >= {{ spine }}.as_of_date - to_days(90)
    group by feature_interactions.customer_id, {{ spine }}.as_of_date
),

mileage_activity as (
    select
        feature_mileage_events.customer_id,
        {{ spine }}.as_of_date,
        {% for measure in measures if measure.source == 'mileage_events' %}
        {{ customer_activity_measure(measure, 'feature_mileage_events.occurred_at', spine ~ '.as_of_date') }}
            as {{ measure.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from feature_mileage_events
    inner join {{ spine }}
        on feature_mileage_events.occurred_at_tz < {{ spine }}.as_of_date
        and feature_mileage_events.occurred_at_tz >= {{ spine }}.as_of_date - to_days(365)
    group by feature_mileage_events.customer_id, {{ spine }}.as_of_date
),

activity as (
    select
        {{ keys }}.customer_id,
        {{ keys }}.as_of_date,
        transaction_activity.first_purchase_at,
        transaction_activity.last_purchase_at,
        transaction_activity.last_two_purchases_at,
        coalesce(purchase_day_activity.purchase_days_lifetime, 0) as purchase_days_lifetime,
        purchase_day_activity.first_day_spend,
        {% for measure in measures %}
        {%- set group = {'transactions': 'transaction', 'interactions': 'interaction', 'mileage_events': 'mileage'}[measure.source] %}
        coalesce({{ group }}_activity.{{ measure.name }}, 0) as {{ measure.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from {{ keys }}
    left join transaction_activity
        on {{ keys }}.customer_id = transaction_activity.customer_id
        and {{ keys }}.as_of_date = transaction_activity.as_of_date
    left join purchase_day_activity
        on {{ keys }}.customer_id = purchase_day_activity.customer_id
        and {{ keys }}.as_of_date = purchase_day_activity.as_of_date
    left join interaction_activity
        on {{ keys }}.customer_id = interaction_activity.customer_id
        and {{ keys }}.as_of_date = interaction_activity.as_of_date
    left join mileage_activity
        on {{ keys }}.customer_id = mileage_activity.customer_id
        and {{ keys }}.as_of_date = mileage_activity.as_of_date
)
{% endmacro %}


{#-
    The state at each date of `spine` (CTEs): the population (customers signed up before the date,
    with their tenure), their complaints and their mileage balance. Rebuilt every day: the
    complaints are few, and the balance moves with each lot's expiry.
-#}
{% macro customer_state_features(spine) %}
feature_customers as (
    select * from {{ ref('stg_landing__customers') }}
),

feature_complaints as (
    select * from {{ ref('stg_landing__complaints') }}
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
)
{% endmacro %}


{#-
    The features, from the CTEs population, activity (one row per customer and date, or none),
    complaint_features and mileage_balance_features: the final CTE `features` and its select.
-#}
{% macro customer_features_select() %}
features as (
    select
        ----------  keys
        population.customer_id,
        population.as_of_date,
        ----------  tenure and recency
        population.tenure_days,
        date_diff('day', cast(activity.last_purchase_at as date), population.as_of_date)
            as days_since_last_purchase,
        {{ is_active_customer('activity.last_purchase_at', 'population.as_of_date') }} as is_active,
        ----------  purchases and spend: money DECIMAL(18, 2) and miles BIGINT, as the raw columns (a sum
        ----------  widens to DECIMAL(38, 2) / HUGEINT, which BI drivers read badly); an overflow fails
        activity.first_purchase_at,
        activity.last_purchase_at,
        coalesce(activity.purchases_lifetime, 0) as purchases_lifetime,
        coalesce(activity.refunds_lifetime, 0) as refunds_lifetime,
        coalesce(activity.purchases_30d, 0) as purchases_30d,
        coalesce(activity.purchases_90d, 0) as purchases_90d,
        coalesce(activity.purchases_365d, 0) as purchases_365d,
        cast(coalesce(activity.spend_30d, 0) as decimal(18, 2)) as spend_30d,
        cast(coalesce(activity.spend_90d, 0) as decimal(18, 2)) as spend_90d,
        cast(coalesce(activity.spend_365d, 0) as decimal(18, 2)) as spend_365d,
        cast(coalesce(activity.net_spend_lifetime, 0) as decimal(18, 2)) as net_spend_lifetime,
        ----------  trend: the last 90 days against the 90 before
        coalesce(activity.purchases_90d, 0) - coalesce(activity.purchases_prior_90d, 0)
            as purchases_trend_90d,
        cast(coalesce(activity.spend_90d, 0) - coalesce(activity.spend_prior_90d, 0)
            as decimal(18, 2)) as spend_trend_90d,
        ----------  the customer-base models' summary (ml/clv.py), in purchase days: BG/NBD's frequency
        ----------  (repeat days), recency (first to last day) and age (first day to the as-of date),
        ----------  Gamma-Gamma's monetary value; empty for a customer who never bought
        coalesce(activity.purchase_days_lifetime, 0) as purchase_days_lifetime,
        nullif(activity.purchase_days_lifetime, 0) - 1 as repeat_purchase_days,
        cast(date_diff('day', cast(activity.first_purchase_at as date), cast(activity.last_purchase_at as date))
            as integer) as clv_recency_days,
        cast(date_diff('day', cast(activity.first_purchase_at as date), population.as_of_date)
            as integer) as clv_age_days,
        -- spend after the first purchase day, per repeat day (Gamma-Gamma leaves the first one out)
        cast((activity.purchase_spend_lifetime - activity.first_day_spend)
            / nullif(activity.purchase_days_lifetime - 1, 0) as decimal(18, 2)) as repeat_spend_per_day,
        ----------  rhythm: the days between consecutive purchases (calendar days, so their sum is the days
        ----------  from the first purchase to the last: the average needs no sort), and the last such gap
        date_diff('day', activity.first_purchase_at, activity.last_purchase_at)
        / nullif(activity.purchases_lifetime - 1, 0) as avg_gap_days,
        date_diff('day', activity.last_two_purchases_at[2], activity.last_two_purchases_at[1])
            as last_gap_days,
        date_diff('day', cast(activity.last_purchase_at as date), population.as_of_date)
        / nullif(
            date_diff('day', activity.first_purchase_at, activity.last_purchase_at)
            / nullif(activity.purchases_lifetime - 1, 0),
            0
        ) as overdue_ratio,
        ----------  refunds and channels (365 days)
        coalesce(activity.refunds_365d, 0) / nullif(activity.spend_365d, 0) as refund_share_365d,
        {% for channel in ['store', 'online', 'app'] %}
        coalesce(activity.purchases_{{ channel }}_365d, 0)
        / nullif(activity.purchases_365d, 0) as {{ channel }}_purchase_share_365d,
        {% endfor %}
        ----------  mileage
        cast(coalesce(activity.miles_earned_365d, 0) as bigint) as miles_earned_365d,
        cast(coalesce(activity.miles_redeemed_365d, 0) as bigint) as miles_redeemed_365d,
        cast(coalesce(mileage_balance_features.miles_balance, 0) as bigint) as miles_balance,
        cast(coalesce(mileage_balance_features.miles_expiring_30d, 0) as bigint) as miles_expiring_30d,
        -- the earn rule as observed: miles per unit of spend over 365 days (empty without spend)
        cast(coalesce(activity.miles_earned_365d, 0) as double)
        / nullif(activity.spend_365d, 0) as miles_per_spend_365d,
        ----------  engagement per channel (90 days); score = (opens + 2 clicks) / 3 (sends + 2), in [0, 1]
        {% for channel in ['email', 'sms', 'push'] %}
        coalesce(activity.{{ channel }}_sent_90d, 0) as {{ channel }}_sent_90d,
        activity.{{ channel }}_opened_90d / nullif(activity.{{ channel }}_sent_90d, 0)
            as {{ channel }}_open_rate_90d,
        activity.{{ channel }}_clicked_90d / nullif(activity.{{ channel }}_sent_90d, 0)
            as {{ channel }}_click_rate_90d,
        -- capped at 1: an open in the window can belong to a message sent just before it
        least(
            1.0,
            (coalesce(activity.{{ channel }}_opened_90d, 0) + 2 * coalesce(activity.{{ channel }}_clicked_90d, 0))
            / (3.0 * (coalesce(activity.{{ channel }}_sent_90d, 0) + 2))
        ) as {{ channel }}_engagement_score,
        {% endfor %}
        coalesce(activity.app_visits_90d, 0) as app_visits_90d,
        coalesce(activity.web_visits_90d, 0) as web_visits_90d,
        coalesce(activity.store_visits_90d, 0) as store_visits_90d,
        coalesce(activity.calls_90d, 0) as calls_90d,
        ----------  complaints
        coalesce(complaint_features.complaints_365d, 0) as complaints_365d,
        coalesce(complaint_features.complaints_open, 0) as complaints_open,
        complaint_features.median_resolution_days_365d,
        complaint_features.last_satisfaction_score
    from population
    left join activity
        on population.customer_id = activity.customer_id
        and population.as_of_date = activity.as_of_date
    left join complaint_features
        on population.customer_id = complaint_features.customer_id
        and population.as_of_date = complaint_features.as_of_date
    left join mileage_balance_features
        on population.customer_id = mileage_balance_features.customer_id
        and population.as_of_date = mileage_balance_features.as_of_date
)

select * from features
{% endmacro %}

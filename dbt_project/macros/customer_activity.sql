{#-
    Moving int_customer_activity forward a day (or several) instead of rebuilding it.

    The measures are sums over events in a window of days back from the as-of date (or the lifetime),
    so from the previous build's date P to this one's D, each window [start, end) days back gains the
    events in [P - end, D - end) and loses those in [P - start, D - start); the lifetime gains
    [P, D). Those few days of each landing table are all a move reads.
-#}


{#-
    The previous build's as-of date when this build can move it forward; none when it must rebuild
    from all history. Logs which, and why, to dbt's log. It rebuilds when:
    * it is not an increment (a first build, --full-refresh), or the previous build is empty;
    * the previous build is for this date or a later one (a re-run of an earlier date);
    * a measure was added since (its column is missing);
    * the landing tables hold a different number of events before the previous build's date than
      it counted: an event arrived late for a day already counted (or a landing row was deleted).
-#}
{% macro customer_activity_moved_from() %}
    {%- if not (execute and is_incremental()) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- set expected = customer_activity_columns() + ['interactions_lifetime', 'mileage_events_lifetime'] -%}
    {%- set missing = expected | reject('in', columns) | list -%}
    {%- if missing -%}
        {{ log(this ~ ": rebuilt from all history: new measures " ~ missing | join(', '), info=True) }}
        {{ return(none) }}
    {%- endif -%}
    {%- set previous_query -%}
        select
            cast(max(as_of_date) as varchar) as as_of_date,
            count(distinct as_of_date) as dates,
            max(as_of_date) < {{ as_of_date() }} as is_earlier,
            sum(purchases_lifetime + refunds_lifetime) as transactions,
            sum(interactions_lifetime) as interactions,
            sum(mileage_events_lifetime) as mileage_events
        from {{ this }}
    {%- endset -%}
    {%- set previous = run_query(previous_query).rows[0] -%}
    {%- if previous['as_of_date'] is none or previous['dates'] != 1 -%}
        {{ log(this ~ ": rebuilt from all history: the previous build is empty", info=True) }}
        {{ return(none) }}
    {%- endif -%}
    {%- if not previous['is_earlier'] -%}
        {{ log(this ~ ": rebuilt from all history: it was built for " ~ previous['as_of_date']
            ~ ", not before this run's date", info=True) }}
        {{ return(none) }}
    {%- endif -%}
    {%- set counted_query -%}
        {%- for source in ['transactions', 'interactions', 'mileage_events'] %}
        select
            '{{ source }}' as source,
            count(*) as events
        from {{ ref('stg_landing__' ~ source) }}
        where occurred_at_tz < cast('{{ previous["as_of_date"] }}' as date)
        {{ 'union all' if not loop.last }}
        {%- endfor %}
    {%- endset -%}
    {%- for row in run_query(counted_query).rows -%}
        {%- if row['events'] != previous[row['source']] -%}
            {{ log(this ~ ": rebuilt from all history: the landing " ~ row['source'] ~ " hold "
                ~ row['events'] ~ " events before " ~ previous['as_of_date'] ~ ", its previous build counted "
                ~ previous[row['source']] ~ " (events that arrived late for days already counted)", info=True) }}
            {{ return(none) }}
        {%- endif -%}
    {%- endfor -%}
    {{ log(this ~ ": moved forward from " ~ previous['as_of_date'], info=True) }}
    {{ return(previous['as_of_date']) }}
{% endmacro %}


{#-
    The activity rebuilt from all history (after `with as_of_dates as (...),`): every customer with
    an event before the date. Inside an increment (a re-run of an earlier date, late events), also a
    row for each customer the previous build has, so that every row is rewritten.
-#}
{% macro customer_activity_rebuilt() %}
{{ customer_activity_sources() }},

lifetime_events as (
    -- every customer with an event before the date, and their events counted (a rebuild's check)
    select
        customer_id,
        count(*) filter (where event_source = 'interactions') as interactions_lifetime,
        count(*) filter (where event_source = 'mileage_events') as mileage_events_lifetime
    from (
        select
            customer_id,
            'transactions' as event_source
        from feature_transactions
        where occurred_at_tz < {{ as_of_date() }}
        union all
        select
            customer_id,
            'interactions' as event_source
        from feature_interactions
        where occurred_at_tz < {{ as_of_date() }}
        union all
        select
            customer_id,
            'mileage_events' as event_source
        from feature_mileage_events
        where occurred_at_tz < {{ as_of_date() }}
    ) as events
    group by customer_id
),

activity_customers as (
    select
        lifetime_events.customer_id,
        as_of_dates.as_of_date
    from lifetime_events
    cross join as_of_dates
),

{{ customer_activity('as_of_dates', 'activity_customers') }},

rebuilt_customers as (
    select customer_id from activity_customers
    {%- if is_incremental() %}
    union
    -- a rebuild inside an increment (a re-run of an earlier date) rewrites every row it has: a
    -- customer with no event before the date gets zeros, and the post-hook deletes the row
    select customer_id from {{ this }}
    {%- endif %}
),

activity_with_counts as (
    select
        rebuilt_customers.customer_id,
        as_of_dates.as_of_date,
        activity.first_purchase_at,
        activity.last_purchase_at,
        activity.last_two_purchases_at,
        coalesce(activity.purchase_days_lifetime, 0) as purchase_days_lifetime,
        activity.first_day_spend,
        {%- for measure in customer_activity_measures() %}
        coalesce(activity.{{ measure.name }}, 0) as {{ measure.name }},
        {%- endfor %}
        coalesce(lifetime_events.interactions_lifetime, 0) as interactions_lifetime,
        coalesce(lifetime_events.mileage_events_lifetime, 0) as mileage_events_lifetime
    from rebuilt_customers
    cross join as_of_dates
    left join activity
        on rebuilt_customers.customer_id = activity.customer_id
    left join lifetime_events
        on rebuilt_customers.customer_id = lifetime_events.customer_id
)

select * from activity_with_counts
{% endmacro %}


{#- The increment itself (after `with as_of_dates as (...),`): the previous rows plus what moved. -#}
{% macro customer_activity_moved(moved_from) %}
{%- set measures = customer_activity_measures() -%}
{%- set previous_date = "cast('" ~ moved_from ~ "' as date)" -%}
{%- set sources = ['transactions', 'interactions', 'mileage_events'] -%}
previous as (
    select * from {{ this }}
),

{% for source in sources %}
moved_{{ source }} as (
    -- back_<k>: the events in [previous as-of date - k days, as-of date - k days)
    {%- for days in customer_activity_moving_days(source) %}
    select
        'back_{{ days }}' as moved,
        *
    from {{ ref('stg_landing__' ~ source) }}
    where
        occurred_at_tz >= {{ previous_date }} - to_days({{ days }})
        and occurred_at_tz < {{ as_of_date() }} - to_days({{ days }})
    {{ 'union all' if not loop.last }}
    {%- endfor %}
),

{{ source }}_moves as (
    select
        customer_id,
        {%- if source == 'transactions' %}
        min(occurred_at) filter (where moved = 'back_0' and transaction_kind = 'purchase') as first_purchase_at,
        max(occurred_at) filter (where moved = 'back_0' and transaction_kind = 'purchase') as last_purchase_at,
        max(occurred_at, 2) filter (where moved = 'back_0' and transaction_kind = 'purchase') as last_two_purchases_at,
        {%- endif %}
        {%- for measure in measures if measure.source == source %}
        {{ customer_activity_measure_moved(measure) }} as {{ measure.name }},
        {%- endfor %}
        count(*) filter (where moved = 'back_0') as events_entered
    from moved_{{ source }}
    group by customer_id
),

{% endfor %}
entered_purchase_days as (
    select
        customer_id,
        occurred_date,
        sum(amount) as day_spend
    from moved_transactions
    where moved = 'back_0' and transaction_kind = 'purchase'
    group by customer_id, occurred_date
),

purchase_day_moves as (
    select
        customer_id,
        count(*) as purchase_days,
        arg_min(day_spend, occurred_date) as first_day_spend
    from entered_purchase_days
    group by customer_id
),

moved_customers as (
    select customer_id from previous
    {%- for source in sources %}
    union
    select customer_id from {{ source }}_moves
    {%- endfor %}
),

moved as (
    select
        moved_customers.customer_id,
        {{ as_of_date() }} as as_of_date,
        -- the previous build holds every purchase before its date, the moves those since
        coalesce(previous.first_purchase_at, transactions_moves.first_purchase_at) as first_purchase_at,
        coalesce(transactions_moves.last_purchase_at, previous.last_purchase_at) as last_purchase_at,
        case
            when transactions_moves.last_two_purchases_at is null then previous.last_two_purchases_at
            else list_slice(list_reverse_sort(list_concat(
                transactions_moves.last_two_purchases_at,
                coalesce(previous.last_two_purchases_at, cast([] as timestamp []))
            )), 1, 2)
        end as last_two_purchases_at,
        cast(coalesce(previous.purchase_days_lifetime, 0) + coalesce(purchase_day_moves.purchase_days, 0) as bigint)
            as purchase_days_lifetime,
        coalesce(previous.first_day_spend, purchase_day_moves.first_day_spend) as first_day_spend,
        {%- for measure in measures %}
        {%- set moved_value = 'coalesce(previous.' ~ measure.name ~ ', 0) + coalesce(' ~ measure.source ~ '_moves.' ~ measure.name ~ ', 0)' %}
        {{ ('cast(' ~ moved_value ~ ' as bigint)') if measure.value is none else moved_value }} as {{ measure.name }},
        {%- endfor %}
        cast(coalesce(previous.interactions_lifetime, 0) + coalesce(interactions_moves.events_entered, 0) as bigint)
            as interactions_lifetime,
        cast(coalesce(previous.mileage_events_lifetime, 0) + coalesce(mileage_events_moves.events_entered, 0) as bigint)
            as mileage_events_lifetime
    from moved_customers
    left join previous
        on moved_customers.customer_id = previous.customer_id
    left join purchase_day_moves
        on moved_customers.customer_id = purchase_day_moves.customer_id
    {%- for source in sources %}
    left join {{ source }}_moves
        on moved_customers.customer_id = {{ source }}_moves.customer_id
    {%- endfor %}
)

select * from moved
{% endmacro %}

-- One row per customer who signed up before the run's as-of date: the facts the rewards policy
-- decides on (boomerang/rewards/policy.py), as of that date. Consent, tenure, segment, channel and
-- spend come from dim_customers and fct_customer_features; complaints and other campaigns' sends
-- count events strictly before the as-of date; from the ledger only earlier runs' decisions (the
-- daily build runs before the day's grants, and a re-run of a date must see what its first run saw).
{%- set contact_window_days = setting('contact_window_days') %}
with

customers as (
    select * from {{ ref('dim_customers') }}
),

features as (
    select * from {{ ref('fct_customer_features') }}
),

complaints as (
    select * from {{ ref('stg_landing__complaints') }}
),

interactions as (
    select * from {{ ref('stg_landing__interactions') }}
),

ledger_entries as (
    select * from {{ ref('stg_ledger__entries') }}
),

open_complaints as (
    select
        customer_id,
        -- how long the oldest open complaint has been open: a make-good is due after a while
        max(date_diff('day', opened_at, cast({{ as_of_date() }} as timestamp))) as open_complaint_days
    from complaints
    where {{ is_open_complaint('opened_at', 'resolved_at', as_of_date()) }}
    group by customer_id
),

earlier_decisions as (
    select
        customer_id,
        max(as_of_date) as last_decision_date,
        bool_or(entry_kind = 'pregrant' and expires_at > {{ as_of_date() }}) as has_open_pregrant
    from ledger_entries
    where
        entry_kind in ('pregrant', 'holdout')
        and as_of_date < {{ as_of_date() }}
    group by customer_id
),

messages as (
    -- every other campaign's sends in the contact window (ours are counted from the ledger, once)
    select
        customer_id,
        count(*) as messages
    from interactions
    where
        interaction_kind = 'sent'
        and occurred_at_tz >= {{ as_of_date() }} - to_days({{ contact_window_days }})
        and occurred_at_tz < {{ as_of_date() }}
        and campaign_id is distinct from '{{ setting("campaign_id") }}'
    group by customer_id
    union all
    -- our pre-grants of earlier runs in the window
    select
        customer_id,
        count(*) as messages
    from ledger_entries
    where
        entry_kind = 'pregrant'
        and as_of_date >= {{ as_of_date() }} - to_days({{ contact_window_days }})
        and as_of_date < {{ as_of_date() }}
    group by customer_id
),

messages_in_window as (
    select
        customer_id,
        cast(sum(messages) as bigint) as messages_in_window  -- BIGINT, not a sum's HUGEINT
    from messages
    group by customer_id
),

facts as (
    select
        ----------  ids
        customers.customer_id,
        ----------  who: consent, tenure, segment, value, channel
        customers.has_marketing_consent,
        customers.tenure_days,
        customers.segment,
        features.spend_365d,
        customers.best_channel,
        ----------  moments of truth: complaints open at the as-of date
        open_complaints.open_complaint_days,
        ----------  earlier decisions (cooldown, one open pre-grant at a time)
        earlier_decisions.last_decision_date,
        coalesce(earlier_decisions.has_open_pregrant, false) as has_open_pregrant,
        ----------  contact pressure: messages in the contact window
        coalesce(messages_in_window.messages_in_window, 0) as messages_in_window,
        ----------  as of
        customers.as_of_date
    from customers
    inner join features
        on customers.customer_id = features.customer_id
    left join open_complaints
        on customers.customer_id = open_complaints.customer_id
    left join earlier_decisions
        on customers.customer_id = earlier_decisions.customer_id
    left join messages_in_window
        on customers.customer_id = messages_in_window.customer_id
)

select * from facts

-- One row per mileage lot: every earn event, and every pre-grant of the rewards ledger, with its
-- expiry. `consumption_start`/`_end` place an earn lot in the customer's consumption order,
-- soonest-expiring first: a redemption uses the earn lots in that order. Pre-grants expire sooner
-- and arrive later, so they are allocated as their own class first
-- (int_mileage_redemption_allocations) and have no place in that order (null ranges).
with

mileage_events as (
    select * from {{ ref('stg_landing__mileage_events') }}
),

ledger_entries as (
    select * from {{ ref('stg_ledger__entries') }}
),

earned_lots as (
    select
        ----------  ids
        mileage_event_id as lot_id,
        customer_id,
        ----------  attributes
        'earn' as lot_kind,
        points as granted_points,
        ----------  timestamps
        occurred_at as granted_at,
        occurred_at + to_days({{ setting('earn_expiry_days') }}) as expires_at,
        cast(null as date) as decision_date
    from mileage_events
    where mileage_event_kind = 'earn'
),

earned_lots_ordered as (
    select
        *,
        -- points are BIGINT everywhere (a sum is HUGEINT, which BI drivers read badly); an overflow fails
        cast(sum(granted_points) over (
            partition by customer_id
            order by expires_at, granted_at, lot_id
            rows between unbounded preceding and current row
        ) as bigint) as consumption_end
    from earned_lots
),

earned_lots_placed as (
    select
        *,
        consumption_end - granted_points as consumption_start
    from earned_lots_ordered
),

pregrant_lots as (
    select
        ----------  ids
        entry_key as lot_id,
        customer_id,
        ----------  attributes
        'pregrant' as lot_kind,
        points as granted_points,
        ----------  timestamps
        effective_at as granted_at,
        expires_at,
        as_of_date as decision_date,
        ----------  consumption order: none, pre-grants are allocated first
        cast(null as bigint) as consumption_end,
        cast(null as bigint) as consumption_start
    from ledger_entries
    where entry_kind = 'pregrant'
),

final as (
    select * from earned_lots_placed
    union all
    select * from pregrant_lots
)

select * from final

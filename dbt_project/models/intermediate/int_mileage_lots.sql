-- One row per mileage lot: every earn event is a lot with an expiry (the pre-grants of the
-- rewards ledger join here as lots of their own). `consumption_start`/`_end` place the lot in the
-- customer's consumption order, soonest-expiring first: a redemption uses the lots in that order.
with

mileage_events as (
    select * from {{ ref('stg_landing__mileage_events') }}
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
        occurred_at + to_days({{ var('earn_expiry_days') }}) as expires_at
    from mileage_events
    where mileage_event_kind = 'earn'
),

ordered as (
    select
        *,
        sum(granted_points) over (
            partition by customer_id
            order by expires_at, granted_at, lot_id
            rows between unbounded preceding and current row
        ) as consumption_end
    from earned_lots
)

select
    *,
    consumption_end - granted_points as consumption_start
from ordered

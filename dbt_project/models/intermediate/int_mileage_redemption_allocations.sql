-- One row per redemption and lot it drew points from: redemptions use open lots soonest-expiring
-- first, and a lot that expired is never used after its expiry. A part of a redemption no open lot
-- covered (the source let a customer overdraw) is one row with lot_id null, caught by a test.
--
-- How: in each customer's consumption order (int_mileage_lots), a "frontier" marks how many points
-- are gone, used or expired. A redemption moves it forward by its points; a lot's expiry moves it to
-- at least that lot's end. So frontier = redeemed so far + max(0, max over past expiries of
-- (lot end - redeemed by then)): two running window aggregates, no loop. Each redemption occupies
-- [frontier - points, frontier) and draws from the lots overlapping that range.
--
-- This needs one fixed consumption order per customer, which holds while every lot has the same
-- lifetime (earn lots: earn_expiry_days), since then expiry order = grant order. Pre-grants (the
-- rewards ledger) expire sooner and arrive later, so they jump the queue: they must be allocated as
-- their own class first (redemptions take from the open pre-grant, the rest flows to earn lots).
with

lots as (
    select * from {{ ref('int_mileage_lots') }}
),

redemptions as (
    select * from {{ ref('stg_landing__mileage_events') }}
    where mileage_event_kind = 'redeem'
),

consumption_events as (
    -- at equal times a lot expires before a redemption can use it (a lot is usable while t < expiry)
    select
        customer_id,
        expires_at as event_at,
        0 as event_order,
        lot_id as event_id,
        0 as redeemed_points,
        consumption_end as expiry_level
    from lots
    union all
    select
        customer_id,
        occurred_at as event_at,
        1 as event_order,
        mileage_event_id as event_id,
        points as redeemed_points,
        null as expiry_level
    from redemptions
),

redeemed_so_far as (
    select
        *,
        sum(redeemed_points) over customer_timeline as redeemed_through
    from consumption_events
    window customer_timeline as (
        partition by customer_id
        order by event_at, event_order, event_id
        rows between unbounded preceding and current row
    )
),

frontier as (
    select
        *,
        redeemed_through + greatest(
            0,
            coalesce(max(expiry_level - redeemed_through) over customer_timeline, 0)
        ) as frontier_end
    from redeemed_so_far
    window customer_timeline as (
        partition by customer_id
        order by event_at, event_order, event_id
        rows between unbounded preceding and current row
    )
),

redemption_ranges as (
    select
        redemptions.mileage_event_id as redemption_id,
        redemptions.customer_id,
        redemptions.transaction_id,
        redemptions.occurred_at as redeemed_at,
        redemptions.points as redeemed_points,
        frontier.frontier_end - redemptions.points as range_start,
        frontier.frontier_end as range_end
    from redemptions
    inner join frontier
        on redemptions.mileage_event_id = frontier.event_id
            and frontier.event_order = 1
),

allocated as (
    select
        redemption_ranges.redemption_id,
        redemption_ranges.customer_id,
        redemption_ranges.transaction_id,
        redemption_ranges.redeemed_at,
        lots.lot_id,
        lots.lot_kind,
        least(redemption_ranges.range_end, lots.consumption_end)
        - greatest(redemption_ranges.range_start, lots.consumption_start) as allocated_points
    from redemption_ranges
    inner join lots
        on redemption_ranges.customer_id = lots.customer_id
            and redemption_ranges.range_end > lots.consumption_start
            and redemption_ranges.range_start < lots.consumption_end
            and redemption_ranges.redeemed_at >= lots.granted_at
),

uncovered as (
    select
        redemption_ranges.redemption_id,
        redemption_ranges.customer_id,
        redemption_ranges.transaction_id,
        redemption_ranges.redeemed_at,
        cast(null as varchar) as lot_id,
        cast(null as varchar) as lot_kind,
        redemption_ranges.redeemed_points - coalesce(sum(allocated.allocated_points), 0) as allocated_points
    from redemption_ranges
    left join allocated
        on redemption_ranges.redemption_id = allocated.redemption_id
    group by
        redemption_ranges.redemption_id,
        redemption_ranges.customer_id,
        redemption_ranges.transaction_id,
        redemption_ranges.redeemed_at,
        redemption_ranges.redeemed_points
    having redemption_ranges.redeemed_points - coalesce(sum(allocated.allocated_points), 0) > 0
),

final as (
    select * from allocated
    union all
    select * from uncovered
)

select * from final

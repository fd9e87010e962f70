-- One row per redemption and lot it drew points from. A redemption first uses the customer's open
-- pre-grant (the rewards ledger decides how much: stg_ledger__pregrant_allocations), then earn lots
-- soonest-expiring first for the rest; a lot that expired is never used after its expiry. A part of
-- a redemption no open lot covered (the source let a customer overdraw) is one row with lot_id null,
-- caught by a test.
--
-- Pre-grants are their own class, allocated first: they expire sooner and arrive later than earn
-- lots, so they would jump the queue of the method below. Policy allows one open pre-grant per
-- customer, so each redemption meets at most one, and only the residual (points - what the pre-grant
-- took) goes on to the earn lots.
--
-- Earn lots, how: in each customer's consumption order of earn lots (int_mileage_lots), a "frontier"
-- marks how many points are gone, used or expired. A residual redemption moves it forward by its
-- points; a lot's expiry moves it to at least that lot's end. So frontier = redeemed so far +
-- max(0, max over past expiries of (lot end - redeemed by then)): two running window aggregates, no
-- loop. Each residual occupies [frontier - points, frontier) and draws from the lots overlapping that
-- range. This needs one fixed consumption order per customer, which holds because every earn lot has
-- the same lifetime (earn_expiry_days), so expiry order = grant order.
--
-- Built incrementally by customer (macros/incremental.sql). A customer's allocations depend only on
-- their own lots and redemptions, both append-only, so a day's build recomputes, whole, only the
-- customers with a redemption the table does not have yet or whose lot count moved (customer_lots:
-- a new earn lot or pre-grant, back-dated or not), and every customer when earn_expiry_days changed
-- (earn_expiry_days: the setting the row was computed with). A redemption in the table that its
-- source no longer has fails the build.
{{ incremental_by_customer() }}
with

all_lots as (
    select * from {{ ref('int_mileage_lots') }}
),

all_redemptions as (
    select * from {{ ref('stg_landing__mileage_events') }}
    where mileage_event_kind = 'redeem'
),

lot_counts as (
    select
        customer_id,
        count(*) as customer_lots
    from all_lots
    group by customer_id
),

{% if is_incremental() %}
redemption_changes as materialized (
    -- a redemption one side has and the other not: new in the source, or (never, it is append-only) gone
    select
        coalesce(source_redemptions.customer_id, built.customer_id) as customer_id,
        built.redemption_id is null as is_new
    from all_redemptions as source_redemptions
    full outer join (select distinct redemption_id, customer_id from {{ this }}) as built
        on source_redemptions.mileage_event_id = built.redemption_id
    where source_redemptions.mileage_event_id is null or built.redemption_id is null
),

changed_customers as (
    select customer_id from redemption_changes
    union
    -- the customer's lots moved since their allocations were computed (null: built before the
    -- table kept the count)
    select built.customer_id
    from (
        select
            customer_id,
            any_value(customer_lots) as customer_lots,
            -- earn_expiry_days changed: every customer's earn lots expire differently
            bool_or(earn_expiry_days is distinct from {{ setting('earn_expiry_days') }}) as expiry_changed
        from {{ this }}
        group by customer_id
    ) as built
    left join lot_counts
        on built.customer_id = lot_counts.customer_id
    where built.customer_lots is distinct from lot_counts.customer_lots or built.expiry_changed
),

{% endif %}

lots as (
    select * from all_lots
    {{ only_changed_customers() }}
),

redemptions as (
    select * from all_redemptions
    {{ only_changed_customers() }}
),

pregrant_allocations as (
    select * from {{ ref('stg_ledger__pregrant_allocations') }}
    {{ only_changed_customers() }}
),

earn_lots as (
    select * from lots
    where lot_kind = 'earn'
),

allocated_to_pregrants as (
    select
        redemptions.mileage_event_id as redemption_id,
        redemptions.customer_id,
        redemptions.transaction_id,
        redemptions.occurred_at as redeemed_at,
        pregrant_allocations.lot_id,
        'pregrant' as lot_kind,
        pregrant_allocations.allocated_points
    from redemptions
    inner join pregrant_allocations
        on redemptions.mileage_event_id = pregrant_allocations.redemption_id
),

residual_redemptions as (
    -- what the pre-grant did not cover (all of it, outside a pre-grant window) flows to earn lots
    select
        redemptions.mileage_event_id,
        redemptions.customer_id,
        redemptions.transaction_id,
        redemptions.occurred_at,
        redemptions.points - coalesce(allocated_to_pregrants.allocated_points, 0) as points
    from redemptions
    left join allocated_to_pregrants
        on redemptions.mileage_event_id = allocated_to_pregrants.redemption_id
    where redemptions.points - coalesce(allocated_to_pregrants.allocated_points, 0) > 0
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
    from earn_lots
    union all
    select
        customer_id,
        occurred_at as event_at,
        1 as event_order,
        mileage_event_id as event_id,
        points as redeemed_points,
        null as expiry_level
    from residual_redemptions
),

redeemed_so_far as (
    select
        *,
        cast(sum(redeemed_points) over customer_timeline as bigint) as redeemed_through
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
        residual_redemptions.mileage_event_id as redemption_id,
        residual_redemptions.customer_id,
        residual_redemptions.transaction_id,
        residual_redemptions.occurred_at as redeemed_at,
        residual_redemptions.points as residual_points,
        frontier.frontier_end - residual_redemptions.points as range_start,
        frontier.frontier_end as range_end
    from residual_redemptions
    inner join frontier
        on residual_redemptions.mileage_event_id = frontier.event_id
            and frontier.event_order = 1
),

allocated_to_earn_lots as (
    select
        redemption_ranges.redemption_id,
        redemption_ranges.customer_id,
        redemption_ranges.transaction_id,
        redemption_ranges.redeemed_at,
        earn_lots.lot_id,
        earn_lots.lot_kind,
        least(redemption_ranges.range_end, earn_lots.consumption_end)
        - greatest(redemption_ranges.range_start, earn_lots.consumption_start) as allocated_points
    from redemption_ranges
    inner join earn_lots
        on redemption_ranges.customer_id = earn_lots.customer_id
            and redemption_ranges.range_end > earn_lots.consumption_start
            and redemption_ranges.range_start < earn_lots.consumption_end
            and redemption_ranges.redeemed_at >= earn_lots.granted_at
),

uncovered as (
    select
        redemption_ranges.redemption_id,
        redemption_ranges.customer_id,
        redemption_ranges.transaction_id,
        redemption_ranges.redeemed_at,
        cast(null as varchar) as lot_id,
        cast(null as varchar) as lot_kind,
        redemption_ranges.residual_points
        - cast(coalesce(sum(allocated_to_earn_lots.allocated_points), 0) as bigint) as allocated_points
    from redemption_ranges
    left join allocated_to_earn_lots
        on redemption_ranges.redemption_id = allocated_to_earn_lots.redemption_id
    group by
        redemption_ranges.redemption_id,
        redemption_ranges.customer_id,
        redemption_ranges.transaction_id,
        redemption_ranges.redeemed_at,
        redemption_ranges.residual_points
    having redemption_ranges.residual_points - coalesce(sum(allocated_to_earn_lots.allocated_points), 0) > 0
),

allocations as (
    select * from allocated_to_pregrants
    union all
    select * from allocated_to_earn_lots
    union all
    select * from uncovered
),

final as (
    select
        allocations.*,
        lot_counts.customer_lots,
        {{ setting('earn_expiry_days') }} as earn_expiry_days
    from allocations
    left join lot_counts
        on allocations.customer_id = lot_counts.customer_id
)

select * from final
{{ fail_if_sources_lost_rows('redemption_changes', 'redemption_id', 'redemption(s)') }}

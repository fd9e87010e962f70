-- One row per mileage lot held by the run's as-of date (earn lots granted before it, pre-grants
-- decided on or before it) with its position as of that date: used (redemptions before the date),
-- clawed back (clawbacks recorded on or before it), outstanding, expired or awaiting clawback. The
-- one place lot positions are computed: marts.fct_mileage_lot_balances and marts.fct_pregrant_lots
-- read it. boomerang.rewards.ledger.LOT_POSITIONS_SQL is the ledger's independent check of the
-- pre-grant lots (it runs on a bare warehouse); tests/rewards/test_dbt_ledger.py holds them equal.
with

lots as (
    select * from {{ ref('int_mileage_lots') }}
),

allocations as (
    select * from {{ ref('int_mileage_redemption_allocations') }}
    where lot_id is not null
),

ledger_entries as (
    select * from {{ ref('stg_ledger__entries') }}
),

lots_as_of as (
    -- an earn event of the as-of date itself is not known yet; a pre-grant decided that day is
    select * from lots
    where
        (lot_kind = 'earn' and granted_at < {{ as_of_date() }})
        or (lot_kind = 'pregrant' and decision_date <= {{ as_of_date() }})
),

used_before_as_of as (
    select
        lot_id,
        -- points are BIGINT everywhere (a sum is HUGEINT, which BI drivers read badly); an overflow fails
        cast(sum(allocated_points) as bigint) as used_points,
        count(distinct redemption_id) as redemption_count,
        max(redeemed_at) as last_used_at
    from allocations
    where redeemed_at < {{ as_of_date() }}
    group by lot_id
),

clawed_back_by_as_of as (
    select
        lot_id,
        cast(sum(points) as bigint) as clawed_back_points,
        count(*) as clawback_count,
        min(effective_at) as clawed_back_at
    from ledger_entries
    where
        entry_kind = 'clawback'
        and as_of_date <= {{ as_of_date() }}
    group by lot_id
),

usage as (
    select
        lots_as_of.*,
        coalesce(used_before_as_of.used_points, 0) as used_points,
        lots_as_of.granted_points - coalesce(used_before_as_of.used_points, 0) as unused_points,
        coalesce(used_before_as_of.redemption_count, 0) as redemption_count,
        used_before_as_of.last_used_at,
        coalesce(clawed_back_by_as_of.clawed_back_points, 0) as clawed_back_points,
        coalesce(clawed_back_by_as_of.clawback_count, 0) as clawback_count,
        clawed_back_by_as_of.clawed_back_at,
        lots_as_of.expires_at <= {{ as_of_date() }} as is_expired
    from lots_as_of
    left join used_before_as_of
        on lots_as_of.lot_id = used_before_as_of.lot_id
    left join clawed_back_by_as_of
        on lots_as_of.lot_id = clawed_back_by_as_of.lot_id
),

positions as (
    select
        ----------  ids
        lot_id,
        customer_id,
        ----------  attributes
        lot_kind,
        ----------  points: granted = used + outstanding + expired + clawed_back + awaiting_clawback
        granted_points,
        used_points,
        -- what the customer can still spend, judged by time alone: all that is unused until expiry
        case when not is_expired then unused_points else 0 end as outstanding_points,
        case when is_expired and lot_kind = 'earn' then unused_points else 0 end as expired_points,
        clawed_back_points,
        case
            when is_expired and lot_kind = 'pregrant' and clawback_count = 0 then unused_points
            else 0
        end as awaiting_clawback_points,
        -- neither used nor clawed back (yet): outstanding + expired + awaiting_clawback
        granted_points - used_points - clawed_back_points as unsettled_points,
        redemption_count,
        clawback_count,
        ----------  status
        case
            when clawback_count > 0 then 'clawed_back'
            when unused_points = 0 then 'used'
            when is_expired and lot_kind = 'pregrant' then 'awaiting_clawback'
            when is_expired then 'expired'
            else 'open'
        end as lot_status,
        is_expired,
        case
            when not is_expired
                then date_diff('day', {{ as_of_date() }}, cast(expires_at as date))
        end as days_to_expiry,
        ----------  dates and timestamps
        decision_date,
        granted_at,
        expires_at,
        last_used_at,
        clawed_back_at,
        {{ as_of_date() }} as as_of_date
    from usage
)

select * from positions

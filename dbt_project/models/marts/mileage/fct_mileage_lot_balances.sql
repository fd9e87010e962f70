-- One row per mileage lot the customer holds by the run's as-of date (earn lots granted before it,
-- pre-grants decided on or before it): points granted, used, remaining and, past expiry, expired
-- (earn lots) or clawed back / awaiting clawback (pre-grants) as of that date.
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
        or (lot_kind = 'pregrant' and decided_date <= {{ as_of_date() }})
),

used_before_as_of as (
    select
        lot_id,
        sum(allocated_points) as used_points,
        count(distinct redemption_id) as redemption_count,
        max(redeemed_at) as last_used_at
    from allocations
    where redeemed_at < {{ as_of_date() }}
    group by lot_id
),

clawed_back_by_as_of as (
    select
        lot_id,
        sum(points) as clawed_back_points,
        min(effective_at) as clawed_back_at
    from ledger_entries
    where
        entry_kind = 'clawback'
        and run_date <= {{ as_of_date() }}
    group by lot_id
),

positions as (
    select
        lots_as_of.*,
        coalesce(used_before_as_of.used_points, 0) as used_points,
        lots_as_of.granted_points - coalesce(used_before_as_of.used_points, 0) as unused_points,
        lots_as_of.expires_at <= {{ as_of_date() }} as is_expired,
        coalesce(clawed_back_by_as_of.clawed_back_points, 0) as clawed_back_points,
        clawed_back_by_as_of.lot_id is not null as is_clawed_back,
        clawed_back_by_as_of.clawed_back_at,
        coalesce(used_before_as_of.redemption_count, 0) as redemption_count,
        used_before_as_of.last_used_at
    from lots_as_of
    left join used_before_as_of
        on lots_as_of.lot_id = used_before_as_of.lot_id
    left join clawed_back_by_as_of
        on lots_as_of.lot_id = clawed_back_by_as_of.lot_id
),

balances as (
    select
        ----------  ids
        lot_id,
        customer_id,
        ----------  attributes
        lot_kind,
        ----------  points: granted = used + remaining + expired + clawed_back + awaiting_clawback
        granted_points,
        used_points,
        case when not is_expired then unused_points else 0 end as remaining_points,
        case when is_expired and lot_kind = 'earn' then unused_points else 0 end as expired_points,
        clawed_back_points,
        case
            when is_expired and lot_kind = 'pregrant' and not is_clawed_back then unused_points
            else 0
        end as awaiting_clawback_points,
        redemption_count,
        ----------  status
        case
            when is_clawed_back then 'clawed_back'
            when unused_points = 0 then 'used'
            when is_expired and lot_kind = 'pregrant' then 'awaiting_clawback'
            when is_expired then 'expired'
            else 'open'
        end as lot_status,
        ----------  timestamps
        granted_at,
        expires_at,
        last_used_at,
        clawed_back_at,
        {{ as_of_date() }} as as_of_date
    from positions
)

select * from balances

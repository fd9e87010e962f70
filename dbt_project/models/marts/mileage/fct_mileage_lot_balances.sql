-- One row per mileage lot granted before the run's as-of date: points granted, used, remaining and
-- expired as of that date. A lot's clawback-able amount at expiry is its expired_points.
with

lots as (
    select * from {{ ref('int_mileage_lots') }}
),

allocations as (
    select * from {{ ref('int_mileage_redemption_allocations') }}
    where lot_id is not null
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

balances as (
    select
        ----------  ids
        lots.lot_id,
        lots.customer_id,
        ----------  attributes
        lots.lot_kind,
        ----------  points
        lots.granted_points,
        coalesce(used_before_as_of.used_points, 0) as used_points,
        case
            when lots.expires_at > {{ as_of_date() }}
                then lots.granted_points - coalesce(used_before_as_of.used_points, 0)
            else 0
        end as remaining_points,
        case
            when lots.expires_at <= {{ as_of_date() }}
                then lots.granted_points - coalesce(used_before_as_of.used_points, 0)
            else 0
        end as expired_points,
        coalesce(used_before_as_of.redemption_count, 0) as redemption_count,
        ----------  status
        case
            when coalesce(used_before_as_of.used_points, 0) = lots.granted_points then 'used'
            when lots.expires_at <= {{ as_of_date() }} then 'expired'
            else 'open'
        end as lot_status,
        ----------  timestamps
        lots.granted_at,
        lots.expires_at,
        used_before_as_of.last_used_at,
        {{ as_of_date() }} as as_of_date
    from lots
    left join used_before_as_of
        on lots.lot_id = used_before_as_of.lot_id
    where lots.granted_at < {{ as_of_date() }}
)

select * from balances

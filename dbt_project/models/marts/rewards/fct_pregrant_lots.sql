-- One row per pre-grant lot decided on or before the run's as-of date, with what was used (redeemed
-- before that date) and clawed back (recorded on or before it), and what is left. The SQL twin of
-- boomerang.ledger.lot_positions: the two must agree.
with

ledger_entries as (
    select * from {{ ref('stg_ledger__entries') }}
),

pregrant_allocations as (
    select * from {{ ref('stg_ledger__pregrant_allocations') }}
),

lots as (
    select * from ledger_entries
    where
        entry_kind = 'pregrant'
        and run_date <= {{ as_of_date() }}
),

used_before_as_of as (
    select
        lot_id,
        sum(allocated_points) as used_points,
        count(*) as redemption_count,
        max(redeemed_at) as last_used_at
    from pregrant_allocations
    where redeemed_at < {{ as_of_date() }}
    group by lot_id
),

clawed_back_by_as_of as (
    select
        lot_id,
        sum(points) as clawed_back_points,
        count(*) as clawback_count,
        min(effective_at) as clawed_back_at
    from ledger_entries
    where
        entry_kind = 'clawback'
        and run_date <= {{ as_of_date() }}
    group by lot_id
),

positions as (
    select
        lots.*,
        coalesce(used_before_as_of.used_points, 0) as used_points,
        coalesce(used_before_as_of.redemption_count, 0) as redemption_count,
        used_before_as_of.last_used_at,
        coalesce(clawed_back_by_as_of.clawed_back_points, 0) as clawed_back_points,
        coalesce(clawed_back_by_as_of.clawback_count, 0) as clawback_count,
        clawed_back_by_as_of.clawed_back_at,
        lots.expires_at <= {{ as_of_date() }} as is_expired
    from lots
    left join used_before_as_of
        on lots.entry_key = used_before_as_of.lot_id
    left join clawed_back_by_as_of
        on lots.entry_key = clawed_back_by_as_of.lot_id
),

final as (
    select
        ----------  ids
        entry_key as lot_id,
        customer_id,
        campaign_id,
        ----------  attributes
        grant_rule,
        channel,
        policy_version,
        ----------  points: granted = used + clawed_back + outstanding + awaiting_clawback
        points as granted_points,
        used_points,
        clawed_back_points,
        -- what the customer can still spend, judged by time alone: all that is unused until expiry
        case when is_expired then 0 else points - used_points end as outstanding_points,
        case
            when is_expired and clawback_count = 0 then points - used_points
            else 0
        end as awaiting_clawback_points,
        points - used_points - clawed_back_points as remaining_points,
        redemption_count,
        clawback_count,
        ----------  status
        case
            when clawback_count > 0 then 'clawed_back'
            when used_points = points then 'used'
            when is_expired then 'awaiting_clawback'
            else 'open'
        end as lot_status,
        is_expired,
        case
            when not is_expired
                then date_diff('day', {{ as_of_date() }}, cast(expires_at as date))
        end as days_to_expiry,
        ----------  dates and timestamps
        run_date as decision_date,
        effective_at as granted_at,
        expires_at,
        last_used_at,
        clawed_back_at,
        {{ as_of_date() }} as as_of_date
    from positions
)

select * from final

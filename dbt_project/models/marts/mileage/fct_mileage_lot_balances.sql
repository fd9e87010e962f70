-- One row per mileage lot the customer holds by the run's as-of date (earn lots granted before it,
-- pre-grants decided on or before it): points granted, used, outstanding and, past expiry, expired
-- (earn lots) or clawed back / awaiting clawback (pre-grants) as of that date. The positions are
-- int_mileage_lot_positions': a view, so that a day's build computes them, writes them and tests
-- them once (a million customers hold some 26 million lots).
{{ config(materialized='view') }}
with

lot_positions as (
    select * from {{ ref('int_mileage_lot_positions') }}
),

balances as (
    select
        ----------  ids
        lot_id,
        customer_id,
        ----------  attributes
        lot_kind,
        ----------  points: granted = used + outstanding + expired + clawed_back + awaiting_clawback
        granted_points,
        used_points,
        outstanding_points,
        expired_points,
        clawed_back_points,
        awaiting_clawback_points,
        redemption_count,
        ----------  status
        lot_status,
        ----------  timestamps
        granted_at,
        expires_at,
        last_used_at,
        clawed_back_at,
        as_of_date
    from lot_positions
)

select * from balances

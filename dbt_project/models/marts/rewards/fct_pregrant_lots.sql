-- One row per pre-grant lot decided on or before the run's as-of date, with what was used (redeemed
-- before that date) and clawed back (recorded on or before it), and what is left. The positions are
-- int_mileage_lot_positions'; this mart adds what the ledger says of the grant (campaign, rule,
-- channel, policy).
with

lot_positions as (
    select * from {{ ref('int_mileage_lot_positions') }}
    where lot_kind = 'pregrant'
),

ledger_entries as (
    select * from {{ ref('stg_ledger__entries') }}
),

final as (
    select
        ----------  ids
        lot_positions.lot_id,
        lot_positions.customer_id,
        ledger_entries.campaign_id,
        ----------  attributes
        ledger_entries.grant_rule,
        ledger_entries.amount_rule,
        ledger_entries.predicted_miles,
        ledger_entries.channel,
        ledger_entries.policy_version,
        ----------  points: granted = used + clawed_back + outstanding + awaiting_clawback
        lot_positions.granted_points,
        lot_positions.used_points,
        lot_positions.clawed_back_points,
        lot_positions.outstanding_points,
        lot_positions.awaiting_clawback_points,
        lot_positions.unsettled_points,
        lot_positions.redemption_count,
        lot_positions.clawback_count,
        ----------  status
        lot_positions.lot_status,
        lot_positions.is_expired,
        lot_positions.days_to_expiry,
        ----------  dates and timestamps
        lot_positions.decision_date,
        lot_positions.granted_at,
        lot_positions.expires_at,
        lot_positions.last_used_at,
        lot_positions.clawed_back_at,
        lot_positions.as_of_date
    from lot_positions
    inner join ledger_entries
        on lot_positions.lot_id = ledger_entries.entry_key
)

select * from final

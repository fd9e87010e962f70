-- One row per redemption that drew on a pre-grant lot, with the points it took from that lot
-- (the customer's open pre-grant is used first; ledger.pregrant_allocations decides it).
with

source as (
    select * from {{ source('ledger', 'pregrant_allocations') }}
),

renamed as (
    select
        ----------  ids
        redemption_id,
        customer_id,
        lot_id,
        ----------  points
        redeemed_points,
        -- the ledger's view computes it with a window sum (HUGEINT); points are BIGINT everywhere
        cast(allocated_points as bigint) as allocated_points,
        ----------  timestamps
        redeemed_at
    from source
)

select * from renamed

-- One row per transaction (purchase or refund); amounts are always >= 0.
with

source as (
    select * from {{ source('landing', 'transactions') }}
),

renamed as (
    select
        ----------  ids
        transaction_id,
        customer_id,
        ----------  attributes
        kind as transaction_kind,
        channel,
        amount,
        -- purchases count positive, refunds negative: sum it for net spend
        case when kind = 'refund' then -amount else amount end as signed_amount,
        ----------  timestamps
        cast(occurred_at as timestamp) as occurred_at,
        cast(occurred_at as date) as occurred_date,
        -- as it landed (TIMESTAMP WITH TIME ZONE): filter time ranges on this one. The landing table is
        -- stored in time order and DuckDB skips whole row groups on a range of a stored column, not of a cast
        occurred_at as occurred_at_tz,
        ----------  lineage
        _batch_id as batch_id
    from source
)

select * from renamed

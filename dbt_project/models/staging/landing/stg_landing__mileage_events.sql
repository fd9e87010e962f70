-- One row per mileage event: an earn (a future lot) or a redemption.
with

source as (
    select * from {{ source('landing', 'mileage_events') }}
),

renamed as (
    select
        ----------  ids
        event_id as mileage_event_id,
        customer_id,
        transaction_id,
        ----------  attributes
        kind as mileage_event_kind,
        points,
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

-- One row per interaction: a message sent/opened/clicked, a visit or a call.
with

source as (
    select * from {{ source('landing', 'interactions') }}
),

renamed as (
    select
        ----------  ids
        interaction_id,
        customer_id,
        campaign_id,
        ----------  attributes
        channel,
        kind as interaction_kind,
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

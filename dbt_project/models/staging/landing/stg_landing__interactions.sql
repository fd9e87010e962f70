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
        ----------  lineage
        _batch_id as batch_id
    from source
)

select * from renamed

-- One row per complaint: the latest version wins (a resolved row replaces the open one).
with

source as (
    select * from {{ source('landing', 'complaints') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by complaint_id
            order by resolved_at desc nulls last, _source_file desc
        ) as version_rank
    from source
),

renamed as (
    select
        ----------  ids
        complaint_id,
        customer_id,
        ----------  attributes
        category as complaint_category,
        satisfaction as satisfaction_score,
        resolved_at is not null as is_resolved,
        ----------  timestamps
        cast(opened_at as timestamp) as opened_at,
        cast(resolved_at as timestamp) as resolved_at,
        ----------  lineage
        _batch_id as batch_id
    from ranked
    where version_rank = 1
)

select * from renamed

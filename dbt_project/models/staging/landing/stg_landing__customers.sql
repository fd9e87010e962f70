-- One row per customer: the latest version (highest updated_at) wins.
with

source as (
    select * from {{ source('landing', 'customers') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by customer_id
            order by updated_at desc, _source_file desc
        ) as version_rank
    from source
),

renamed as (
    select
        ----------  ids
        customer_id,
        ----------  attributes
        region,
        birth_year,
        marketing_consent as has_marketing_consent,
        ----------  pii
        email,
        phone,
        ----------  dates and timestamps
        signup_date,
        cast(updated_at as timestamp) as updated_at,
        ----------  lineage
        _batch_id as batch_id
    from ranked
    where version_rank = 1
)

select * from renamed

-- One row per customer version (a customer arrives again when, say, their consent changes): what
-- was known about them from updated_at on. The marts read consent as of the run's date from here,
-- so re-running an old date never uses a consent given or withdrawn after it.
with

source as (
    select * from {{ source('landing', 'customers') }}
),

renamed as (
    select
        ----------  ids
        customer_id,
        ----------  attributes
        marketing_consent as has_marketing_consent,
        ----------  timestamps
        cast(updated_at as timestamp) as updated_at,
        ----------  lineage
        _batch_id as batch_id
    from source
)

select * from renamed

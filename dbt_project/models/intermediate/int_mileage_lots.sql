-- One row per mileage lot: every earn event, and every pre-grant of the rewards ledger, with its
-- expiry. `consumption_start`/`_end` place an earn lot in the customer's consumption order,
-- soonest-expiring first: a redemption uses the earn lots in that order. Pre-grants expire sooner
-- and arrive later, so they are allocated as their own class first
-- (int_mileage_redemption_allocations) and have no place in that order (null ranges).
--
-- Built incrementally by customer (macros/incremental.sql): a day's build recomputes, whole, only
-- the customers with a lot the table does not have yet (a new earn event or pre-grant; a back-dated
-- earn event moves the consumption order of that customer's later lots, so all their lots are
-- recomputed), and every customer when earn_expiry_days changed. The new lots are the rows after
-- the table's newest ones when the sources hold as many before as the table has (mileage_lots_marks);
-- otherwise every lot is compared with the table, and a lot in the table that its sources no longer
-- have fails the build.
{{ incremental_by_customer() }}
with

all_mileage_events as (
    select * from {{ ref('stg_landing__mileage_events') }}
),

all_ledger_entries as (
    select * from {{ ref('stg_ledger__entries') }}
),

{% if is_incremental() %}
{%- set marks = mileage_lots_marks() %}
lot_changes as materialized (
    {%- if marks is not none %}
    -- the sources hold every lot built and nothing more up to the marks: the rows after them are new
    select
        customer_id,
        true as is_new
    from all_mileage_events
    where
        mileage_event_kind = 'earn'
        {%- if marks.earn %}
        and occurred_at_tz > timezone('UTC', timestamp '{{ marks.earn }}')
        {%- endif %}
    union all
    select
        customer_id,
        true as is_new
    from all_ledger_entries
    where
        entry_kind = 'pregrant'
        {%- if marks.pregrant %}
        and as_of_date > date '{{ marks.pregrant }}'
        {%- endif %}
    {%- else %}
    -- a lot one side has and the other not: new in the sources, or (never, they are append-only) gone
    select
        coalesce(source_lots.customer_id, built.customer_id) as customer_id,
        built.lot_id is null as is_new
    from (
        select mileage_event_id as lot_id, customer_id from all_mileage_events
        where mileage_event_kind = 'earn'
        union all
        select entry_key as lot_id, customer_id from all_ledger_entries
        where entry_kind = 'pregrant'
    ) as source_lots
    full outer join {{ this }} as built
        on source_lots.lot_id = built.lot_id
    where source_lots.lot_id is null or built.lot_id is null
    {%- endif %}
),

changed_customers as (
    select customer_id from lot_changes
    union
    -- earn_expiry_days changed since the table was built: every customer's lots expire differently
    select customer_id from {{ this }}
    where exists (
        select 1 from {{ this }}
        where
            lot_kind = 'earn'
            and expires_at != granted_at + to_days({{ setting('earn_expiry_days') }})
    )
),

{% endif %}

mileage_events as (
    select * from all_mileage_events
    {{ only_changed_customers() }}
),

ledger_entries as (
    select * from all_ledger_entries
    {{ only_changed_customers() }}
),

earned_lots as (
    select
        ----------  ids
        mileage_event_id as lot_id,
        customer_id,
        ----------  attributes
        'earn' as lot_kind,
        points as granted_points,
        ----------  timestamps
        occurred_at as granted_at,
        occurred_at + to_days({{ setting('earn_expiry_days') }}) as expires_at,
        cast(null as date) as decision_date
    from mileage_events
    where mileage_event_kind = 'earn'
),

earned_lots_ordered as (
    select
        *,
        -- points are BIGINT everywhere (a sum is HUGEINT, which BI drivers read badly); an overflow fails
        cast(sum(granted_points) over (
            partition by customer_id
            order by expires_at, granted_at, lot_id
            rows between unbounded preceding and current row
        ) as bigint) as consumption_end
    from earned_lots
),

earned_lots_placed as (
    select
        *,
        consumption_end - granted_points as consumption_start
    from earned_lots_ordered
),

pregrant_lots as (
    select
        ----------  ids
        entry_key as lot_id,
        customer_id,
        ----------  attributes
        'pregrant' as lot_kind,
        points as granted_points,
        ----------  timestamps
        effective_at as granted_at,
        expires_at,
        as_of_date as decision_date,
        ----------  consumption order: none, pre-grants are allocated first
        cast(null as bigint) as consumption_end,
        cast(null as bigint) as consumption_start
    from ledger_entries
    where entry_kind = 'pregrant'
),

final as (
    select * from earned_lots_placed
    union all
    select * from pregrant_lots
)

select * from final
{{ fail_if_sources_lost_rows('lot_changes', 'lot_id', 'lot(s)') }}

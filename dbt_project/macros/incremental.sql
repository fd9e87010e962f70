{#-
    Incremental builds by customer (int_mileage_lots, int_mileage_redemption_allocations).

    These models are a function of each customer's own append-only history (raw landing rows and
    ledger entries are never updated or deleted), not of the as-of date. So the daily build
    recomputes only the customers whose inputs changed since the last build, whole, and swaps
    their rows in (incremental_strategy delete+insert on customer_id): a back-dated event recomputes
    all of that customer's rows, a re-run of an earlier date gives what a full rebuild gives, and a
    changed earn_expiry_days (the one setting they read) recomputes every customer.
    `dbt build --full-refresh` (`boomerang dbt build --full-refresh`) rebuilds from all history;
    tests/warehouse/test_incremental.py holds the two equal.
-#}
{% macro incremental_by_customer() -%}
    {{ config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='customer_id',
        on_schema_change='append_new_columns',
    ) }}
{%- endmacro %}


{#-
    In an increment, keep only the rows of the customers to recompute (the model's
    `changed_customers` CTE); in a full build, every row. Put it where a source CTE's `where` goes.
-#}
{% macro only_changed_customers() -%}
    {%- if is_incremental() -%}
        where customer_id in (select customer_id from changed_customers)
    {%- endif -%}
{%- endmacro %}


{#-
    An increment is wrong when a row built earlier is gone from the model's sources: a customer with
    nothing left to build would keep stale rows. The sources are append-only, so only a hand-made
    deletion in raw or ledger gets here; the build fails, writes nothing, and says how to rebuild.
    Put it after the model's final select: `changes` is the CTE of rows one side has and the other
    not (`is_new` false: built, gone from the sources), `column` a column of the model that the error
    row fills, `what` the rows' name in the message.
-#}
{% macro fail_if_sources_lost_rows(changes, column, what) -%}
    {%- if is_incremental() %}
union all by name
select
    error(
        '{{ this }}: ' || lost_rows || ' {{ what }} built earlier are gone from its sources, which are '
        || 'append-only (raw landing rows and ledger entries are never deleted). Nothing was written. '
        || 'Rebuild it from all history: boomerang dbt build --as-of <date> --full-refresh --select {{ this.identifier }}+'
    ) as {{ column }}
from (select count(*) as lost_rows from {{ changes }} where not is_new)
where lost_rows > 0
    {%- endif %}
{%- endmacro %}


{#-
    Which lots an increment of int_mileage_lots adds, found without comparing every lot id.

    The sources are append-only. So when they hold exactly as many earn events up to the table's
    newest earn lot as the table has earn lots (and as many pre-grants up to its newest decision
    date as it has pre-grant lots), the lots to add are the rows after those marks, read with a
    range on the stored time column (DuckDB skips the row groups before it). Returns the marks
    ({'earn': timestamp or none, 'pregrant': date or none; none: the table has no such lot, every
    row is new}), or none when the counts differ: an event arrived late for a time already built
    (or a source row was deleted), and the build compares every lot with the table. Logs which.
    A dbt unit test's `this` is its given rows, which a query cannot read: it compares every lot.
-#}
{% macro mileage_lots_marks() %}
    {%- if not (execute and is_incremental()) or model.resource_type == 'unit_test' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set marks_query -%}
        with built as (
            select
                max(granted_at) filter (where lot_kind = 'earn') as earn_mark,
                count(*) filter (where lot_kind = 'earn') as earn_lots,
                max(decision_date) filter (where lot_kind = 'pregrant') as pregrant_mark,
                count(*) filter (where lot_kind = 'pregrant') as pregrant_lots
            from {{ this }}
        )

        select
            cast(built.earn_mark as varchar) as earn_mark,
            built.earn_lots,
            (
                select count(*) from {{ ref('stg_landing__mileage_events') }}
                where mileage_event_kind = 'earn' and occurred_at_tz <= timezone('UTC', built.earn_mark)
            ) as earn_events,
            cast(built.pregrant_mark as varchar) as pregrant_mark,
            built.pregrant_lots,
            (
                select count(*) from {{ ref('stg_ledger__entries') }}
                where entry_kind = 'pregrant' and as_of_date <= built.pregrant_mark
            ) as pregrants
        from built
    {%- endset -%}
    {%- set row = run_query(marks_query).rows[0] -%}
    {%- if row['earn_events'] != row['earn_lots'] -%}
        {{ log(this ~ ": compared every lot with its sources: the landing mileage events hold "
            ~ row['earn_events'] ~ " earn events up to " ~ row['earn_mark'] ~ ", the table "
            ~ row['earn_lots'] ~ " earn lots (events that arrived late for a time already built)", info=True) }}
        {{ return(none) }}
    {%- endif -%}
    {%- if row['pregrants'] != row['pregrant_lots'] -%}
        {{ log(this ~ ": compared every lot with its sources: the ledger holds " ~ row['pregrants']
            ~ " pre-grants decided up to " ~ row['pregrant_mark'] ~ ", the table " ~ row['pregrant_lots']
            ~ " pre-grant lots", info=True) }}
        {{ return(none) }}
    {%- endif -%}
    {{ log(this ~ ": added the lots after " ~ (row['earn_mark'] or 'none yet') ~ " (earn) and "
        ~ (row['pregrant_mark'] or 'none yet') ~ " (pre-grants)", info=True) }}
    {{ return({'earn': row['earn_mark'], 'pregrant': row['pregrant_mark']}) }}
{% endmacro %}

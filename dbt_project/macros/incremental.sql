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

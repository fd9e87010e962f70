{#- A model's required columns, checked in one test: fails with one row per column that holds a
    null (`column_name`, and `null_rows`, how many rows), so run the compiled test to see which.

    dbt's own `not_null` is a test per column: a node each (about 50 ms of dbt's own work per node
    per build) and a scan of the model each, which on a staging view is a scan of all its history.
    This is one node and one scan for all of them, and it checks the same thing.

    `columns`: column names, or `{name: <column>, where: <condition>}` for a column required only
    on the rows the condition holds for (a pre-grant's lot_id, say: `entry_kind <> 'holdout'`).
    A table with an enforced contract states its required columns as not_null constraints instead:
    DuckDB refuses the null when the table is built, with no test to run. -#}
{% test not_null_columns(model, columns) %}
with null_counts as (
    select
    {%- for column in columns %}
        {%- if column is mapping %}
        count(*) filter (where {{ adapter.quote(column.name) }} is null and ({{ column.where }}))
            as {{ adapter.quote(column.name) }}
        {%- else %}
        count(*) filter (where {{ adapter.quote(column) }} is null) as {{ adapter.quote(column) }}
        {%- endif %}
        {{- "," if not loop.last }}
    {%- endfor %}
    from {{ model }}
)

select column_name, null_rows
from (unpivot null_counts on columns(*) into name column_name value null_rows)
where null_rows > 0
{% endtest %}

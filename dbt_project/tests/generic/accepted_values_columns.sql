{#- A model's columns with a fixed set of values, checked in one test: fails with one row per value
    outside its column's set (`column_name`, `value`, and `rows`, how many rows hold it), so run the
    compiled test to see which. Nulls pass, as in dbt's `accepted_values`: pair the column with
    `not_null_columns` where a value is required.

    dbt's own `accepted_values` is a test per column: a node each (about 50 ms of dbt's own work per
    node per build) and a scan of the model each, which on a staging view recomputes the view. This
    is one node and one scan (the columns unpivoted) for all of them, and it checks the same thing.

    `columns`: a mapping of column name to its accepted values. -#}
{% test accepted_values_columns(model, columns) %}
with

checked as (
    select
    {%- for column in columns %}
        cast({{ adapter.quote(column) }} as varchar) as {{ adapter.quote(column) }}
        {{- "," if not loop.last }}
    {%- endfor %}
    from {{ model }}
),

values_found as (
    -- one row per (column, non-null value); UNPIVOT leaves the nulls out
    unpivot checked on columns(*) into name column_name value value
)

select column_name, value, count(*) as rows
from values_found
where
{%- for column, accepted in columns.items() %}
    {{ "or " if not loop.first }}(column_name = '{{ column }}' and value not in (
        {%- for item in accepted %}'{{ item | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor -%}
    ))
{%- endfor %}
group by column_name, value
{% endtest %}

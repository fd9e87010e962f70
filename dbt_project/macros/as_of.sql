{#- The run's as-of date as a SQL date literal. Features and marts use only
    events strictly before it, so re-running a date gives the same answer. -#}
{% macro as_of_date() -%}
    cast('{{ var("as_of") }}' as date)
{%- endmacro %}

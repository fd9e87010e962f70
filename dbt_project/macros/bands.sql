{#- Tenure grouped for filtering and slicing: 0-6 months, 6-12 months, 1-3 years, 3+ years. The one
    definition: dim_customers (today's tenure) and the campaign marts (the tenure a decision
    recorded) both use it. -#}
{% macro tenure_band(tenure_days) -%}
    case
        when {{ tenure_days }} < 180 then '0-6 months'
        when {{ tenure_days }} < 365 then '6-12 months'
        when {{ tenure_days }} < 3 * 365 then '1-3 years'
        else '3+ years'
    end
{%- endmacro %}

{#- A grant's size in bands of miles (the campaign marts slice results by it): up to 500,
    501-750, 751-1000, over 1000. -#}
{% macro grant_size_band(points) -%}
    case
        when {{ points }} <= 500 then 'up to 500'
        when {{ points }} <= 750 then '501-750'
        when {{ points }} <= 1000 then '751-1000'
        else 'over 1000'
    end
{%- endmacro %}

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

{#- A grant's size in bands of miles (the campaign marts slice results by it): up to 50, 51-100,
    101-250, 251-500, over 500. Predicted grants are what a customer's purchases earn over the
    grant's window (tens to hundreds of miles); the flat amount is 500 and more. -#}
{% macro grant_size_band(points) -%}
    case
        when {{ points }} <= 50 then 'up to 50'
        when {{ points }} <= 100 then '51-100'
        when {{ points }} <= 250 then '101-250'
        when {{ points }} <= 500 then '251-500'
        else 'over 500'
    end
{%- endmacro %}

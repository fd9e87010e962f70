{#- Fails on every row where `column_name` is below `min_value` or above `max_value` (either bound
    may be left out; nulls pass: pair with not_null where a value is required). -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}
select *
from {{ model }}
where false
    {%- if min_value is not none %}
    or {{ column_name }} < {{ min_value }}
    {%- endif %}
    {%- if max_value is not none %}
    or {{ column_name }} > {{ max_value }}
    {%- endif %}
{% endtest %}

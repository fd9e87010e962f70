{#- "Open complaint": opened before the as-of date and not resolved before it (a resolution on or
    after the date is not known yet). The one definition: the churn features (complaints_open)
    and the policy's facts (open_complaint_days, which decides a make-good) both use it. -#}
{% macro is_open_complaint(opened_at, resolved_at, as_of_date) -%}
    ({{ opened_at }} < {{ as_of_date }} and ({{ resolved_at }} is null or {{ resolved_at }} >= {{ as_of_date }}))
{%- endmacro %}

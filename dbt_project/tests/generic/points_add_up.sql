{#- Fails on every row where `total` is not the sum of `parts`, or a part is below 0: the books of a
    lot (or a cohort) balance, e.g. granted = used + clawed back + outstanding + awaiting clawback. -#}
{% test points_add_up(model, total, parts) %}
select *
from {{ model }}
where {{ total }} != {{ parts | join(' + ') }}
    {%- for part in parts %}
    or {{ part }} < 0
    {%- endfor %}
{% endtest %}

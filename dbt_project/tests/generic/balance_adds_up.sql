{#- Per lot: 0 <= remaining <= granted, 0 <= used, 0 <= expired, and granted = used + remaining + expired. -#}
{% test balance_adds_up(model) %}
select *
from {{ model }}
where remaining_points < 0
    or remaining_points > granted_points
    or used_points < 0
    or expired_points < 0
    or granted_points != used_points + remaining_points + expired_points
{% endtest %}

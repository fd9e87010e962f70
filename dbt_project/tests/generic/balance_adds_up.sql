{#- Per lot: 0 <= outstanding <= granted, no part below 0, and granted = used + outstanding +
    expired + clawed_back + awaiting_clawback. Only earn lots expire silently; only pre-grants are
    clawed back (or wait for it), so each kind fills its own parts and leaves the others at 0. -#}
{% test balance_adds_up(model) %}
select *
from {{ model }}
where outstanding_points < 0
    or outstanding_points > granted_points
    or used_points < 0
    or expired_points < 0
    or clawed_back_points < 0
    or awaiting_clawback_points < 0
    or granted_points != used_points + outstanding_points + expired_points
    + clawed_back_points + awaiting_clawback_points
    or (lot_kind = 'earn' and clawed_back_points + awaiting_clawback_points != 0)
    or (lot_kind = 'pregrant' and expired_points != 0)
{% endtest %}

{#- "Active customer": bought within churn_lookback_days before the as-of date. The one definition:
    fct_customer_features.is_active (which ml/score.py scores) and fct_churn_labels.is_active (the
    population the model is trained on) both use it. `last_purchase_at` is the customer's latest
    purchase strictly before the as-of date (empty if none): active when it is on or after the
    midnight churn_lookback_days before, i.e. at most churn_lookback_days calendar days before. -#}
{% macro is_active_customer(last_purchase_at, as_of_date) -%}
    coalesce({{ last_purchase_at }} >= {{ active_since(as_of_date) }}, false)
{%- endmacro %}

{#- The start of the lookback window: a purchase on or after it (and before the as-of date) makes
    the customer active. A query may prune purchases older than this, never more. -#}
{% macro active_since(as_of_date) -%}
    {{ as_of_date }} - to_days({{ setting('churn_lookback_days') }})
{%- endmacro %}

{#- A value boomerang's settings own (boomerang.config, e.g. the policy's value_per_mile): every
    dbt call gets it as a var from Settings.dbt_vars() (`boomerang dbt ...`, run_dbt, `make lint`),
    and dbt_project.yml does not default it, so there is one definition. Without it dbt stops here
    and says how to pass it. Unit tests give their own values (overrides: vars). -#}
{% macro setting(name) -%}
    {%- set value = var(name, none) -%}
    {%- if execute and value is none -%}
        {{ exceptions.raise_compiler_error(
            "dbt var '" ~ name ~ "' is not set. It is one of boomerang's settings (boomerang.config, "
            ~ "Settings.dbt_vars()) and has no default in dbt_project.yml: run dbt through "
            ~ "`boomerang dbt ...`, or pass --vars with every value of Settings.dbt_vars()"
        ) }}
    {%- endif -%}
    {{ value }}
{%- endmacro %}

{#-
  Views, re-created only when they would change.

  dbt's own view materialization re-creates a view on every run: a new view beside it, two renames, a
  drop and a comment on each column, about a dozen statements and 0.1-0.2 s of a 2-core machine per
  view; a day's two dbt calls make 15 of them, for views that change only when the project does.

  This one first creates the model's SQL as a probe view beside the view (DuckDB binds it to what it
  reads now), then compares the two as DuckDB writes them back: the same query, the same column names
  and types, and the comments dbt's persist_docs would put on them. When everything matches, the view
  is kept as it is and dbt.log says so; otherwise, on --full-refresh, for a model with hooks, or when
  there is no view yet, dbt's own materialization re-creates it. The probe is created the way dbt
  creates the view, so an enforced contract is checked on every run either way.

  A kept view is the view dbt would have created: the comparison is on DuckDB's own rendering of the
  query, so a changed model, macro or var that changes the SQL re-creates it, and so does an upstream
  table whose columns changed (the probe's columns are compared with the view's).
-#}
{% materialization view, adapter='duckdb' %}
  {%- set existing = load_cached_relation(this) -%}
  {%- set keepable = existing is not none and existing.is_view and not should_full_refresh()
      and not pre_hooks and not post_hooks -%}
  {%- if not keepable -%}
    {{ return(dbt.materialization_view_default()) }}
  {%- endif -%}

  {%- set probe = this.incorporate(path={'identifier': this.identifier ~ '__boomerang_probe'}, type='view') -%}
  {{ drop_relation_if_exists(load_cached_relation(probe)) }}  {#- one a crash left behind -#}
  {#- Created the way dbt creates the view, its contract checked when enforced. -#}
  {% call statement('main') -%}
    {{ get_create_view_as_sql(probe, sql) }}
  {%- endcall %}
  {%- set same = boomerang_view_matches(this, probe) -%}
  {% do run_query('drop view if exists ' ~ probe) %}
  {{ adapter.commit() }}
  {%- if same -%}
    {{ log('Kept view ' ~ this ~ ': its query, columns and comments are what dbt would create', info=False) }}
    {{ return({'relations': [this.incorporate(type='view')]}) }}
  {%- endif -%}
  {{ return(dbt.materialization_view_default()) }}
{% endmaterialization %}


{#- Whether the view ``relation`` is what creating ``probe``'s query under its name would give: the
    same query (DuckDB's rendering, after the view's name), columns and types, and the comments
    persist_docs would write (the model's description on the view, each documented column's on it,
    none on the others). -#}
{% macro boomerang_view_matches(relation, probe) %}
  {%- set views = run_query(
      "select view_name, substr(sql, strpos(sql, ' AS ') + 4) as body, comment from duckdb_views() "
      ~ "where database_name = '" ~ relation.database ~ "' and schema_name = '" ~ relation.schema ~ "' "
      ~ "and view_name in ('" ~ relation.identifier ~ "', '" ~ probe.identifier ~ "')") -%}
  {%- set columns = run_query(
      "select table_name, column_name, data_type, comment from duckdb_columns() "
      ~ "where database_name = '" ~ relation.database ~ "' and schema_name = '" ~ relation.schema ~ "' "
      ~ "and table_name in ('" ~ relation.identifier ~ "', '" ~ probe.identifier ~ "') "
      ~ "order by table_name, column_index") -%}
  {%- set body = {} -%}
  {%- set comment = {} -%}
  {%- for row in views -%}
    {%- do body.update({row[0]: row[1]}) -%}
    {%- do comment.update({row[0]: row[2] or ''}) -%}
  {%- endfor -%}
  {%- if relation.identifier not in body or probe.identifier not in body
      or body[relation.identifier] != body[probe.identifier] -%}
    {{ return(false) }}
  {%- endif -%}

  {%- set documented = model.columns if config.persist_column_docs() else {} -%}
  {%- set expected = {'view': (model.description or '') if config.persist_relation_docs() else ''} -%}
  {%- set have = [] -%}
  {%- set want = [] -%}
  {%- for row in columns -%}
    {%- if row[0] == relation.identifier -%}
      {%- do have.append([row[1], row[2], row[3] or '']) -%}
    {%- else -%}
      {%- set doc = documented.get(row[1]) -%}
      {%- do want.append([row[1], row[2], (doc['description'] if doc else '') or '']) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(comment[relation.identifier] == expected['view'] and have == want) }}
{% endmacro %}

{#-
  Overrides dbt-duckdb's `external_location`: each invocation's scratch files carry its
  invocation id, so two dbt runs at once (a partition backfill and a full-refresh mart) never
  overwrite each other's parquet before the plugin has committed it to Delta. A flat name, not a
  sub-folder: DuckDB's COPY does not create folders (the plugin creates external_root itself).
  Callers delete the files afterwards (the plugin's receipts list them).
-#}
{%- macro external_location(relation, config) -%}
  {{- adapter.external_root() }}/{{ invocation_id }}__{{ relation.identifier }}.parquet
{%- endmacro -%}

{#-
  Overrides dbt-duckdb's `external_location`: each invocation's scratch files carry its
  invocation id, so two dbt runs at once (a partition backfill and a full-refresh mart) never
  overwrite each other's parquet before the plugin has committed it to Delta. A flat name, not a
  sub-folder: DuckDB's COPY does not create folders (the plugin creates the folder itself).
  The folder is $SLIPWAY_DBT_SCRATCH when set (read here, at run time: in profiles.yml it would
  enter dbt's partial-parse hash, see there), else the profile's external_root; the plugin's
  `scratch_dir` applies the same rule. Callers delete the files afterwards (the receipts list them).
-#}
{%- macro external_location(relation, config) -%}
  {%- set scratch = env_var('SLIPWAY_DBT_SCRATCH', '') | trim -%}
  {{- scratch or adapter.external_root() }}/{{ invocation_id }}__{{ relation.identifier }}.parquet
{%- endmacro -%}

"""The gold layer: a dbt project on dbt-duckdb that reads silver Delta tables and writes marts as Delta.

``dbt_delta_plugin`` is the dbt-duckdb plugin (loaded by dbt through ``profiles.yml``) and
``dbt_project`` locates the project and keeps its manifest fresh. Neither imports Dagster: the
assets in ``assets/gold.py`` wrap them.
"""

from slipway.gold.dbt_project import (
    DBT_PROFILES_DIR,
    DBT_PROJECT_DIR,
    MANIFEST_PATH,
    dbt_env,
    ensure_manifest,
    manifest_is_stale,
)

__all__ = [
    "DBT_PROFILES_DIR",
    "DBT_PROJECT_DIR",
    "MANIFEST_PATH",
    "dbt_env",
    "ensure_manifest",
    "manifest_is_stale",
]

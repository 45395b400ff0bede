"""Gold: the use case's dbt models (``dbt_project/models/<usecase>/``) as assets; dbt tests as
checks. The dbt resource is added by the loader (one per code location)."""

from __future__ import annotations

import dagster as dg

from assets.gold.assets import gold_definitions
from slipway.usecase import UseCase


def definitions(usecase: UseCase) -> dg.Definitions:
    assets, checks = gold_definitions(usecase)
    return dg.Definitions(assets=assets, asset_checks=checks)

"""Features: each declared feature table (Spark, Delta) with its blocking contract check."""

from __future__ import annotations

import dagster as dg

from assets.features.assets import feature_definitions
from slipway.usecase import UseCase


def definitions(usecase: UseCase) -> dg.Definitions:
    assets, checks = feature_definitions(usecase)
    return dg.Definitions(assets=assets, asset_checks=checks)

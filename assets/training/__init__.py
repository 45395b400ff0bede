"""Training and the registry: training set -> candidate -[blocking gate]-> champion."""

from __future__ import annotations

import dagster as dg

from assets.training.assets import training_definitions
from slipway.usecase import UseCase


def definitions(usecase: UseCase) -> dg.Definitions:
    assets, checks = training_definitions(usecase)
    return dg.Definitions(assets=assets, asset_checks=checks)

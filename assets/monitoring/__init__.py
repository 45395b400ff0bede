"""Monitoring: Evidently drift of every scored day and realised performance once labels
matured, with the (warning) drift check. The verdicts are computed once, in
``slipway.monitoring``; these assets only record them."""

from __future__ import annotations

import dagster as dg

from assets.monitoring.assets import monitoring_definitions
from slipway.usecase import UseCase


def definitions(usecase: UseCase) -> dg.Definitions:
    assets, checks = monitoring_definitions(usecase)
    return dg.Definitions(assets=assets, asset_checks=checks)

"""Ingestion: landing -> bronze -> silver (+ quarantine) per stream, and the reference snapshots."""

from __future__ import annotations

import dagster as dg

from assets.ingestion.assets import ingestion_definitions
from slipway.usecase import UseCase


def definitions(usecase: UseCase) -> dg.Definitions:
    assets, checks = ingestion_definitions(usecase)
    return dg.Definitions(assets=assets, asset_checks=checks)

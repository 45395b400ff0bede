"""The code location: every asset, check, job, schedule and sensor of Slipway in one place."""

from __future__ import annotations

import warnings

import dagster as dg

from assets.ingestion import ingestion_definitions
from orchestration.resources import build_resources
from slipway.usecases import get_usecase

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def build_definitions() -> dg.Definitions:
    usecase = get_usecase()
    assets, checks = ingestion_definitions(usecase)
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        resources=build_resources(),
    )


defs = build_definitions()

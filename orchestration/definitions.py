"""The code location: every asset, check, job, schedule and sensor of Slipway in one place."""

from __future__ import annotations

import warnings

import dagster as dg

from assets.canary import canary_checks
from assets.feast import feast_definitions
from assets.features import feature_definitions
from assets.gold import dbt_resource, gold_definitions
from assets.ingestion import ingestion_definitions
from assets.monitoring import monitoring_definitions
from assets.scoring import scoring_definitions
from assets.streaming import streaming_definitions
from assets.training import training_definitions
from orchestration.resources import build_resources
from slipway.usecases import get_usecase

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def build_definitions() -> dg.Definitions:
    usecase = get_usecase()
    assets, checks = ingestion_definitions(usecase)
    gold_assets, gold_checks = gold_definitions()
    feature_assets, feature_checks = feature_definitions(usecase)
    training_assets, training_checks = training_definitions(usecase)
    assets += gold_assets + feature_assets + feast_definitions(usecase) + training_assets
    monitoring_assets, monitoring_checks = monitoring_definitions(usecase)
    assets += scoring_definitions(usecase) + monitoring_assets
    assets += streaming_definitions(usecase)
    checks += gold_checks + feature_checks + training_checks + monitoring_checks
    checks += canary_checks(usecase)
    from orchestration.jobs import jobs
    from orchestration.schedules import schedules
    from orchestration.sensors import sensors
    from orchestration.streaming import live_jobs, live_sensors

    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[*jobs(), *live_jobs()],
        schedules=schedules(),
        sensors=[*sensors(), *live_sensors()],
        resources={**build_resources(), "dbt": dbt_resource()},
    )


defs = build_definitions()

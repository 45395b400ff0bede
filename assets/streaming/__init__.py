"""The live path: the served-decision log drained into Delta, its online/offline consistency,
the canary guard, and the jobs and sensors that run them. Only for a use case that is served online."""

from __future__ import annotations

import dagster as dg

from assets.streaming.assets import streaming_definitions
from assets.streaming.canary import canary_checks
from assets.streaming.sensors import live_jobs, live_sensors
from slipway.usecase import UseCase


def definitions(usecase: UseCase) -> dg.Definitions:
    if usecase.serving is None:
        return dg.Definitions()
    jobs = live_jobs(usecase)
    return dg.Definitions(
        assets=streaming_definitions(usecase),
        asset_checks=canary_checks(usecase),
        jobs=jobs,
        sensors=live_sensors(usecase, jobs),
    )

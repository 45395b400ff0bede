"""The live path: the served-decision log drained into Delta, its online/offline consistency,
and the jobs and sensors that run both. Only for a use case that is served online."""

from __future__ import annotations

import dagster as dg

from assets.streaming.assets import streaming_definitions
from assets.streaming.sensors import live_jobs, live_sensors
from slipway.usecase import UseCase


def definitions(usecase: UseCase) -> dg.Definitions:
    if usecase.serving is None:
        return dg.Definitions()
    jobs = live_jobs(usecase)
    return dg.Definitions(
        assets=streaming_definitions(usecase), jobs=jobs, sensors=live_sensors(usecase, jobs)
    )

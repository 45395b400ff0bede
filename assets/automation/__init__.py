"""Automation: what runs a use case's loop by itself — its jobs, the landing and drift sensors,
the automation-condition sensor and the schedules."""

from __future__ import annotations

import dagster as dg

from assets.automation.jobs import usecase_jobs
from assets.automation.schedules import schedules
from assets.automation.sensors import sensors
from slipway.usecase import UseCase


def definitions(usecase: UseCase) -> dg.Definitions:
    jobs = usecase_jobs(usecase)
    return dg.Definitions(
        jobs=jobs.all(), sensors=sensors(usecase, jobs), schedules=schedules(usecase, jobs)
    )

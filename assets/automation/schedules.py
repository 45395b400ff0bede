"""Schedules of one use case: the daily safety net for ingestion and scoring, a weekly retrain."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets.automation.jobs import UseCaseJobs
from assets.lib.keys import asset_key, scoped_name
from assets.lib.resources import LandingResource
from slipway.ingest.landing import read_manifest
from slipway.usecase import UseCase


def daily_ingestion(usecase: UseCase, jobs: UseCaseJobs) -> dg.ScheduleDefinition:
    """``<usecase>_daily_ingestion``: yesterday's partition at 03:00 UTC, unless already run."""
    primary = usecase.primary.name
    silver = asset_key(usecase, "silver", primary)

    @dg.schedule(
        name=scoped_name(usecase, "daily_ingestion"),
        job=jobs.daily_ingest_and_score,
        cron_schedule="0 3 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            "Every day at 03:00 UTC, yesterday's partition — unless the landing sensor already ran "
            "it, or the upstream is late (then the tick says so and the sensor runs it when files "
            "land)."
        ),
    )
    def _daily_ingestion(context: dg.ScheduleEvaluationContext, landing: LandingResource):
        day = (context.scheduled_execution_time - dt.timedelta(days=1)).date()
        root = landing.root_for(usecase.name)
        if read_manifest(root, primary, day) is None:
            return dg.SkipReason(
                f"upstream late: no manifest for {day} under {root}/{primary}/{day}"
            )
        key = day.isoformat()
        if key in context.instance.get_materialized_partitions(silver):
            return dg.SkipReason(f"{day} already processed (by the landing sensor)")
        return dg.RunRequest(
            run_key=f"daily:{key}", partition_key=key, tags={"slipway/trigger": "schedule"}
        )

    return _daily_ingestion


def weekly_retrain(usecase: UseCase, jobs: UseCaseJobs) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=scoped_name(usecase, "weekly_retrain"),
        job=jobs.retrain,
        cron_schedule="0 4 * * 0",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        tags={"slipway/trigger": "schedule", "slipway/reason": "weekly safety-net retrain"},
        description=(
            "Sundays 04:00 UTC: retrain on the latest matured labels; the gate decides promotion."
        ),
    )


def schedules(usecase: UseCase, jobs: UseCaseJobs) -> list:
    return [daily_ingestion(usecase, jobs), weekly_retrain(usecase, jobs)]

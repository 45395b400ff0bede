"""Schedules: the daily safety net for ingestion and scoring, and a periodic retrain."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from orchestration.jobs import daily_ingest_and_score, retrain
from orchestration.resources import LandingResource
from slipway.ingest.landing import read_manifest


@dg.schedule(
    name="daily_ingestion",
    job=daily_ingest_and_score,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Every day at 03:00 UTC, yesterday's partition — unless the landing sensor already ran it, "
        "or the upstream is late (then the tick says so and the sensor runs it when files land)."
    ),
)
def daily_ingestion(context: dg.ScheduleEvaluationContext, landing: LandingResource):
    day = (context.scheduled_execution_time - dt.timedelta(days=1)).date()
    if read_manifest(landing.root, "transactions", day) is None:
        return dg.SkipReason(
            f"upstream late: no manifest for {day} under {landing.root}/transactions/{day}"
        )
    key = day.isoformat()
    done = context.instance.get_materialized_partitions(dg.AssetKey(["silver", "transactions"]))
    if key in done:
        return dg.SkipReason(f"{day} already processed (by the landing sensor)")
    return dg.RunRequest(
        run_key=f"daily:{key}", partition_key=key, tags={"slipway/trigger": "schedule"}
    )


weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=retrain,
    cron_schedule="0 4 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    tags={"slipway/trigger": "schedule", "slipway/reason": "weekly safety-net retrain"},
    description="Sundays 04:00 UTC: retrain on the latest matured labels; the gate decides promotion.",
)


def schedules() -> list:
    return [daily_ingestion, weekly_retrain]

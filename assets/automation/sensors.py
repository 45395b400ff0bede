"""Sensors of one use case: new and late landing files, drift and performance alerts,
automation conditions (``<usecase>_landing_sensor``, ``<usecase>_drift_sensor``, …).

Each sensor decides *what* to run from facts in the landing zone or the lakehouse, and records
what it has seen in its cursor, so one piece of evidence never launches two runs (run keys are
derived from the evidence as well, which Dagster deduplicates on).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets.automation.jobs import UseCaseJobs
from assets.lib.keys import scoped_name
from assets.lib.resources import LakehouseResource, LandingResource
from slipway.ingest.arrivals import detect_arrivals
from slipway.ingest.pipeline import processed_days
from slipway.lakehouse import days_between
from slipway.usecase import UseCase

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def _range_tags(start: dt.date, end: dt.date) -> dict[str, str]:
    return {RANGE_START: start.isoformat(), RANGE_END: end.isoformat()}


def landing_sensor(usecase: UseCase, jobs: UseCaseJobs) -> dg.SensorDefinition:
    """New or late days of ``usecase``'s primary stream run its daily job (and, once labels
    matured, its performance evaluation)."""
    daily_ingest_and_score, evaluate_performance = (
        jobs.daily_ingest_and_score,
        jobs.evaluate_performance,
    )
    primary = usecase.primary.name

    @dg.sensor(
        name=scoped_name(usecase, "landing_sensor"),
        description=(
            f"New days of {usecase.name}'s landing zone (manifest of `{primary}` present) run the "
            "daily job for them; files that arrive late for a day already processed rebuild that "
            "day and everything after it in one run."
        ),
        jobs=[daily_ingest_and_score, evaluate_performance],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _landing_sensor(
        context: dg.SensorEvaluationContext, landing: LandingResource, lakehouse: LakehouseResource
    ) -> dg.SensorResult:
        return _landing_tick(context, usecase, jobs, landing, lakehouse)

    return _landing_sensor


def _landing_tick(
    context: dg.SensorEvaluationContext,
    usecase: UseCase,
    jobs: UseCaseJobs,
    landing: LandingResource,
    lakehouse: LakehouseResource,
) -> dg.SensorResult:
    daily_ingest_and_score, evaluate_performance = (
        jobs.daily_ingest_and_score,
        jobs.evaluate_performance,
    )
    streams = [s.name for s in usecase.streams]
    primary = usecase.primary.name
    processed = None if context.cursor else processed_days(lakehouse.get(usecase.name), primary)
    arrivals, state = detect_arrivals(
        landing.root_for(usecase.name),
        streams,
        context.cursor,
        primary=primary,
        processed_before=processed,
    )
    requests: list[dg.RunRequest] = []
    if arrivals.late_from is not None:
        end = arrivals.ready_days[-1]
        shown = ", ".join(arrivals.late_files[:5]) + (" …" if len(arrivals.late_files) > 5 else "")
        requests.append(
            dg.RunRequest(
                run_key=f"landing:late:{arrivals.late_from}:{arrivals.digest}",
                job_name=daily_ingest_and_score.name,
                tags={
                    **_range_tags(arrivals.late_from, end),
                    "slipway/trigger": "late_landing",
                    "slipway/reason": f"late files for {arrivals.late_from}: {shown}"[:1000],
                },
            )
        )
    for start, end in arrivals.new_ranges:
        requests.append(
            dg.RunRequest(
                run_key=f"landing:new:{start}:{end}:{arrivals.digest}",
                job_name=daily_ingest_and_score.name,
                tags={
                    **_range_tags(start, end),
                    "slipway/trigger": "landing",
                    "slipway/reason": f"new days {start}..{end}",
                },
            )
        )
        # A new day's labels mature the examples of the day `maturity_days` earlier.
        first = arrivals.ready_days[0]
        maturity = dt.timedelta(days=usecase.label.maturity_days)
        matured = [d - maturity for d in days_between(start, end) if d - maturity >= first]
        if matured:
            requests.append(
                dg.RunRequest(
                    run_key=f"performance:{matured[0]}:{matured[-1]}:{arrivals.digest}",
                    job_name=evaluate_performance.name,
                    tags={
                        **_range_tags(matured[0], matured[-1]),
                        "slipway/trigger": "labels_matured",
                    },
                )
            )
    if not requests:
        return dg.SensorResult(skip_reason="no new or late landing files", cursor=state)
    return dg.SensorResult(run_requests=requests, cursor=state)


def drift_sensor(usecase: UseCase, jobs: UseCaseJobs) -> dg.SensorDefinition:
    """Drift or a performance drop of ``usecase``'s champion requests its retraining."""

    @dg.sensor(
        name=scoped_name(usecase, "drift_sensor"),
        description=(
            "Drift or a performance drop beyond the use case's thresholds requests a retraining "
            "run (training set -> candidate -> gate -> champion), tagged with the reason and the "
            "report. Days whose contract failed are ignored: bad data is not drift."
        ),
        job=jobs.retrain,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _drift_sensor(
        context: dg.SensorEvaluationContext, lakehouse: LakehouseResource
    ) -> dg.SensorResult:
        return _drift_tick(context, usecase, lakehouse)

    return _drift_sensor


def _drift_tick(
    context: dg.SensorEvaluationContext, usecase: UseCase, lakehouse: LakehouseResource
) -> dg.SensorResult:
    from slipway.monitoring.alerts import scan_alerts

    scan = scan_alerts(lakehouse.get(usecase.name), usecase, after=context.cursor)
    alerts = scan.alerts
    if not alerts:
        ignored = "; ".join(f"{a.kind} {a.date}: {why}" for a, why in scan.suppressed[:5])
        reason = "no new drift or performance alerts" + (
            f" (ignored: {ignored})" if ignored else ""
        )
        return dg.SensorResult(skip_reason=reason[:1000], cursor=scan.cursor)
    # One retrain answers every alert of this tick; its run key is the newest evidence.
    latest = alerts[-1]
    reasons = "; ".join(f"{a.kind} {a.date} (v{a.model_version}): {a.reason}" for a in alerts)
    request = dg.RunRequest(
        run_key=f"retrain:{latest.evidence_key}",
        tags={
            "slipway/trigger": "drift" if any(a.kind == "drift" for a in alerts) else "performance",
            "slipway/reason": reasons[:1000],
            "slipway/evidence": ",".join(a.evidence_key for a in alerts)[:1000],
            "slipway/report": latest.report_uri or "",
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=scan.cursor)


def automation_sensor(usecase: UseCase) -> dg.AutomationConditionSensorDefinition:
    """Evaluates ``usecase``'s automation conditions (downstream marts follow their upstreams)."""
    return dg.AutomationConditionSensorDefinition(
        scoped_name(usecase, "automation_conditions"),
        target=dg.AssetSelection.key_prefixes([usecase.name]),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
        description=(
            f"Evaluates {usecase.name}'s automation conditions (downstream marts follow their "
            "upstreams)."
        ),
    )


def sensors(usecase: UseCase, jobs: UseCaseJobs) -> list:
    return [landing_sensor(usecase, jobs), drift_sensor(usecase, jobs), automation_sensor(usecase)]

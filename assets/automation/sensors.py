"""Sensors: new and late landing files, drift and performance alerts, automation conditions.

Each sensor decides *what* to run from facts in the landing zone or the lakehouse, and records
what it has seen in its cursor, so one piece of evidence never launches two runs (run keys are
derived from the evidence as well, which Dagster deduplicates on).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from orchestration.jobs import daily_ingest_and_score, evaluate_performance, retrain
from orchestration.resources import LakehouseResource, LandingResource
from slipway.ingest.arrivals import detect_arrivals
from slipway.ingest.pipeline import processed_days
from slipway.lakehouse import days_between
from slipway.usecases import get_usecase

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def _range_tags(start: dt.date, end: dt.date) -> dict[str, str]:
    return {RANGE_START: start.isoformat(), RANGE_END: end.isoformat()}


@dg.sensor(
    name="landing_sensor",
    description=(
        "New days in the landing zone (manifest present) run the daily job for them; files that "
        "arrive late for a day already processed rebuild that day and everything after it in one run."
    ),
    jobs=[daily_ingest_and_score, evaluate_performance],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(
    context: dg.SensorEvaluationContext, landing: LandingResource, lakehouse: LakehouseResource
) -> dg.SensorResult:
    usecase = get_usecase()
    streams = [s.name for s in usecase.streams]
    processed = None if context.cursor else processed_days(lakehouse.get(), usecase.streams[0].name)
    arrivals, state = detect_arrivals(
        landing.root, streams, context.cursor, processed_before=processed
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
        # A new day's chargebacks mature the labels of the day `maturity_days` earlier.
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


@dg.sensor(
    name="drift_sensor",
    description=(
        "Drift or a performance drop beyond the use case's thresholds requests a retraining run "
        "(training set -> candidate -> gate -> champion), tagged with the reason and the report. "
        "Days whose contract failed are ignored: bad data is not drift."
    ),
    job=retrain,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def drift_sensor(
    context: dg.SensorEvaluationContext, lakehouse: LakehouseResource
) -> dg.SensorResult:
    from slipway.monitoring.alerts import scan_alerts

    scan = scan_alerts(lakehouse.get(), get_usecase(), after=context.cursor)
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


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_conditions",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Evaluates the assets' automation conditions (downstream marts follow their upstreams).",
)


def sensors() -> list:
    return [landing_sensor, drift_sensor, automation_sensor]

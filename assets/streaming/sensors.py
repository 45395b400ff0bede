"""The live path's jobs and sensors, per use case: drain the served-decision log, check each
day's consistency (``<usecase>_drain_served``, ``<usecase>_served_drain_sensor``, …).

``served_drain_sensor`` looks at the served log's backlog (entries the drain group has not
acked, on the log and on its local spool) and runs ``drain_served`` when there is one; its run
key is the log's length, so one backlog launches one run. ``consistency_sensor`` watches the
versions of ``scoring.served`` and of the batch inputs: when either moved, it runs the
consistency check for the recent days that have both sides (one run over the range).
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg

from assets.lib.keys import scoped_name
from assets.lib.resources import LakehouseResource
from assets.streaming.assets import consistency_key, served_key
from slipway.usecase import UseCase

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
RECENT_DAYS = 7


def live_jobs(usecase: UseCase) -> list:
    """``<usecase>_drain_served`` and ``<usecase>_live_consistency``."""
    return [
        dg.define_asset_job(
            scoped_name(usecase, "drain_served"),
            selection=dg.AssetSelection.assets(served_key(usecase)),
            description="The served-decision log -> scoring.served (idempotent on the event id).",
        ),
        dg.define_asset_job(
            scoped_name(usecase, "live_consistency"),
            selection=dg.AssetSelection.assets(consistency_key(usecase)),
            description="Served features against the offline point-in-time values, per day.",
        ),
    ]


def served_drain_sensor(usecase: UseCase, drain_served) -> dg.SensorDefinition:
    @dg.sensor(
        name=scoped_name(usecase, "served_drain_sensor"),
        description="Drains the served-decision log into scoring.served whenever it has a backlog.",
        job=drain_served,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _served_drain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        return _drain_tick(usecase)

    return _served_drain_sensor


def _drain_tick(usecase: UseCase) -> dg.SensorResult:
    from slipway.streaming.served import DRAIN_GROUP
    from slipway.streaming.streams import open_streams

    streams = open_streams(usecase)
    backlog, length, unreachable = 0, 0, []
    try:
        for log in streams.served.logs:
            try:
                log.ensure_group(DRAIN_GROUP)
                backlog += log.group_state(DRAIN_GROUP).backlog
                length += log.length()
            except ConnectionError as exc:  # the spool still drains while Redis is down
                unreachable.append(str(exc))
    finally:
        streams.close()
    if unreachable and not backlog:
        return dg.SensorResult(skip_reason=f"served log unreachable: {unreachable[0]}"[:1000])
    if not backlog:
        return dg.SensorResult(skip_reason="the served log has no backlog")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                # New entries make a new key; a backlog that a failed drain left is retried hourly.
                run_key=f"drain:{length}:{backlog}:{dt.datetime.now(dt.UTC):%Y%m%d%H}",
                tags={
                    "slipway/trigger": "served_backlog",
                    "slipway/reason": f"{backlog} undrained",
                },
            )
        ]
    )


def consistency_request(lakehouse, cursor: str | None) -> tuple[dg.RunRequest | None, str, str]:
    """The consistency run due now (if any), the new cursor and a reason."""
    from slipway.scoring.batch import INPUTS
    from slipway.streaming.served import SERVED

    versions = {name: lakehouse.version(name) for name in (SERVED, INPUTS)}
    state = json.dumps(versions, sort_keys=True)
    if versions[SERVED] is None or versions[INPUTS] is None:
        return None, cursor or "", "no served decisions or no batch inputs yet"
    if state == cursor:
        return None, state, "served decisions and batch inputs unchanged"
    served_days = set(lakehouse.read(SERVED, columns=["date"])["date"].to_pylist())
    batch_days = set(lakehouse.read(INPUTS, columns=["date"])["date"].to_pylist())
    days = sorted(served_days & batch_days)
    if not days:
        return None, state, "no day has both served decisions and batch inputs"
    end = days[-1]
    start = max(days[0], end - dt.timedelta(days=RECENT_DAYS - 1))
    request = dg.RunRequest(
        run_key=f"consistency:{start}:{end}:{state}",
        tags={
            RANGE_START: start.isoformat(),
            RANGE_END: end.isoformat(),
            "slipway/trigger": "served_or_batch_moved",
        },
    )
    return request, state, f"{start}..{end}"


def consistency_sensor(usecase: UseCase, live_consistency) -> dg.SensorDefinition:
    @dg.sensor(
        name=scoped_name(usecase, "consistency_sensor"),
        description=(
            "Runs the online/offline consistency check for recent days once their served "
            "decisions or their batch inputs changed."
        ),
        job=live_consistency,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _consistency_sensor(
        context: dg.SensorEvaluationContext, lakehouse: LakehouseResource
    ) -> dg.SensorResult:
        request, cursor, reason = consistency_request(lakehouse.get(usecase.name), context.cursor)
        if request is None:
            return dg.SensorResult(skip_reason=reason, cursor=cursor)
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return _consistency_sensor


def live_sensors(usecase: UseCase, jobs: list) -> list:
    drain_served, live_consistency = jobs
    return [
        served_drain_sensor(usecase, drain_served),
        consistency_sensor(usecase, live_consistency),
    ]

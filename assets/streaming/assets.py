"""The live path in the graph: the served-decision log drained into Delta, and its consistency.

``scoring/served`` drains every decision the stream consumer and the HTTP app logged into the
Delta table ``scoring.served`` (idempotent on the event id; the ``served_drain_sensor`` runs it
when the log has a backlog). ``monitoring/online_offline_consistency`` compares, per day, every
served feature with the offline point-in-time value of the same event and fails its check on
any mismatch; the ``consistency_sensor`` runs it for the days whose served or batch side moved.
"""

import dagster as dg
import pandas as pd

from assets.lib.keys import asset_key, scoped_name
from assets.lib.metadata import (
    add_partition_metadata,
    data_version,
    day_rows,
    preview,
    range_written,
)
from assets.lib.partitions import daily_partitions, partition_dates
from assets.lib.resources import LakehouseResource
from assets.lib.retries import REMOTE_RETRY_POLICY, retry_transient_only
from assets.scoring.assets import predictions_key
from slipway.streaming.consistency import ConsistencyRun, check_consistency
from slipway.usecase import UseCase

LIVE = "live"
CONSISTENT_CHECK = "online_offline_consistent"


def served_key(usecase: UseCase) -> dg.AssetKey:
    return asset_key(usecase, "scoring", "served")


def consistency_key(usecase: UseCase) -> dg.AssetKey:
    return asset_key(usecase, "monitoring", "online_offline_consistency")


def _feature_table(run: ConsistencyRun) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "date": str(d.date),
                "feature": f.feature,
                "source": f.source,
                "compared": f.compared,
                "mismatched": f.mismatched,
                "mismatch_rate": round(f.mismatch_rate, 6),
                "smape": None if f.smape is None else round(f.smape, 6),
                "example": f.examples[0] if f.examples else "",
            }
            for d in run.days
            for f in d.features
        ]
    )


def streaming_definitions(usecase: UseCase) -> list:
    """The live path's assets (each consistency day carries its check)."""
    window_deps = [
        dg.AssetDep(asset_key(usecase, "features", fs.name)) for fs in usecase.window_features
    ]
    SERVED_KEY, CONSISTENCY_KEY = served_key(usecase), consistency_key(usecase)

    @dg.asset(
        key=SERVED_KEY,
        group_name=scoped_name(usecase, LIVE),
        kinds={"redis", "delta"},
        description=(
            "Every online decision (stream consumer and HTTP), drained from the served-decision "
            "log into Delta, one row per event id, partitioned by day."
        ),
        # the drain is idempotent on the event id: a retried drain skips what it already wrote
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def served(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        from slipway.streaming.served import SERVED, drain_served
        from slipway.streaming.streams import open_streams

        lakehouse = lakehouse.get(usecase.name)
        streams = open_streams(usecase)
        try:
            result = drain_served(
                lakehouse, usecase, streams.served.logs, consumer=f"drain-{context.run.run_id[:8]}"
            )
        finally:
            streams.close()
        context.log.info(
            f"drained {result.read:,} log entries: {result.added:,} new decisions, "
            f"{result.duplicates:,} already there, {len(result.corrupt)} corrupt"
        )
        for problem in result.corrupt[:20]:
            context.log.error(f"corrupt served-log entry: {problem}")
        for problem in result.unavailable:
            context.log.warning(f"not drained now (drained on a later run): {problem}")
        metadata = {
            "drained_entries": result.read,
            "new_decisions": result.added,
            "duplicates_skipped": result.duplicates,
            "corrupt_entries": len(result.corrupt),
            "logs_unavailable": dg.MetadataValue.json(result.unavailable),
            "decisions_by_day": dg.MetadataValue.json(result.days),
            "served_log": streams.names.served,
        }
        if result.version is not None:  # no decision yet: no table, no version to show
            metadata["table_version"] = result.version
            metadata["table_uri"] = dg.MetadataValue.path(lakehouse.uri(SERVED))
            metadata["dagster/row_count"] = lakehouse.read(SERVED, columns=["date"]).num_rows
        return dg.MaterializeResult(
            metadata=metadata,
            data_version=data_version(result.version) if result.version is not None else None,
        )

    @dg.asset(
        key=CONSISTENCY_KEY,
        deps=[dg.AssetDep(SERVED_KEY), dg.AssetDep(predictions_key(usecase)), *window_deps],
        group_name=scoped_name(usecase, LIVE),
        partitions_def=daily_partitions(usecase),
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"delta"},
        description=(
            "Per day and feature: served values against the offline point-in-time values of the "
            "same events (compared, mismatched, mismatch_rate, sMAPE); the served score against "
            "the batch score."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                CONSISTENT_CHECK,
                asset=CONSISTENCY_KEY,
                description=(
                    "Fails when any served feature of the day differs from its offline value "
                    "(relative 1e-6; counts exactly) or a served decision has no offline row."
                ),
            )
        ],
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def online_offline_consistency(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        start, end = partition_dates(context)
        lakehouse = lakehouse.get(usecase.name)
        run = check_consistency(lakehouse, usecase, start, end, run_id=context.run.run_id)
        for day in run.days:
            (context.log.info if day.passed else context.log.error)(day.summary())
        table = _feature_table(run)
        compared = [d for d in run.days if d.status == "compared"]
        mismatched = [f for d in compared for f in d.features if f.mismatched]
        text = "; ".join(
            d.summary() for d in run.days if d.status == "compared" or len(run.days) == 1
        )
        check = dg.AssetCheckResult(
            check_name=CONSISTENT_CHECK,
            passed=run.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(text or "no served decisions in the range")[:2000],
            metadata={
                "days_compared": len(compared),
                "decisions_compared": sum(d.served_rows for d in compared),
                "mismatches": sum(d.mismatches for d in compared),
                "mismatched_features": dg.MetadataValue.json(
                    sorted({f.feature for f in mismatched})
                ),
                "unmatched_served": sum(d.unmatched_served for d in compared),
            },
        )
        metadata = {
            "days_compared": len(compared),
            "decisions_compared": sum(d.served_rows for d in compared),
            "mismatches": sum(d.mismatches for d in compared),
            "source_versions": dg.MetadataValue.json(run.read_versions),
            "per_feature": preview(table, rows=200),
        }
        if run.written is not None:
            counts = lakehouse.rows_per_date(
                run.written.name, (start, end), version=run.written.version
            )
            add_partition_metadata(context, lambda day: day_rows(counts, day))
            metadata.update(range_written(run.written, start, end))
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[check],
            data_version=data_version(run.written) if run.written is not None else None,
        )

    return [served, online_offline_consistency]

"""Feature-table assets (Spark, Delta) with a blocking Pandera contract check per table.

Each partitioned feature table depends on a *window* of upstream days (its lookback), declared
with a time-window partition mapping: a late file for day D therefore marks D and the following
lookback days stale in the UI, which is exactly the set a backfill must rebuild. The role of each
input comes from the declaration: a reference snapshot is read whole, a stream or a gold table
by the lookback window, and the label stream's window ends the day before (a label must have
been reported before the day it is used on).
"""

import datetime as dt

import dagster as dg

from assets.lib.keys import asset_key, scoped_name, table_key
from assets.lib.metadata import (
    add_partition_metadata,
    column_schema,
    data_version,
    day_rows,
    preview,
    range_written,
    read_versions,
    written,
)
from assets.lib.partitions import daily_partitions, partition_dates
from assets.lib.resources import LakehouseResource, SparkResource
from assets.lib.retries import REMOTE_RETRY_POLICY, retry_transient_only
from slipway.features.build import build_feature_table, check_feature_table, feature_table_name
from slipway.usecase import FeatureTable, UseCase

FEATURES = "features"


def _range(context) -> tuple[dt.date | None, dt.date | None]:
    if not context.has_partition_key_range and not context.has_partition_key:
        return None, None
    return partition_dates(context)


def input_role(usecase: UseCase, table: str) -> str:
    """How a feature table reads the lakehouse table ``table``: ``reference`` (a snapshot, read
    whole), ``label`` (the label stream: days before the row's) or ``window`` (the lookback)."""
    layer, _, base = table.partition(".")
    if layer == "silver" and base in {r.name for r in usecase.references}:
        return "reference"
    if layer == "silver" and base == usecase.label.stream:
        return "label"
    return "window"


def _deps(table: FeatureTable, usecase: UseCase) -> list[dg.AssetDep]:
    deps = []
    for upstream in table.inputs:
        key = table_key(usecase, upstream)
        role = input_role(usecase, upstream)
        if table.partitioned and role != "reference":
            # Labels for day D's row must have been reported before D: the window ends a day early.
            end_offset = -1 if role == "label" else 0
            deps.append(
                dg.AssetDep(
                    key,
                    partition_mapping=dg.TimeWindowPartitionMapping(
                        start_offset=-table.lookback_days,
                        end_offset=end_offset,
                        allow_nonexistent_upstream_partitions=True,
                    ),
                )
            )
        else:
            deps.append(dg.AssetDep(key))
    return deps


def feature_asset(table: FeatureTable, usecase: UseCase) -> list:
    key = asset_key(usecase, "features", table.name)
    partitions = daily_partitions(usecase) if table.partitioned else None

    @dg.asset(
        key=key,
        deps=_deps(table, usecase),
        group_name=scoped_name(usecase, FEATURES),
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions else None,
        # Master-data features follow their snapshot; windowed ones are run by the daily job,
        # whose lookback a per-partition condition would not see.
        automation_condition=None if partitions else dg.AutomationCondition.eager(),
        kinds={"spark", "delta"},
        description=f"{table.description} Entity `{table.entity}`, timestamp `{table.timestamp}`.",
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def _feature(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource, spark: SparkResource
    ) -> dg.MaterializeResult:
        start, end = _range(context)
        lakehouse = lakehouse.get(usecase.name)
        result = build_feature_table(
            lakehouse,
            spark.session(),
            table,
            start,
            end,
        )
        if partitions is not None and start is not None and end is not None:
            counts = lakehouse.rows_per_date(
                result.written.name, (start, end), version=result.written.version
            )
            add_partition_metadata(context, lambda day: day_rows(counts, day))
            written_meta = range_written(result.written, start, end)
        else:
            written_meta = {**written(result.written), "dagster/row_count": result.rows}
        return dg.MaterializeResult(
            metadata={
                **written_meta,
                "input_versions": read_versions(result.inputs),
                "preview": preview(result.preview),
                "dagster/column_schema": column_schema(
                    lakehouse.dataset(feature_table_name(table)).schema
                ),
            },
            data_version=data_version(result.written),
        )

    @dg.asset_check(
        asset=key,
        name="contract",
        blocking=True,
        partitions_def=partitions,
        description="Blocking: the stored rows pass the feature contract (types, nulls, ranges, invariants).",
    )
    def _contract(
        context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
    ) -> dg.AssetCheckResult:
        start, end = _range(context)
        result = check_feature_table(lakehouse.get(usecase.name), table, start, end)
        summary = (
            result.failures.groupby(["column", "check"], dropna=False)
            .size()
            .reset_index(name="rows")
            if not result.passed
            else None
        )
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"{len(result.failures)} contract failures in {result.rows} rows"
                if not result.passed
                else f"{result.rows} rows pass the contract"
            ),
            metadata={
                "rows_checked": result.rows,
                **({"failures": preview(summary, 20)} if summary is not None else {}),
            },
        )

    return [_feature, _contract]


def feature_definitions(usecase: UseCase) -> tuple[list, list]:
    assets, checks = [], []
    for table in usecase.feature_tables:
        asset, check = feature_asset(table, usecase)
        assets.append(asset)
        checks.append(check)
    return assets, checks

"""Batch scoring per day: the champion's predictions, the challenger's in shadow."""

import dagster as dg

from assets.feast.assets import registry_key
from assets.lib.keys import asset_key, scoped_name, table_key
from assets.lib.metadata import (
    add_partition_metadata,
    data_version,
    day_rows,
    preview,
    range_written,
    read_versions,
)
from assets.lib.partitions import daily_partitions, partition_dates
from assets.lib.resources import FeastResource, LakehouseResource
from assets.lib.retries import REMOTE_RETRY_POLICY, retry_transient_only
from assets.training.assets import champion_key
from slipway.lakehouse import TableRef
from slipway.scoring.batch import score_days
from slipway.usecase import UseCase

SCORING = "scoring"


def predictions_key(usecase: UseCase) -> dg.AssetKey:
    """``<usecase>/scoring/predictions``: what monitoring and the live path compare against."""
    return asset_key(usecase, "scoring", "predictions")


def scoring_definitions(usecase: UseCase) -> list:
    assert usecase.examples is not None

    @dg.asset(
        key=predictions_key(usecase),
        deps=[
            dg.AssetDep(table_key(usecase, usecase.examples.table)),
            dg.AssetDep(registry_key(usecase)),
            dg.AssetDep(champion_key(usecase)),
            *[dg.AssetDep(asset_key(usecase, "features", t.name)) for t in usecase.feature_tables],
        ],
        group_name=scoped_name(usecase, SCORING),
        partitions_def=daily_partitions(usecase),
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"lightgbm", "delta"},
        description="Each day's examples scored by the champion (and the challenger in shadow), with inputs kept.",
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def predictions(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource, feast: FeastResource
    ) -> dg.MaterializeResult:
        start, end = partition_dates(context)
        lakehouse = lakehouse.get(usecase.name)
        result = score_days(
            lakehouse,
            feast.store(usecase),
            usecase,
            start,
            end,
            run_id=context.run.run_id,
        )
        counts = lakehouse.rows_per_date(
            result.predictions.name, (start, end), version=result.predictions.version
        )
        add_partition_metadata(context, lambda day: day_rows(counts, day))
        return dg.MaterializeResult(
            metadata={
                **range_written(result.predictions, start, end),
                "range_flagged": result.flagged,
                "champion_version": result.champion_version,
                "challenger_version": result.challenger_version
                if result.challenger_version is not None
                else -1,
                "shadow_agreement": result.shadow_agreement
                if result.shadow_agreement is not None
                else -1.0,
                "inputs_version": result.inputs.version if result.inputs else -1,
                "source_versions": read_versions(
                    [TableRef(n, lakehouse.uri(n), v) for n, v in result.source_versions.items()]
                ),
                "preview": preview(result.preview),
            },
            data_version=data_version(result.predictions),
        )

    return [predictions]

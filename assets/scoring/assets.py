"""Batch scoring per day: the champion's predictions, the challenger's in shadow."""

import dagster as dg

from assets.metadata import preview, read_versions, written
from orchestration.partitions import daily_partitions, partition_dates
from slipway.lakehouse import TableRef
from slipway.scoring.batch import score_days
from slipway.usecase import UseCase

SCORING = "scoring"
PREDICTIONS_KEY = dg.AssetKey(["scoring", "predictions"])


def scoring_definitions(usecase: UseCase) -> list:
    @dg.asset(
        key=PREDICTIONS_KEY,
        deps=[
            dg.AssetDep(dg.AssetKey(["gold", "enriched_transactions"])),
            dg.AssetDep(dg.AssetKey(["feast", "registry"])),
            dg.AssetDep(dg.AssetKey(["registry", "champion"])),
            *[dg.AssetDep(dg.AssetKey(["features", t.name])) for t in usecase.feature_tables],
        ],
        group_name=SCORING,
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"lightgbm", "delta"},
        description="Each day's transactions scored by the champion (and the challenger in shadow), with inputs kept.",
        required_resource_keys={"lakehouse", "feast"},
    )
    def predictions(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        start, end = partition_dates(context)
        lakehouse = context.resources.lakehouse.get()
        result = score_days(
            lakehouse,
            context.resources.feast.store(),
            usecase,
            start,
            end,
            run_id=context.run.run_id,
            progress=context.log.info,
        )
        return dg.MaterializeResult(
            metadata={
                **written(result.predictions),
                "dagster/row_count": result.rows,
                "champion_version": result.champion_version,
                "challenger_version": result.challenger_version
                if result.challenger_version is not None
                else -1,
                "flagged": result.flagged,
                "shadow_agreement": result.shadow_agreement
                if result.shadow_agreement is not None
                else -1.0,
                "inputs_version": result.inputs.version if result.inputs else -1,
                "source_versions": read_versions(
                    [TableRef(n, lakehouse.uri(n), v) for n, v in result.source_versions.items()]
                ),
                "preview": preview(result.preview),
            }
        )

    return [predictions]

"""Ingestion assets: landing -> bronze -> silver (+ quarantine), and the reference snapshots.

Thin on purpose: each asset calls one function of ``slipway.ingest.pipeline`` for its partition
range and turns the result into metadata. The contract check is a separate, blocking asset check
that recomputes the verdict from the tables, so a failed day stops everything downstream and the
UI says why.
"""

import dagster as dg

from assets.lib.keys import asset_key, scoped_name
from assets.lib.metadata import (
    add_partition_metadata,
    column_schema,
    data_version,
    day_rows,
    preview,
    range_written,
    written,
)
from assets.lib.partitions import daily_partitions, partition_dates
from assets.lib.resources import LakehouseResource, LandingResource, SparkResource
from assets.lib.retries import REMOTE_RETRY_POLICY, retry_transient_only
from slipway.ingest import pipeline
from slipway.usecase import Reference, Stream, UseCase

INGESTION = "ingestion"


def writer_pool(usecase: UseCase, table: str) -> str:
    """The concurrency pool of the step that writes ``usecase``'s ``table`` (and the tables
    written with it): ``<usecase>_lakehouse-<table>``.

    The instance gives every pool one slot (``concurrency: pools: default_limit: 1`` in
    ``.dagster/dagster.yaml`` and the production template), so two runs over the same stream
    take turns instead of committing over each other; different streams (and use cases) still
    run side by side.
    """
    return scoped_name(usecase, f"lakehouse-{table}")


def bronze_asset(stream: Stream, usecase: UseCase) -> dg.AssetsDefinition:
    @dg.asset(
        key=asset_key(usecase, "bronze", stream.name),
        group_name=scoped_name(usecase, INGESTION),
        partitions_def=daily_partitions(usecase),
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"delta", "python"},
        pool=writer_pool(usecase, pipeline.bronze_table(stream.name)),
        retry_policy=REMOTE_RETRY_POLICY,
        description=f"Every landed line of `{stream.name}` verbatim, with source file, line and ingest run. {stream.description}",
    )
    @retry_transient_only
    def _bronze(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource, landing: LandingResource
    ) -> dg.MaterializeResult:
        start, end = partition_dates(context)
        result = pipeline.land_to_bronze(
            lakehouse.get(usecase.name),
            landing.root_for(usecase.name),
            stream,
            start,
            end,
            run_id=context.run.run_id,
        )
        if result.problems:
            context.log.warning(
                "files that do not match their manifest: " + "; ".join(result.problems)
            )
        by_day = {d.day: d for d in result.days}

        def day_figures(day):
            d = by_day.get(day)
            rows = d.rows if d else 0
            return {
                "rows_written": rows,
                "dagster/row_count": rows,
                "files": d.files if d else 0,
                "file_problems": dg.MetadataValue.json(
                    [f"{f} ({s})" for f, s, _, _ in d.statuses if s != "ok"] if d else []
                ),
            }

        add_partition_metadata(context, day_figures)
        return dg.MaterializeResult(
            metadata={
                **range_written(result.bronze, start, end),
                "files_table_version": result.files.version,
                "range_files": sum(d.files for d in result.days),
            },
            data_version=data_version(result.bronze),
        )

    return _bronze


def silver_assets(stream: Stream, usecase: UseCase) -> list:
    silver_key = asset_key(usecase, "silver", stream.name)
    quarantine_key = asset_key(usecase, "quarantine", stream.name)
    bronze_key = asset_key(usecase, "bronze", stream.name)
    group = scoped_name(usecase, INGESTION)
    partitions = daily_partitions(usecase)

    @dg.multi_asset(
        name=scoped_name(usecase, f"silver_{stream.name}"),
        specs=[
            dg.AssetSpec(
                silver_key,
                deps=[bronze_key],
                group_name=group,
                kinds={"delta", "spark"},
                description=f"`{stream.name}` typed, normalised, deduplicated by `{stream.key}` and contract-checked.",
            ),
            dg.AssetSpec(
                quarantine_key,
                deps=[bronze_key],
                group_name=group,
                kinds={"delta"},
                description=f"Rows of `{stream.name}` that broke the contract, with rule, column, value, file and line.",
            ),
        ],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=writer_pool(usecase, pipeline.silver_table(stream.name)),
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def _silver(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource, spark: SparkResource
    ):
        start, end = partition_dates(context)
        lakehouse = lakehouse.get(usecase.name)
        result = pipeline.bronze_to_silver(
            lakehouse,
            spark.session(),
            stream,
            usecase.ingest,
            start,
            end,
            run_id=context.run.run_id,
        )
        totals = result.totals()
        for name, version in result.rolled_back.items():
            context.log.warning(
                f"{name} rolled back to v{version}: a previous run died after committing it "
                "and before publishing it"
            )
        for held in result.held_days:
            context.log.error(
                f"{stream.name} {held.day} held back by the circuit breaker: {held.breaker_reason}"
            )
        verdicts = {v.day: v for v in result.verdicts}
        silver_rows = lakehouse.rows_per_date(
            result.silver.name, (start, end), version=result.silver.version
        )
        quarantine_rows = lakehouse.rows_per_date(
            result.quarantine.name, (start, end), version=result.quarantine.version
        )

        def silver_day(day):
            v = verdicts.get(day)
            return {
                **day_rows(silver_rows, day),
                "rows_landed": v.rows_landed if v else 0,
                "rows_silver": v.rows_silver if v else 0,
                "rows_quarantined": v.rows_quarantined if v else 0,
                "duplicates_dropped": v.duplicates_dropped if v else 0,
                "held_back": (v.breaker_reason or "") if v else "",
            }

        def quarantine_day(day):
            v = verdicts.get(day)
            return {
                **day_rows(quarantine_rows, day),
                "rules": dg.MetadataValue.json(v.rule_counts if v else {}),
            }

        add_partition_metadata(context, silver_day, asset_key=silver_key)
        add_partition_metadata(context, quarantine_day, asset_key=quarantine_key)
        yield dg.MaterializeResult(
            asset_key=silver_key,
            metadata={
                **range_written(result.silver, start, end),
                **{f"range_{k}": n for k, n in totals.items()},
                "bronze_version_read": result.bronze_read.version,
                "audit_table_version": result.audit.version,
                # The audit commit is the publish record: these versions belong together.
                "published_versions": dg.MetadataValue.json(result.published),
                "rolled_back": dg.MetadataValue.json(result.rolled_back),
                "held_days": dg.MetadataValue.json(
                    {str(v.day): v.breaker_reason for v in result.held_days}
                ),
                "preview": preview(result.preview),
                "dagster/column_schema": column_schema(
                    lakehouse.dataset(pipeline.silver_table(stream.name)).schema
                ),
            },
            data_version=data_version(result.silver),
        )
        yield dg.MaterializeResult(
            asset_key=quarantine_key,
            metadata={
                **range_written(result.quarantine, start, end),
                "range_rows_quarantined": totals["rows_quarantined"],
            },
            data_version=data_version(result.quarantine),
        )

    @dg.asset_check(
        asset=silver_key,
        name="contract",
        blocking=True,
        partitions_def=partitions,
        description=(
            "Blocking: every landed row is in silver or quarantine (or a counted exact duplicate), "
            "no day was held back by the circuit breaker, and published rows pass the contract."
        ),
    )
    def _contract(
        context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
    ) -> dg.AssetCheckResult:
        start, end = partition_dates(context)
        days = pipeline.check_silver(lakehouse.get(usecase.name), stream, start, end)
        failed = [d for d in days if not d.passed]
        lines = []
        for d in failed:
            why = []
            if d.breaker_reason:
                why.append(f"circuit breaker: {d.breaker_reason}")
            if not d.conserved:
                why.append(
                    f"not conserved: landed {d.landed} != silver {d.silver} + quarantined {d.quarantined} + duplicates {d.duplicates}"
                )
            if d.contract_violations:
                why.append(f"{d.contract_violations} published rows break the contract")
            lines.append(f"{d.day}: " + "; ".join(why))
        return dg.AssetCheckResult(
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=("\n".join(lines) if failed else f"{len(days)} day(s) conserved and clean"),
            metadata={
                "days_checked": len(days),
                "days_failed": len(failed),
                "landed": sum(d.landed for d in days),
                "silver": sum(d.silver for d in days),
                "quarantined": sum(d.quarantined for d in days),
                "duplicates": sum(d.duplicates for d in days),
            },
        )

    return [_silver, _contract]


def reference_assets(reference: Reference, usecase: UseCase) -> list:
    silver_key = asset_key(usecase, "silver", reference.name)
    quarantine_key = asset_key(usecase, "quarantine", reference.name)

    @dg.multi_asset(
        name=scoped_name(usecase, f"silver_{reference.name}"),
        specs=[
            dg.AssetSpec(
                silver_key,
                group_name=scoped_name(usecase, INGESTION),
                kinds={"delta", "spark"},
                description=reference.description,
            ),
            dg.AssetSpec(
                quarantine_key,
                group_name=scoped_name(usecase, INGESTION),
                kinds={"delta"},
                description=f"Rejected rows of the `{reference.name}` snapshot.",
            ),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                "contract",
                asset=silver_key,
                blocking=True,
                description="Blocking: the snapshot passed its contract and was published.",
            ),
        ],
        pool=writer_pool(usecase, pipeline.silver_table(reference.name)),
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def _reference(
        context: dg.AssetExecutionContext,
        lakehouse: LakehouseResource,
        landing: LandingResource,
        spark: SparkResource,
    ):
        result = pipeline.reference_to_silver(
            lakehouse.get(usecase.name),
            spark.session(),
            landing.root_for(usecase.name),
            reference,
            usecase.ingest,
            run_id=context.run.run_id,
        )
        v = result.verdict
        meta = {
            "snapshot": result.snapshot,
            "rows_landed": v.rows_landed,
            "rows_silver": v.rows_silver,
            "rows_quarantined": v.rows_quarantined,
            "duplicates_dropped": v.duplicates_dropped,
            "preview": preview(result.preview),
        }
        if result.silver is not None:
            meta.update(written(result.silver))
            meta["dagster/row_count"] = v.rows_silver
        yield dg.MaterializeResult(
            asset_key=silver_key,
            metadata=meta,
            # a snapshot the contract held back wrote nothing: the data version stays unset
            data_version=data_version(result.silver) if result.silver is not None else None,
        )
        yield dg.MaterializeResult(
            asset_key=quarantine_key,
            metadata={**written(result.quarantine), "rules": dg.MetadataValue.json(v.rule_counts)},
            data_version=data_version(result.quarantine),
        )
        yield dg.AssetCheckResult(
            asset_key=silver_key,
            check_name="contract",
            passed=not v.breaker_tripped and v.conserved,
            severity=dg.AssetCheckSeverity.ERROR,
            description=v.breaker_reason
            or f"snapshot {result.snapshot} published ({v.rows_silver} rows)",
        )

    return [_reference]


def ingestion_definitions(usecase: UseCase) -> tuple[list, list]:
    """(assets, asset checks) for every stream and reference of ``usecase``."""
    assets: list = []
    checks: list = []
    for stream in usecase.streams:
        assets.append(bronze_asset(stream, usecase))
        silver, contract = silver_assets(stream, usecase)
        assets.append(silver)
        checks.append(contract)
    for reference in usecase.references:
        assets.extend(reference_assets(reference, usecase))
    return assets, checks

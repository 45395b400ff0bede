"""Jobs: named selections of one use case's graph that its schedules, sensors and `make run`
launch. Every job is ``<usecase>_<name>`` and selects only that use case's assets."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from assets.lib.keys import scoped_name
from assets.monitoring.assets import drift_key, performance_key
from slipway.usecase import UseCase

END_TO_END = "end_to_end"
INGESTION = "ingestion"
DAILY = "daily_ingest_and_score"
EVALUATE_PERFORMANCE = "evaluate_performance"
RETRAIN = "retrain"


@dataclass(frozen=True)
class UseCaseJobs:
    """The loop's jobs of one use case."""

    end_to_end: dg.UnresolvedAssetJobDefinition
    ingestion: dg.UnresolvedAssetJobDefinition
    daily_ingest_and_score: dg.UnresolvedAssetJobDefinition
    evaluate_performance: dg.UnresolvedAssetJobDefinition
    retrain: dg.UnresolvedAssetJobDefinition

    def all(self) -> list[dg.UnresolvedAssetJobDefinition]:
        return [
            self.end_to_end,
            self.ingestion,
            self.daily_ingest_and_score,
            self.evaluate_performance,
            self.retrain,
        ]


def _groups(usecase: UseCase, *bases: str) -> dg.AssetSelection:
    return dg.AssetSelection.groups(*(scoped_name(usecase, b) for b in bases))


def usecase_jobs(usecase: UseCase) -> UseCaseJobs:
    """The jobs of ``usecase`` (built once per definitions load, then handed to the sensors and
    schedules that target them)."""
    return UseCaseJobs(
        end_to_end=dg.define_asset_job(
            scoped_name(usecase, END_TO_END),
            selection=dg.AssetSelection.key_prefixes([usecase.name]),
            description=(
                f"Everything of {usecase.name}, landing to monitoring, for a range of days "
                "(what `make run` launches)."
            ),
        ),
        ingestion=dg.define_asset_job(
            scoped_name(usecase, INGESTION),
            selection=_groups(usecase, "ingestion"),
            description="Landing files -> bronze -> silver + quarantine, and the reference snapshots.",
        ),
        daily_ingest_and_score=dg.define_asset_job(
            scoped_name(usecase, DAILY),
            selection=_groups(usecase, "ingestion", "gold", "features", "feast", "scoring")
            | dg.AssetSelection.assets(drift_key(usecase)),
            description=(
                "A day (or a range, as one run) from landing files through silver, gold, features, "
                "the online store, scoring and drift monitoring."
            ),
        ),
        evaluate_performance=dg.define_asset_job(
            scoped_name(usecase, EVALUATE_PERFORMANCE),
            selection=dg.AssetSelection.assets(performance_key(usecase)),
            description="Model performance on days whose labels have matured.",
        ),
        retrain=dg.define_asset_job(
            scoped_name(usecase, RETRAIN),
            selection=_groups(usecase, "training", "registry"),
            description="Training set -> model candidate -> promotion gate -> champion.",
        ),
    )

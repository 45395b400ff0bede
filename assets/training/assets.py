"""Training, registry and the promotion gate as assets.

training_set -> model_candidate -[promotion_gate, blocking]-> champion. The gate is an asset check
on the candidate: if the new model does not beat the champion on the same holdout (or, first
time, clear the floors), the check fails, the champion step does not run, and the UI shows why.
The registry is MLflow (slipway.registry.store): the candidate is a tracked run and a registered
version, the gate's decision is recorded on that version's tags, and the champion asset moves
the MLflow ``champion`` alias.
"""

from typing import Literal

import dagster as dg

from assets.feast.assets import registry_key
from assets.lib.keys import asset_key, scoped_name, table_key
from assets.lib.metadata import data_version, preview
from assets.lib.resources import FeastResource, LakehouseResource
from assets.lib.retries import REMOTE_RETRY_POLICY, retry_transient_only
from slipway.registry.lifecycle import evaluate_challenger, promote_challenger, train_candidate
from slipway.registry.store import ModelRegistry
from slipway.training.dataset import build_training_set
from slipway.usecase import UseCase

TRAINING = "training"
REGISTRY = "registry"


def retrain_pool(usecase: UseCase) -> str:
    """The concurrency pool of ``usecase``'s retraining steps: ``<usecase>_retrain``.

    Training set, candidate, promotion gate and champion share it, and the instance gives every
    pool one slot (``concurrency: pools: default_limit: 1``), so two retrains of one use case
    (a schedule and a drift-triggered run, a hand launch) never run a retraining step at the same
    time: one builds its training set, trains, is judged and promoted step by step while the
    other's steps wait for the slot. Other use cases retrain side by side.
    """
    return scoped_name(usecase, "retrain")


def training_set_key(usecase: UseCase) -> dg.AssetKey:
    return asset_key(usecase, "training", "training_set")


def candidate_key(usecase: UseCase) -> dg.AssetKey:
    return asset_key(usecase, "training", "model_candidate")


def champion_key(usecase: UseCase) -> dg.AssetKey:
    """``<usecase>/registry/champion``: what scoring depends on."""
    return asset_key(usecase, "registry", "champion")


def label_deps(usecase: UseCase) -> list[dg.AssetKey]:
    """The assets labels come from: the label stream's silver table (a rule label reads the
    examples' own columns, so it adds nothing)."""
    label = usecase.label
    return [asset_key(usecase, "silver", label.stream)] if label.stream else []


class TrainingConfig(dg.Config):
    """LightGBM settings, editable in the launchpad; unset values use the use case's defaults."""

    device: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    seed: int = 7
    learning_rate: float | None = None
    num_leaves: int | None = None
    num_iterations: int | None = None
    min_data_in_leaf: int | None = None
    feature_fraction: float | None = None
    validation_days: int | None = None

    def overrides(self) -> dict[str, object]:
        keys = (
            "learning_rate",
            "num_leaves",
            "num_iterations",
            "min_data_in_leaf",
            "feature_fraction",
        )
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def training_definitions(usecase: UseCase) -> tuple[list, list]:
    spec = usecase.model
    assert spec is not None and usecase.examples is not None
    feature_keys = [asset_key(usecase, "features", t.name) for t in usecase.feature_tables]
    TRAINING_SET_KEY = training_set_key(usecase)
    CANDIDATE_KEY = candidate_key(usecase)
    CHAMPION_KEY = champion_key(usecase)
    POOL = retrain_pool(usecase)

    @dg.asset(
        key=TRAINING_SET_KEY,
        deps=[
            registry_key(usecase),
            table_key(usecase, usecase.examples.table),
            *label_deps(usecase),
            *feature_keys,
        ],
        group_name=scoped_name(usecase, TRAINING),
        kinds={"feast", "delta"},
        description=(
            f"Matured, labelled examples with point-in-time features from Feast service "
            f"`{spec.feature_service}`; every source version is recorded in the Delta commit."
        ),
        pool=POOL,
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def training_set(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource, feast: FeastResource
    ) -> dg.MaterializeResult:
        lakehouse = lakehouse.get(usecase.name)
        result = build_training_set(lakehouse, feast.store(usecase), usecase)
        return dg.MaterializeResult(
            metadata={
                "table_version": result.written.version,
                "table_uri": dg.MetadataValue.path(result.written.uri),
                "dagster/row_count": result.rows,
                "positives": result.positives,
                "label_rate": round(result.positives / max(result.rows, 1), 5),
                "as_of": result.as_of.isoformat(),
                "feature_service": result.feature_service,
                "source_versions": dg.MetadataValue.json(result.versions),
            },
            data_version=data_version(result.written),
        )

    @dg.asset(
        key=CANDIDATE_KEY,
        deps=[TRAINING_SET_KEY],
        group_name=scoped_name(usecase, TRAINING),
        kinds={"lightgbm"},
        description="LightGBM trained on the latest training-set version, registered as the challenger.",
        pool=POOL,
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def model_candidate(
        context: dg.AssetExecutionContext, config: TrainingConfig, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        lakehouse = lakehouse.get(usecase.name)
        result = train_candidate(
            lakehouse,
            usecase,
            params=config.overrides(),
            device=config.device,
            seed=config.seed,
            validation_days=config.validation_days,
            run_id=context.run.run_id,
        )
        m = result.model.metrics
        return dg.MaterializeResult(
            metadata={
                "model_version": result.version.version,
                "device": result.model.device.device,
                "device_fallbacks": dg.MetadataValue.json(list(result.model.device.fallbacks)),
                "training_set_version": result.training_set_version,
                "train_rows": result.model.train_rows,
                "valid_rows": result.model.valid_rows,
                "valid_window": " .. ".join(result.model.valid_window),
                "pr_auc": round(m.pr_auc, 5),
                "roc_auc": round(m.roc_auc, 5),
                f"recall_at_precision_{m.precision_target}": round(m.recall_at_precision, 5),
                "log_loss": round(m.log_loss, 5),
                "brier": round(m.brier, 6),
                "ece": round(m.ece, 6),
                "train_seconds": round(result.model.seconds, 2),
                "feature_importance": preview(result.model.importance, 30),
                "curves": dg.MetadataValue.md(result.curves_markdown()),
                "curves_png": dg.MetadataValue.path(result.curves_uri),
                "model_uri": result.version.model_uri,
                "model_artifacts": dg.MetadataValue.path(result.version.artifact_uri),
                "mlflow_run_id": result.version.mlflow_run_id,
                "mlflow_store": result.store_uri,
                "git_commit": result.version.git_commit,
            },
            # the registered model version: a new candidate is new data for the gate and champion
            data_version=data_version(result.version.version),
        )

    @dg.asset_check(
        asset=CANDIDATE_KEY,
        name="promotion_gate",
        blocking=True,
        description=(
            f"Blocking: the candidate beats the champion on the same holdout by "
            f"{spec.promotion.margin} {spec.promotion.metric} (first model: clears the floors)."
        ),
        pool=POOL,
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def promotion_gate(
        context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
    ) -> dg.AssetCheckResult:
        decision = evaluate_challenger(lakehouse.get(usecase.name), usecase, context.run.run_id)
        return dg.AssetCheckResult(
            passed=decision.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=decision.reason,
            metadata={
                "challenger_version": decision.challenger_version,
                "champion_version": decision.champion_version
                if decision.champion_version is not None
                else -1,
                "metric": decision.metric,
                "challenger": dg.MetadataValue.json(decision.challenger),
                "champion": dg.MetadataValue.json(decision.champion or {}),
                # what the decision rests on: the holdout, and live evidence (issue 15)
                "evidence": dg.MetadataValue.json(decision.evidence),
                "live_evidence": dg.MetadataValue.json(decision.live or {}),
                "waiting_for_live_evidence": decision.waiting,
            },
        )

    @dg.asset(
        key=CHAMPION_KEY,
        deps=[CANDIDATE_KEY],
        group_name=scoped_name(usecase, REGISTRY),
        kinds={"lightgbm"},
        description="The production model: the challenger, promoted only after it passed the gate.",
        pool=POOL,
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def champion(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        lakehouse = lakehouse.get(usecase.name)
        promotion = promote_challenger(lakehouse, usecase, context.run.run_id)
        record = ModelRegistry(lakehouse).get(spec.name, promotion.champion)
        context.log.info(
            f"champion is v{promotion.champion} (was v{promotion.previous}): {promotion.reason}"
        )
        return dg.MaterializeResult(
            metadata={
                "champion_version": promotion.champion,
                "previous_champion": promotion.previous if promotion.previous is not None else -1,
                "promoted": promotion.promoted,
                "reason": promotion.reason,
                "model_uri": f"models:/{spec.name}@champion",
                "mlflow_run_id": record.mlflow_run_id,
                "metrics": dg.MetadataValue.json(record.metrics),
                "training_set": dg.MetadataValue.json(record.training_set),
            },
            data_version=data_version(promotion.champion),
        )

    return [training_set, model_candidate, champion], [promotion_gate]

"""Training, gating and promotion as plain functions (what the assets and the CLI call)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from slipway.lakehouse import Lakehouse
from slipway.registry.gate import GateDecision, decide, score_holdout
from slipway.registry.store import CHALLENGER, CHAMPION, ModelRegistry, ModelVersion
from slipway.settings import load_settings
from slipway.training.dataset import training_set_lineage, training_table
from slipway.training.metrics import curves_png, importance_png
from slipway.training.train import TrainedModel, time_split, train_model
from slipway.usecase import UseCase

log = logging.getLogger(__name__)

CURVES_FILE = "pr_curve_calibration.png"
IMPORTANCE_FILE = "feature_importance.png"


@dataclass
class CandidateResult:
    model: TrainedModel
    version: ModelVersion
    training_set_version: int
    curves_uri: str
    curves_png: bytes
    store_uri: str  # the MLflow backend store, password masked

    def curves_markdown(self) -> str:
        encoded = base64.b64encode(self.curves_png).decode()
        return f"![PR curve and calibration](data:image/png;base64,{encoded})"


def load_training_set(
    lakehouse: Lakehouse, usecase: UseCase, version: int | None = None
) -> tuple[pd.DataFrame, int]:
    name = training_table(usecase)
    ref = lakehouse.ref(name, version)
    return lakehouse.read(name, version=ref.version).to_pandas(), ref.version


def train_candidate(
    lakehouse: Lakehouse,
    usecase: UseCase,
    params: Mapping[str, Any] | None = None,
    device: str = "auto",
    seed: int = 7,
    validation_days: int | None = None,
    training_set_version: int | None = None,
    run_id: str | None = None,
) -> CandidateResult:
    """Train on a training-set version, register the model and make it the challenger."""
    spec = usecase.model
    assert spec is not None
    frame, ts_version = load_training_set(lakehouse, usecase, training_set_version)
    train, valid = time_split(frame, validation_days or spec.validation_days)
    model = train_model(train, valid, spec, params=params, device=device, seed=seed)
    lineage = training_set_lineage(lakehouse, usecase, ts_version)
    window = f"{model.valid_window[0]}..{model.valid_window[1]}"
    png = curves_png(
        model.valid_labels,
        model.valid_scores,
        f"{spec.name} on training set v{ts_version}, {window}",
    )
    figures = {
        CURVES_FILE: png,
        IMPORTANCE_FILE: importance_png(model.importance, f"{spec.name}: feature importance"),
    }
    registry = ModelRegistry(lakehouse)
    version = registry.register(
        spec.name,
        model.model_text,
        metrics=model.metrics.as_dict(),
        params={**model.params, "validation_days": validation_days or spec.validation_days},
        features=list(spec.features),
        device=model.device.device,
        device_fallbacks=list(model.device.fallbacks),
        training_set={
            "table": training_table(usecase),
            "version": ts_version,
            "as_of": lineage.get("as_of"),
            "feature_service": lineage.get("feature_service"),
            "train_rows": model.train_rows,
            "valid_rows": model.valid_rows,
            "valid_window": list(model.valid_window),
            "seconds": round(model.seconds, 3),
        },
        upstream_versions=dict(lineage.get("source_versions", {})),
        run_id=run_id,
        card={"importance": model.importance.head(30).to_dict(orient="records")},
        figures=figures,
    )
    registry.set_alias(spec.name, CHALLENGER, version.version, "newly trained", run_id)
    run_artifacts = registry.client.get_run(version.mlflow_run_id).info.artifact_uri
    uri = f"{run_artifacts}/plots/{CURVES_FILE}"
    log.info(
        f"registered {spec.name} v{version.version} as challenger "
        f"(MLflow run {version.mlflow_run_id}, {version.model_uri})"
    )
    return CandidateResult(model, version, ts_version, uri, png, registry.store.display_uri)


def evaluate_challenger(
    lakehouse: Lakehouse, usecase: UseCase, run_id: str | None = None
) -> GateDecision:
    """Score challenger and champion on the challenger's holdout, gather the live evidence
    (both on the same served events), decide, and record it."""
    spec = usecase.model
    assert spec is not None
    registry = ModelRegistry(lakehouse)
    challenger = registry.alias(spec.name, CHALLENGER)
    if challenger is None:
        raise LookupError(f"{spec.name} has no challenger to evaluate")
    record = registry.get(spec.name, challenger)
    frame, _ = load_training_set(lakehouse, usecase, int(record.training_set["version"]))
    _, holdout = time_split(frame, int(record.params.get("validation_days", spec.validation_days)))
    challenger_metrics = score_holdout(registry.load_text(spec.name, challenger), holdout, spec)
    champion = registry.alias(spec.name, CHAMPION)
    champion_metrics = None
    if champion is not None and champion != challenger:
        champion_metrics = score_holdout(registry.load_text(spec.name, champion), holdout, spec)
    else:
        champion = None
    live = None
    if champion is not None:
        from slipway.registry.evidence import live_evidence

        live = live_evidence(lakehouse, usecase, champion, challenger)
    decision = decide(
        spec.promotion,
        challenger,
        challenger_metrics,
        champion,
        champion_metrics,
        live=live,
        require_live=load_settings().gate_live_evidence,
    )
    champion_record = registry.get(spec.name, champion) if champion is not None else None
    if (
        not decision.passed
        and champion_record is not None
        and record.model_sha256
        and record.model_sha256 == champion_record.model_sha256
    ):
        # A re-run retrained the champion itself: same training set, same parameters, the same
        # model file byte for byte (training is deterministic). Nothing new is being judged, so
        # the gate does not fail the run over a delta of zero; re-runs converge.
        decision = replace(
            decision,
            passed=True,
            reason=f"reproduces the champion v{champion} exactly (same model file, sha256 "
            f"{record.model_sha256[:12]}): nothing new to judge; {decision.reason}",
        )
    registry.record_decision(spec.name, decision, run_id)
    return decision


@dataclass
class Promotion:
    promoted: bool
    champion: int
    previous: int | None
    reason: str


def promote_challenger(
    lakehouse: Lakehouse, usecase: UseCase, run_id: str | None = None
) -> Promotion:
    """Promote the challenger if, and only if, its latest gate decision passed."""
    spec = usecase.model
    assert spec is not None
    registry = ModelRegistry(lakehouse)
    previous = registry.alias(spec.name, CHAMPION)
    challenger = registry.alias(spec.name, CHALLENGER)
    if challenger is None:
        if previous is None:
            raise LookupError(f"{spec.name} has neither champion nor challenger")
        return Promotion(False, previous, previous, "no challenger waiting; champion unchanged")
    decisions = registry.decisions(spec.name, challenger)
    if not decisions:
        raise RuntimeError(
            f"{spec.name} v{challenger} has no gate decision: run the promotion_gate check first"
        )
    latest = decisions[-1]
    if not latest["passed"]:
        raise RuntimeError(f"{spec.name} v{challenger} did not pass the gate: {latest['reason']}")
    registry.promote(spec.name, challenger, latest["reason"], run_id)
    return Promotion(True, challenger, previous, latest["reason"])

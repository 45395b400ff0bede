"""Training set reproducibility, deterministic training, device fallback, registry and gate,
and lineage from a prediction back to its landing line — on a copy of the session's world."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slipway.lakehouse import Lakehouse
from slipway.registry import ModelRegistry
from slipway.registry.gate import decide
from slipway.registry.lifecycle import (
    evaluate_challenger,
    load_training_set,
    promote_challenger,
    train_candidate,
)
from slipway.registry.store import CHALLENGER, CHAMPION
from slipway.training.device import choose_device
from slipway.training.metrics import compute_metrics
from slipway.training.train import load_booster, predict
from slipway.usecase import PromotionPolicy
from slipway.usecases.fraud import FRAUD, MODEL
from tests.support.pipeline import copy_world, slipway_env


@pytest.fixture(scope="module")
def world(pipeline, tmp_path_factory: pytest.TempPathFactory):
    target = copy_world(
        pipeline.data_dir, tmp_path_factory.mktemp("training") / "world", ignore=("landing",)
    )
    with slipway_env(target):
        yield target, Lakehouse(target / "lakehouse" / "fraud")


def test_the_training_set_rebuilds_identically_from_its_recorded_versions(world) -> None:
    from slipway.featurestore.store import open_store
    from slipway.training.dataset import rebuild_training_set, training_set_lineage, training_table

    _, lakehouse = world
    version = lakehouse.version(training_table(FRAUD))
    lineage = training_set_lineage(lakehouse, FRAUD, version)
    assert set(lineage["source_versions"]) >= {
        "gold.enriched_transactions",
        "silver.chargebacks",
        "features.customer_behaviour",
        "features.merchant_risk",
        "features.customer_profile",
    }
    # the feature tables move on (a newer version exists), the rebuild must not follow them
    name = "features.customer_behaviour"
    data = lakehouse.read(name)
    lakehouse.write(name, data.slice(0, data.num_rows // 2), mode="overwrite")
    stored, _ = load_training_set(lakehouse, FRAUD, version)
    rebuilt = rebuild_training_set(lakehouse, open_store(), FRAUD, version)
    assert len(stored) == len(rebuilt) > 1000
    columns = [c for c in stored.columns if c in rebuilt.columns]
    assert set(stored.columns) == set(rebuilt.columns)
    for column in columns:
        a, b = stored[column], rebuilt[column]
        if a.dtype == object:
            assert [list(x) if isinstance(x, np.ndarray | list) else x for x in a] == [
                list(x) if isinstance(x, np.ndarray | list) else x for x in b
            ], column
        else:
            pd.testing.assert_series_equal(
                a.reset_index(drop=True),
                b.reset_index(drop=True),
                check_dtype=False,
                check_names=False,
            )


def test_the_stored_training_set_is_the_same_whatever_the_chunk_size(world, monkeypatch) -> None:
    # The build streams the join chunk by chunk into one commit; a rebuild in chunks of about a
    # thousand rows (many chunks, feature rows carried between them) must give the same rows.
    from slipway.featurestore.store import open_store
    from slipway.training.dataset import rebuild_training_set, training_table

    _, lakehouse = world
    version = lakehouse.version(training_table(FRAUD))
    stored, _ = load_training_set(lakehouse, FRAUD, version)
    monkeypatch.setenv("SLIPWAY_PIT_CHUNK_ROWS", "997")
    assert len(stored) > 10 * 997
    rebuilt = rebuild_training_set(lakehouse, open_store(), FRAUD, version)
    assert list(rebuilt.columns) == list(stored.columns)
    for column in stored.columns:
        a, b = stored[column], rebuilt[column]
        if a.dtype == object:
            norm = lambda s: [list(x) if isinstance(x, np.ndarray | list) else x for x in s]  # noqa: E731
            assert norm(a) == norm(b), column
        else:
            pd.testing.assert_series_equal(a, b, check_names=False)


def test_same_training_set_and_seed_give_the_same_model_file_and_predictions(world) -> None:
    _, lakehouse = world
    registry = ModelRegistry(lakehouse)
    ts_version = lakehouse.version("training.fraud_training_set")
    first = train_candidate(
        lakehouse, FRAUD, seed=11, device="cpu", training_set_version=ts_version
    )
    second = train_candidate(
        lakehouse, FRAUD, seed=11, device="cpu", training_set_version=ts_version
    )
    other = train_candidate(
        lakehouse, FRAUD, seed=12, device="cpu", training_set_version=ts_version
    )
    text_a = registry.load_text(MODEL.name, first.version.version)
    text_b = registry.load_text(MODEL.name, second.version.version)
    assert text_a == text_b and first.version.model_sha256 == second.version.model_sha256
    assert other.version.model_sha256 != first.version.model_sha256  # the seed matters
    frame, _ = load_training_set(lakehouse, FRAUD, ts_version)
    assert np.array_equal(
        predict(load_booster(text_a), frame, MODEL), predict(load_booster(text_b), frame, MODEL)
    )
    record = registry.get(MODEL.name, first.version.version)
    assert record.training_set["version"] == ts_version and record.device == "cpu"
    assert record.upstream_versions["features.customer_behaviour"] >= 0 and record.git_commit


def test_device_auto_tries_cuda_then_opencl_then_cpu_and_says_why() -> None:
    auto = choose_device("auto")
    assert auto.device == "cpu"  # this machine has neither CUDA LightGBM nor an OpenCL device
    assert [r.split()[0] for r in auto.fallbacks] == ["cuda", "gpu"]
    assert "CUDA" in auto.fallbacks[0]
    gpu = choose_device("gpu")
    assert gpu.device == "cpu" and gpu.fell_back and gpu.fallbacks[0].startswith("gpu unavailable")
    assert choose_device("cpu").fallbacks == ()
    with pytest.raises(ValueError, match="device must be one of"):
        choose_device("tpu")  # type: ignore[arg-type]


def test_the_gate_needs_floors_first_and_a_margin_after() -> None:
    y = np.array([0] * 90 + [1] * 10)
    good = compute_metrics(y, np.r_[np.linspace(0, 0.4, 90), np.linspace(0.6, 1, 10)])
    weak = compute_metrics(y, np.r_[np.linspace(0, 0.8, 90), np.linspace(0.3, 0.9, 10)])
    policy = PromotionPolicy(metric="pr_auc", margin=0.01, floors={"pr_auc": 0.5})
    assert decide(policy, 1, good).passed and "floors" in decide(policy, 1, good).reason
    assert not decide(policy, 1, weak).passed
    assert decide(policy, 2, good, 1, weak).passed
    same = decide(policy, 2, good, 1, good)
    assert not same.passed and "does not beat" in same.reason and "delta +0.0000" in same.reason


def test_promotion_needs_a_passing_decision_and_rollback_is_one_call(world) -> None:
    _, lakehouse = world
    registry = ModelRegistry(lakehouse)
    champion = registry.alias(MODEL.name, CHAMPION)
    candidate = train_candidate(lakehouse, FRAUD, seed=21, device="cpu")
    assert registry.alias(MODEL.name, CHALLENGER) == candidate.version.version
    with pytest.raises(RuntimeError, match="no gate decision"):
        promote_challenger(lakehouse, FRAUD)
    decision = evaluate_challenger(lakehouse, FRAUD)
    assert decision.champion_version == champion
    if decision.passed:
        assert promote_challenger(lakehouse, FRAUD).champion == candidate.version.version
        assert registry.rollback(MODEL.name) == champion
    else:
        with pytest.raises(RuntimeError, match="did not pass the gate"):
            promote_challenger(lakehouse, FRAUD)
        registry.promote(MODEL.name, candidate.version.version, "manual promotion for the test")
        assert registry.rollback(MODEL.name, champion, reason="back") == champion
    assert registry.alias(MODEL.name, CHAMPION) == champion
    assert registry.alias_history(MODEL.name)[-1].reason in {"rollback", "back"}
    # the decision is on the MLflow model version the gate judged
    tags = registry.client.get_model_version(MODEL.name, str(candidate.version.version)).tags
    assert tags["gate.passed"] == ("true" if decision.passed else "false")
    assert tags["gate.reason"] == decision.reason


def test_lineage_walks_a_prediction_back_to_its_landing_line(world, pipeline) -> None:
    from slipway.cli import main
    from slipway.lineage import trace_prediction

    _, lakehouse = world
    predictions = lakehouse.read(
        "scoring.predictions", columns=["prediction_id", "transaction_id", "flagged"]
    )
    pid = predictions.filter(predictions["flagged"])["prediction_id"][0].as_py()
    tree = trace_prediction(lakehouse, pid)
    labels = json.dumps(tree.as_dict(), default=str)
    for hop in (
        "model fraud_lgbm v",
        "training.fraud_training_set@v",
        "features.customer_behaviour@v",
        "gold.enriched_transactions@v",
        "silver.transactions@v",
        "bronze.transactions@v",
        "scoring.inputs@v",
    ):
        assert hop in labels, hop
    landing = tree.find("landing ")
    assert landing is not None and landing.details["manifest_status"] == "ok"
    source_file, line = landing.label.removeprefix("landing ").split(" line ")
    raw = (Path(pipeline.landing_root) / source_file).read_text().splitlines()[int(line) - 1]
    assert json.loads(raw)["transaction_id"] == pid.split(":")[0]
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["lineage", pid]) == 0
    assert out.getvalue().startswith(f"prediction {pid}") and source_file in out.getvalue()
    assert main(["lineage", "tx_missing:v1"]) == 1


def test_a_retrain_that_reproduces_the_champion_passes_the_gate(world) -> None:
    """Re-running the graph on the same data retrains the champion byte for byte (training is
    deterministic): the gate says so and passes, so a second ``make run`` converges instead of
    failing on a delta of zero. A model that differs still has to beat the champion."""
    _, lakehouse = world
    registry = ModelRegistry(lakehouse)
    champion = registry.alias(MODEL.name, CHAMPION)
    record = registry.get(MODEL.name, champion)
    candidate = train_candidate(
        lakehouse,
        FRAUD,
        device="cpu",
        training_set_version=int(record.training_set["version"]),
    )
    again = registry.get(MODEL.name, candidate.version.version)
    assert again.model_sha256 == record.model_sha256  # the same model file
    decision = evaluate_challenger(lakehouse, FRAUD)
    assert decision.passed and f"reproduces the champion v{champion} exactly" in decision.reason
    different = train_candidate(lakehouse, FRAUD, seed=99, device="cpu")
    assert registry.get(MODEL.name, different.version.version).model_sha256 != record.model_sha256
    verdict = evaluate_challenger(lakehouse, FRAUD)
    assert "reproduces" not in verdict.reason

"""The MLflow tracking and model registry, on the embedded SQLite store and on the real Postgres.

Each test registers small real LightGBM models (trained here on synthetic data) through
``ModelRegistry`` and then reads them back through MLflow's own client and loaders, so what
Slipway writes is what an MLflow user sees: runs with params, metrics, plots and lineage tags,
a registered model whose versions carry the lineage and the gate's decision, and the
``champion``/``challenger`` aliases behind ``models:/<name>@champion``.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slipway.lakehouse import Lakehouse
from slipway.registry.gate import decide
from slipway.registry.store import CHALLENGER, CHAMPION, MODEL_FILE, ModelRegistry
from slipway.registry.tracking import (
    TrackingConfigError,
    TrackingStore,
    relocate_sqlite_store,
    tracking_store,
)
from slipway.settings import load_settings
from slipway.training.metrics import compute_metrics
from slipway.usecase import PromotionPolicy
from tests.support.servers import throwaway_database

ROOT = Path(__file__).resolve().parents[2]
NAME = "toy_lgbm"


def _model_text(seed: int, rounds: int = 8) -> str:
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.random(400), "b": rng.random(400)})
    y = ((x["a"] + 0.3 * rng.random(400)) > 0.7).astype(int)
    params = {"objective": "binary", "verbose": -1, "seed": seed, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(x, label=y), rounds).model_to_string()


def _register(registry: ModelRegistry, text: str, run_id: str = "dagster-run-1", **extra):
    return registry.register(
        NAME,
        text,
        metrics={"pr_auc": 0.91, "threshold_at_precision": 0.42},
        params={"learning_rate": 0.05, "num_leaves": 15, "objective": "binary"},
        features=["a", "b"],
        device="cpu",
        device_fallbacks=["cuda unavailable: test"],
        training_set={"table": "training.toy_set", "version": 7, "as_of": "2026-08-20"},
        upstream_versions={"features.toy": 3, "silver.toy": 5},
        run_id=run_id,
        card={"importance": [{"feature": "a", "gain_share": 0.8}]},
        figures={"pr_curve_calibration.png": b"\x89PNG curve", "feature_importance.png": b"imp"},
        **extra,
    )


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackingStore]:
    """The lakehouse's MLflow store: embedded SQLite, or a throwaway database on the Postgres."""
    monkeypatch.setenv("SLIPWAY_LAKEHOUSE_ROOT", str(tmp_path / "lakehouse"))
    monkeypatch.delenv("SLIPWAY_MLFLOW_TRACKING_URI", raising=False)
    if request.param == "embedded":
        yield tracking_store(str(tmp_path / "lakehouse" / "fraud"))
        return
    postgres_url = request.getfixturevalue("postgres_url")
    with throwaway_database(postgres_url, "mlflow_test") as url:
        monkeypatch.setenv("SLIPWAY_MLFLOW_TRACKING_URI", url)
        yield tracking_store(str(tmp_path / "lakehouse" / "fraud"))


@pytest.fixture
def registry(store: TrackingStore) -> ModelRegistry:
    # the default use case's lakehouse: where the CLI (`slipway registry`) looks
    return ModelRegistry(Lakehouse(load_settings("fraud").lakehouse_root), store)


def test_the_embedded_store_lives_under_the_lakehouse_and_prod_needs_a_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLIPWAY_MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "lakehouse"
    local = tracking_store(str(root))
    assert local.tracking_uri == f"sqlite:///{root.resolve()}/mlflow/mlflow.db"
    assert local.artifact_root == f"{root.resolve()}/mlflow/artifacts"
    monkeypatch.setenv("SLIPWAY_ENV", "prod")
    with pytest.raises(TrackingConfigError, match="SLIPWAY_MLFLOW_TRACKING_URI"):
        tracking_store(str(root))
    monkeypatch.setenv(
        "SLIPWAY_MLFLOW_TRACKING_URI", "postgresql://ml:change-me@pg:5432/slipway_mlflow"
    )
    prod = tracking_store("s3://bucket/lake")
    assert prod.tracking_uri == "postgresql://ml:change-me@pg:5432/slipway_mlflow"
    assert prod.artifact_root == "s3://bucket/lake/mlflow/artifacts"  # the lakehouse's storage
    assert prod.display_uri == "postgresql://ml:***@pg:5432/slipway_mlflow"
    monkeypatch.setenv("SLIPWAY_ENV", "local")
    monkeypatch.delenv("SLIPWAY_MLFLOW_TRACKING_URI")
    with pytest.raises(TrackingConfigError, match="not a local path"):
        tracking_store("s3://bucket/lake")


def test_a_training_run_is_tracked_and_registered_with_its_lineage(
    registry: ModelRegistry, store: TrackingStore
) -> None:
    import mlflow.lightgbm

    text = _model_text(1)
    version = _register(registry, text, notes="first toy")
    assert version.version == 1 and version.model_uri == f"models:/{NAME}/1"
    client = registry.client
    # the run: params, metrics, plots and the lineage tags
    run = client.get_run(version.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["learning_rate"] == "0.05" and run.data.params["objective"] == "binary"
    assert run.data.metrics["pr_auc"] == pytest.approx(0.91)
    tags = run.data.tags
    assert tags["training_set.version"] == "7" and tags["training_set.table"] == "training.toy_set"
    assert tags["upstream.features.toy"] == "3" and tags["upstream.silver.toy"] == "5"
    assert tags["dagster.run_id"] == "dagster-run-1"
    assert tags["mlflow.source.git.commit"] == version.git_commit != "unknown"
    plots = {f.path for f in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/pr_curve_calibration.png", "plots/feature_importance.png"}
    assert run.info.artifact_uri.startswith(store.artifact_root)
    # the registered version repeats the lineage and points at the logged model
    mv = client.get_model_version(NAME, "1")
    assert mv.run_id == run.info.run_id and mv.description == "first toy"
    assert mv.tags["training_set.version"] == "7" and mv.tags["dagster.run_id"] == "dagster-run-1"
    assert mv.tags["upstream.silver.toy"] == "5" and mv.tags["git_commit"] == version.git_commit
    # the model is LightGBM's text file in MLflow's lightgbm flavour, with its card: no pickles
    names = {f.name for f in Path(version.artifact_uri).rglob("*")}
    assert {MODEL_FILE, "MLmodel", "card.json"} <= names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".skops"))]
    assert (Path(version.artifact_uri) / MODEL_FILE).read_text() == text
    mlmodel = (Path(version.artifact_uri) / "MLmodel").read_text()
    assert "model_class: lightgbm.basic.Booster" in mlmodel and "data: model.lgb" in mlmodel
    card = json.loads((Path(version.artifact_uri) / "card.json").read_text())
    assert card["model_sha256"] == version.model_sha256 and card["training_set"]["version"] == 7
    assert registry.load_text(NAME, 1) == text
    # what `models:/<name>@champion` means to any MLflow user once the alias is set
    registry.promote(NAME, 1, reason="first toy")
    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_registry_uri(store.tracking_uri)
    try:
        booster = mlflow.lightgbm.load_model(f"models:/{NAME}@champion")
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    assert booster.model_to_string() == text


def test_aliases_gate_decisions_and_rollback_are_mlflow_state(
    registry: ModelRegistry, store: TrackingStore
) -> None:
    v1 = _register(registry, _model_text(1)).version
    v2 = _register(registry, _model_text(2), run_id="dagster-run-2").version
    assert (v1, v2) == (1, 2)
    registry.set_alias(NAME, CHALLENGER, v1, "newly trained")
    registry.promote(NAME, v1, reason="first model clears the floors")
    registry.set_alias(NAME, CHALLENGER, v2, "newly trained", run_id="dagster-run-2")
    model = registry.client.get_registered_model(NAME)
    assert model.aliases == {CHAMPION: 1, CHALLENGER: 2}
    # the gate's verdict is kept on the version it judged
    y = np.array([0] * 90 + [1] * 10)
    good = compute_metrics(y, np.r_[np.linspace(0, 0.4, 90), np.linspace(0.6, 1, 10)])
    weak = compute_metrics(y, np.r_[np.linspace(0, 0.8, 90), np.linspace(0.3, 0.9, 10)])
    policy = PromotionPolicy(metric="pr_auc", margin=0.01, floors={"pr_auc": 0.5})
    decision = decide(policy, v2, good, v1, weak)
    registry.record_decision(NAME, decision, run_id="dagster-run-2")
    tags = registry.client.get_model_version(NAME, "2").tags
    assert tags["gate.passed"] == "true" and tags["gate.reason"] == decision.reason
    assert tags["gate.champion_version"] == "1" and tags["gate.dagster_run_id"] == "dagster-run-2"
    (row,) = registry.decisions(NAME, v2)
    assert row["passed"] and row["champion_version"] == 1 and registry.decisions(NAME, v1) == []
    registry.promote(NAME, v2, reason=decision.reason, run_id="dagster-run-2")
    assert registry.client.get_registered_model(NAME).aliases == {CHAMPION: 2}
    # rollback is setting the alias back; the audit trail keeps every move with its reason
    assert registry.rollback(NAME, reason="bad day") == v1
    assert registry.client.get_model_version_by_alias(NAME, CHAMPION).version == 1
    moves = [(m.alias, m.version, m.reason) for m in registry.alias_history(NAME)]
    assert moves == [
        (CHALLENGER, 1, "newly trained"),
        (CHAMPION, 1, "first model clears the floors"),
        (CHALLENGER, -1, "promoted to champion: first model clears the floors"),
        (CHALLENGER, 2, "newly trained"),
        (CHAMPION, 2, decision.reason),
        (CHALLENGER, -1, f"promoted to champion: {decision.reason}"),
        (CHAMPION, 1, "bad day"),
    ]
    with pytest.raises(KeyError, match="no version 9"):
        registry.set_alias(NAME, CHAMPION, 9, "no such version")
    assert registry.alias(NAME, CHAMPION) == 1


def test_the_cli_lists_shows_history_and_rolls_back(registry: ModelRegistry) -> None:
    from slipway.cli import main

    for seed in (1, 2):
        version = _register(registry, _model_text(seed)).version
        registry.promote(NAME, version, reason=f"promote v{version}")

    def run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        with redirect_stdout(out):
            code = main(["registry", *argv, "--model", NAME])
        return code, out.getvalue()

    code, listing = run("list")
    assert code == 0 and "v2" in listing and listing.splitlines()[1].endswith("champion")
    assert run("rollback") == (0, f"{NAME}: champion is now v1 (models:/{NAME}@champion)\n")
    assert registry.alias(NAME, CHAMPION) == 1
    code, history = run("history")
    assert code == 0 and history.splitlines()[-1].split()[2:5] == ["champion", "->", "v1"]
    assert run("rollback", "--version", "7")[0] == 1  # unknown version: refused, nothing moved
    assert registry.alias(NAME, CHAMPION) == 1


WORKER = """
import sys, time
from pathlib import Path
from slipway.lakehouse import Lakehouse
from slipway.registry.store import ModelRegistry
from tests.integration.test_registry import _register
lakehouse, model, sync, tag = sys.argv[1:5]
registry = ModelRegistry(Lakehouse(lakehouse))
text = Path(model).read_text()
Path(sync, tag + ".ready").touch()
while not Path(sync, "go").exists():
    time.sleep(0.002)
began = time.time()
versions = [_register(registry, text, run_id=tag).version for _ in range(3)]
print(began, time.time(), *versions)
"""


def test_two_processes_registering_at_once_get_distinct_versions(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    model, sync = tmp_path / "model.txt", tmp_path / "sync"
    model.write_text(_model_text(3))
    sync.mkdir()
    _register(registry, model.read_text())  # schema and registered model exist: a fair race
    workers = ("worker-a", "worker-b")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, registry.lakehouse.root, str(model), str(sync), tag],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in workers
    ]
    deadline = time.monotonic() + 180
    while not all((sync / f"{tag}.ready").exists() for tag in workers):
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-3000:] for p in procs]
        assert time.monotonic() < deadline, "the workers did not get ready in 180 s"
        time.sleep(0.05)
    (sync / "go").touch()  # both released together, each with its registry open
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    spans = [[float(x) for x in out.split()[:2]] for out, _ in outputs]
    assert max(s[0] for s in spans) < min(s[1] for s in spans), "the registrations did not overlap"
    got = [int(v) for out, _ in outputs for v in out.split()[2:]]
    assert len(got) == 6 and sorted(got) == list(range(2, 8))  # distinct, none lost
    versions = registry.versions(NAME)
    assert [v.version for v in versions] == list(range(1, 8))
    assert {v.run_id for v in versions} == {"dagster-run-1", *workers}
    assert len({v.mlflow_run_id for v in versions}) == 7  # one run per version, none shared


def test_a_tampered_model_file_is_refused(registry: ModelRegistry) -> None:
    version = _register(registry, _model_text(4))
    path = Path(version.artifact_uri) / MODEL_FILE
    path.write_text(path.read_text().replace("num_leaves", "num_leafs", 1))
    with pytest.raises(ValueError, match="does not match its recorded sha256"):
        registry.load_text(NAME, version.version)


def test_a_copied_lakehouse_reads_and_writes_its_own_artefacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLIPWAY_MLFLOW_TRACKING_URI", raising=False)
    source, copy = tmp_path / "a" / "lakehouse", tmp_path / "b" / "lakehouse"
    text = _model_text(5)
    _register(ModelRegistry(Lakehouse(source)), text)
    shutil.copytree(source, copy)
    relocate_sqlite_store(copy / "mlflow" / "mlflow.db", str(source), str(copy))
    shutil.rmtree(source)  # the copy must not need the original
    moved = ModelRegistry(Lakehouse(copy))
    assert moved.load_text(NAME, 1) == text and moved.get(NAME, 1).artifact_uri.startswith(
        str(copy)
    )
    second = _register(moved, _model_text(6))
    assert second.version == 2 and Path(second.artifact_uri).is_relative_to(copy)
    assert not source.exists()

"""The model registry on MLflow: every training run tracked, every model a registered version.

What lives where (the store is chosen by ``slipway.registry.tracking``):

* experiment ``<model>``: one MLflow run per training, with its parameters, metrics, the PR
  curve and importance plots, tagged with the training-set version, the upstream Delta versions
  (``upstream.<table>``), the git commit (``mlflow.source.git.commit``) and the Dagster run id
  (``dagster.run_id``). The model is an MLflow logged model in the ``lightgbm`` flavour, which
  stores a Booster as LightGBM's own text file (``model.lgb``; never a pickle), beside its card.
* registered model ``<model>``: one version per training; MLflow numbers them inside the
  backend store's transaction, so two retrains at once get distinct versions. The version's tags
  repeat the lineage and carry the sha256 of ``model.lgb`` (a tampered file is refused) and the
  promotion gate's latest decision (``gate.*``).
* aliases ``champion`` and ``challenger`` are MLflow registered-model aliases
  (``models:/fraud_lgbm@champion``); a promotion or a rollback is setting an alias.
* experiment ``<model>/alias-moves``: MLflow keeps no history of aliases, so each move is also
  logged as a small run (alias, version, reason, Dagster run id): the audit trail that
  ``slipway registry history`` prints and rollback reads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.lakehouse import Lakehouse
from slipway.registry.tracking import TrackingStore, client_for, tracking_store

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_FILE = "model.lgb"
CARD_FILE = "card.json"
ALIAS_MOVES = "alias-moves"

_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
_EXISTS = "RESOURCE_ALREADY_EXISTS"


def git_commit(repo: Path | None = None) -> str:
    """The code version: the checkout's commit (``+dirty`` when it has local changes)."""
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{sha}+dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a logger's warnings (MLflow warns that this venv has no pip, on every save)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _error_code(exc: Exception) -> str | None:
    return getattr(exc, "error_code", None)


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _decode_param(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version, as MLflow records it."""

    model_name: str
    version: int
    created_at: dt.datetime
    run_id: str | None  # the Dagster run that trained it
    git_commit: str
    device: str
    device_fallbacks: list[str]
    params: dict[str, Any]
    metrics: dict[str, float]
    features: list[str]
    training_set: dict[str, Any]
    upstream_versions: dict[str, int]
    model_uri: str  # models:/<name>/<version>
    model_sha256: str
    notes: str | None
    mlflow_run_id: str
    artifact_uri: str  # where model.lgb and card.json are stored


@dataclass(frozen=True)
class AliasMove:
    alias: str
    version: int  # -1: the alias was cleared
    set_at: dt.datetime
    reason: str
    run_id: str | None


class ModelRegistry:
    """Versions, aliases and gate decisions of the models trained on one lakehouse."""

    def __init__(self, lakehouse: Lakehouse, store: TrackingStore | None = None) -> None:
        self.lakehouse = lakehouse
        self.store = store or tracking_store(lakehouse.root)
        self.client = client_for(self.store)
        self._experiments: dict[str, str] = {}

    # -- experiments and registered models ------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created (with its artefacts under the store) if new."""
        if name in self._experiments:
            return self._experiments[name]
        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                exp_id = self.client.create_experiment(
                    name, artifact_location=self.store.experiment_artifacts(name)
                )
            except Exception as exc:  # another process created it first
                if _error_code(exc) != _EXISTS:
                    raise
                exp_id = self.client.get_experiment_by_name(name).experiment_id
        else:
            exp_id = found.experiment_id
        self._experiments[name] = exp_id
        return exp_id

    def _ensure_registered_model(self, model_name: str) -> None:
        try:
            self.client.create_registered_model(
                model_name, description="Registered by Slipway's training pipeline."
            )
        except Exception as exc:
            if _error_code(exc) != _EXISTS:
                raise

    # -- versions -------------------------------------------------------------------------------
    def versions(self, model_name: str) -> list[ModelVersion]:
        """Every registered version of ``model_name``, oldest first."""
        found = self.client.search_model_versions(f"name = '{model_name}'")
        return sorted(
            (self._record(mv) for mv in found),
            key=lambda v: v.version,
        )

    def get(self, model_name: str, version: int) -> ModelVersion:
        try:
            mv = self.client.get_model_version(model_name, str(version))
        except Exception as exc:
            if _error_code(exc) == _NOT_FOUND:
                raise KeyError(f"model {model_name!r} has no version {version}") from exc
            raise
        return self._record(mv)

    def _record(self, mv: Any) -> ModelVersion:
        run = self.client.get_run(mv.run_id)
        tags = run.data.tags
        return ModelVersion(
            model_name=mv.name,
            version=int(mv.version),
            created_at=dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=dt.UTC),
            run_id=tags.get("dagster.run_id") or None,
            git_commit=tags.get("mlflow.source.git.commit", "unknown"),
            device=tags.get("slipway.device", ""),
            device_fallbacks=json.loads(tags.get("slipway.device_fallbacks", "[]")),
            params={k: _decode_param(v) for k, v in run.data.params.items()},
            metrics=dict(run.data.metrics),
            features=json.loads(tags.get("slipway.features", "[]")),
            training_set=json.loads(tags.get("slipway.training_set", "{}")),
            upstream_versions=json.loads(tags.get("slipway.upstream_versions", "{}")),
            model_uri=f"models:/{mv.name}/{mv.version}",
            model_sha256=mv.tags.get("model_sha256", ""),
            notes=mv.description or None,
            mlflow_run_id=mv.run_id,
            artifact_uri=mv.source,
        )

    def register(
        self,
        model_name: str,
        model_text: str,
        *,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        features: list[str],
        device: str,
        device_fallbacks: list[str] | tuple[str, ...] = (),
        training_set: Mapping[str, Any],
        upstream_versions: Mapping[str, int],
        run_id: str | None,
        card: Mapping[str, Any] | None = None,
        notes: str | None = None,
        figures: Mapping[str, bytes] | None = None,
    ) -> ModelVersion:
        """Track the training as an MLflow run, log the model, and register it as a new version.

        The version is created last, after the model's artefacts are complete, so a crash leaves
        at most an unregistered run, never a version without its model.
        """
        import lightgbm as lgb
        import mlflow.lightgbm
        from mlflow.entities import LoggedModelStatus, Metric, Param, RunTag
        from mlflow.models import Model

        exp_id = self.experiment_id(model_name)
        commit = git_commit()
        ts = dict(training_set)
        lineage_tags = {
            "dagster.run_id": run_id or "",
            "training_set.table": str(ts.get("table", "")),
            "training_set.version": str(ts.get("version", "")),
            **{f"upstream.{t}": str(v) for t, v in sorted(upstream_versions.items())},
        }
        run_tags = {
            **lineage_tags,
            "mlflow.source.git.commit": commit,
            "mlflow.source.type": "JOB",
            "mlflow.source.name": "slipway.registry.lifecycle",
            "slipway.device": device,
            "slipway.device_fallbacks": json.dumps(list(device_fallbacks)),
            "slipway.features": json.dumps(list(features)),
            "slipway.training_set": json.dumps(ts, sort_keys=True, default=str),
            "slipway.upstream_versions": json.dumps(dict(upstream_versions), sort_keys=True),
        }
        if notes:
            run_tags["mlflow.note.content"] = notes
        run = self.client.create_run(
            exp_id,
            run_name=f"{model_name} on {ts.get('table')}@v{ts.get('version')}",
            tags=run_tags,
        )
        run_uuid = run.info.run_id
        try:
            self.client.log_batch(
                run_uuid,
                params=[Param(k, _param_value(v)) for k, v in sorted(params.items())],
            )
            logged = self.client.create_logged_model(
                exp_id,
                name=model_name,
                source_run_id=run_uuid,
                model_type="lightgbm",
                tags={k: v for k, v in lineage_tags.items() if v},
            )
            with tempfile.TemporaryDirectory() as tmp, _quiet("mlflow.utils.environment"):
                model_dir = Path(tmp) / "model"
                # pip_requirements given: MLflow would otherwise load the model in a subprocess to
                # infer them (seconds per registration).
                mlflow.lightgbm.save_model(
                    lgb.Booster(model_str=model_text),
                    str(model_dir),
                    mlflow_model=Model(model_id=logged.model_id),
                    pip_requirements=[f"lightgbm=={lgb.__version__}"],
                )
                stored = (model_dir / MODEL_FILE).read_bytes()
                sha = hashlib.sha256(stored).hexdigest()
                card_doc = {
                    "model_name": model_name,
                    "model_sha256": sha,
                    "git_commit": commit,
                    "dagster_run_id": run_id,
                    "mlflow_run_id": run_uuid,
                    "device": device,
                    "device_fallbacks": list(device_fallbacks),
                    "features": list(features),
                    "metrics": dict(metrics),
                    "params": dict(params),
                    "training_set": ts,
                    "upstream_versions": dict(upstream_versions),
                    "notes": notes,
                    **(card or {}),
                }
                (model_dir / CARD_FILE).write_text(
                    json.dumps(card_doc, indent=2, sort_keys=True, default=str)
                )
                self.client.log_model_artifacts(logged.model_id, str(model_dir))
                if figures:
                    plots = Path(tmp) / "plots"
                    plots.mkdir()
                    for name, data in figures.items():
                        (plots / name).write_bytes(data)
                    self.client.log_artifacts(run_uuid, str(plots), "plots")
            self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
            now = int(time.time() * 1000)
            self.client.log_batch(
                run_uuid,
                metrics=[
                    Metric(k, float(v), now, 0, model_id=logged.model_id)
                    for k, v in sorted(metrics.items())
                ],
            )
            self._ensure_registered_model(model_name)
            mv = self.client.create_model_version(
                model_name,
                source=logged.artifact_location,
                run_id=run_uuid,
                tags={**lineage_tags, "git_commit": commit, "model_sha256": sha},
                description=notes,
                model_id=logged.model_id,
            )
            self.client.log_batch(run_uuid, tags=[RunTag("registered_version", str(mv.version))])
            self.client.set_terminated(run_uuid, "FINISHED")
        except BaseException:
            with contextlib.suppress(Exception):  # keep the original error, not this one's
                self.client.set_terminated(run_uuid, "FAILED")
            raise
        return self.get(model_name, int(mv.version))

    def load_text(self, model_name: str, version: int) -> str:
        """The LightGBM text of a version, verified against its recorded sha256."""
        from mlflow.artifacts import download_artifacts

        record = self.get(model_name, version)
        with tempfile.TemporaryDirectory() as tmp:
            path = download_artifacts(
                artifact_uri=f"{record.artifact_uri}/{MODEL_FILE}",
                dst_path=tmp,
                tracking_uri=self.store.tracking_uri,
            )
            data = Path(path).read_bytes()
        if hashlib.sha256(data).hexdigest() != record.model_sha256:
            raise ValueError(
                f"model file of {model_name} v{version} does not match its recorded sha256"
            )
        return data.decode()

    # -- aliases --------------------------------------------------------------------------------
    def aliases(self, model_name: str) -> dict[str, int]:
        """Every alias of ``model_name`` and the version it points at (one query)."""
        try:
            model = self.client.get_registered_model(model_name)
        except Exception as exc:
            if _error_code(exc) == _NOT_FOUND:
                return {}
            raise
        return {alias: int(version) for alias, version in model.aliases.items()}

    def alias(self, model_name: str, alias: str) -> int | None:
        """The version holding ``alias`` now, or None."""
        return self.aliases(model_name).get(alias)

    def set_alias(
        self,
        model_name: str,
        alias: str,
        version: int | None,
        reason: str,
        run_id: str | None = None,
    ) -> None:
        """Point ``alias`` at ``version`` (None clears it); the move and its reason are logged."""
        if version is None:
            if self.alias(model_name, alias) is not None:
                self.client.delete_registered_model_alias(model_name, alias)
        else:
            self.get(model_name, version)  # refuses unknown versions
            self.client.set_registered_model_alias(model_name, alias, str(version))
        self._log_move(model_name, alias, -1 if version is None else version, reason, run_id)

    def _log_move(
        self, model_name: str, alias: str, version: int, reason: str, run_id: str | None
    ) -> None:
        from mlflow.entities import Param

        set_at_ns = time.time_ns()
        run = self.client.create_run(
            self.experiment_id(f"{model_name}/{ALIAS_MOVES}"),
            start_time=set_at_ns // 1_000_000,
            run_name=f"{alias} -> {'v' + str(version) if version >= 0 else '(cleared)'}",
            tags={"alias": alias, "version": str(version), "dagster.run_id": run_id or ""},
        )
        self.client.log_batch(
            run.info.run_id,
            params=[Param("reason", reason[:6000]), Param("set_at_ns", str(set_at_ns))],
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")

    def alias_history(self, model_name: str) -> list[AliasMove]:
        """Every alias move of ``model_name``, oldest first."""
        exp = self.client.get_experiment_by_name(f"{model_name}/{ALIAS_MOVES}")
        if exp is None:
            return []
        runs, token = [], None
        while True:
            page = self.client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                break
        moves = []
        for run in runs:
            ns = int(run.data.params["set_at_ns"])
            moves.append(
                (
                    ns,
                    AliasMove(
                        alias=run.data.tags["alias"],
                        version=int(run.data.tags["version"]),
                        set_at=dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC),
                        reason=run.data.params.get("reason", ""),
                        run_id=run.data.tags.get("dagster.run_id") or None,
                    ),
                )
            )
        return [m for _, m in sorted(moves, key=lambda p: p[0])]

    def promote(
        self, model_name: str, version: int, reason: str, run_id: str | None = None
    ) -> None:
        """Make ``version`` the champion and clear the challenger alias if it pointed there."""
        self.set_alias(model_name, CHAMPION, version, reason, run_id)
        if self.alias(model_name, CHALLENGER) == version:
            self.set_alias(model_name, CHALLENGER, None, f"promoted to champion: {reason}", run_id)

    def rollback(
        self,
        model_name: str,
        to_version: int | None = None,
        reason: str = "rollback",
        run_id: str | None = None,
    ) -> int:
        """Point the champion at ``to_version``, or at the champion before the current one."""
        if to_version is None:
            champions = [
                m.version
                for m in self.alias_history(model_name)
                if m.alias == CHAMPION and m.version >= 0
            ]
            current = self.alias(model_name, CHAMPION)
            previous = [v for v in champions if v != current]
            if not previous:
                raise ValueError(f"{model_name} has no earlier champion to roll back to")
            to_version = previous[-1]
        self.set_alias(model_name, CHAMPION, to_version, reason, run_id)
        return to_version

    # -- gate decisions -------------------------------------------------------------------------
    def record_decision(self, model_name: str, decision: Any, run_id: str | None = None) -> None:
        """Keep the gate's verdict on the model version: the champion step promotes only on a
        recorded pass, and the MLflow UI shows why a version was or was not promoted."""
        tags = {
            "gate.passed": "true" if decision.passed else "false",
            "gate.reason": decision.reason,
            "gate.metric": decision.metric,
            "gate.champion_version": ""
            if decision.champion_version is None
            else str(decision.champion_version),
            "gate.challenger_metrics": json.dumps(decision.challenger, sort_keys=True),
            "gate.champion_metrics": json.dumps(decision.champion, sort_keys=True)
            if decision.champion
            else "",
            "gate.decided_at": dt.datetime.now(dt.UTC).isoformat(),
            "gate.dagster_run_id": run_id or "",
        }
        version = str(decision.challenger_version)
        existing = self.client.get_model_version(model_name, version).tags
        for key, value in tags.items():
            if value:
                self.client.set_model_version_tag(model_name, version, key, value)
            elif key in existing:  # e.g. no champion this time: no stale figures from the last
                self.client.delete_model_version_tag(model_name, version, key)

    def decisions(self, model_name: str, version: int | None = None) -> list[dict[str, Any]]:
        """The latest gate decision of each version (or of one), oldest first."""
        if version is not None:
            try:
                found = [self.client.get_model_version(model_name, str(version))]
            except Exception as exc:
                if _error_code(exc) == _NOT_FOUND:
                    return []
                raise
        else:
            found = self.client.search_model_versions(f"name = '{model_name}'")
        rows = []
        for mv in found:
            t = mv.tags
            if "gate.passed" not in t:
                continue
            rows.append(
                {
                    "model_name": mv.name,
                    "version": int(mv.version),
                    "champion_version": int(t["gate.champion_version"])
                    if t.get("gate.champion_version")
                    else None,
                    "passed": t["gate.passed"] == "true",
                    "reason": t.get("gate.reason", ""),
                    "metric": t.get("gate.metric", ""),
                    "challenger_metrics": t.get("gate.challenger_metrics") or None,
                    "champion_metrics": t.get("gate.champion_metrics") or None,
                    "decided_at": dt.datetime.fromisoformat(t["gate.decided_at"]),
                    "run_id": t.get("gate.dagster_run_id") or None,
                }
            )
        return sorted(rows, key=lambda r: r["decided_at"])

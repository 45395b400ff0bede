"""A model registry kept in the lakehouse itself: two Delta tables and LightGBM text files.

Why not an external service: the registry's lineage points at lakehouse table versions, and
keeping it in the same storage means one backup, one access policy, and time travel over the
registry's own history. Models are stored in LightGBM's text format (never pickled) with a JSON
card beside them; the sha256 of the text is recorded so a tampered or truncated file is refused.

* ``registry.model_versions``: one row per registered version, with metrics, parameters, device,
  feature list, training-set version, upstream table versions, code version and Dagster run id.
* ``registry.model_aliases``: an append-only log of alias moves (``champion``, ``challenger``);
  the current holder of an alias is its latest row, so every promotion and rollback is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from slipway.lakehouse import Lakehouse

VERSIONS = "registry.model_versions"
ALIASES = "registry.model_aliases"
DECISIONS = "registry.gate_decisions"
CHAMPION = "champion"
CHALLENGER = "challenger"

VERSIONS_SCHEMA = pa.schema(
    [
        pa.field("model_name", pa.string()),
        pa.field("version", pa.int64()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("run_id", pa.string()),
        pa.field("git_commit", pa.string()),
        pa.field("device", pa.string()),
        pa.field("device_fallbacks", pa.string()),
        pa.field("params", pa.string()),
        pa.field("metrics", pa.string()),
        pa.field("features", pa.string()),
        pa.field("training_set", pa.string()),
        pa.field("upstream_versions", pa.string()),
        pa.field("model_uri", pa.string()),
        pa.field("model_sha256", pa.string()),
        pa.field("notes", pa.string()),
    ]
)

ALIASES_SCHEMA = pa.schema(
    [
        pa.field("model_name", pa.string()),
        pa.field("alias", pa.string()),
        pa.field("version", pa.int64()),
        pa.field("set_at", pa.timestamp("us", tz="UTC")),
        pa.field("reason", pa.string()),
        pa.field("run_id", pa.string()),
    ]
)


DECISIONS_SCHEMA = pa.schema(
    [
        pa.field("model_name", pa.string()),
        pa.field("version", pa.int64()),
        pa.field("champion_version", pa.int64()),
        pa.field("passed", pa.bool_()),
        pa.field("reason", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("challenger_metrics", pa.string()),
        pa.field("champion_metrics", pa.string()),
        pa.field("decided_at", pa.timestamp("us", tz="UTC")),
        pa.field("run_id", pa.string()),
    ]
)


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


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version, as recorded."""

    model_name: str
    version: int
    created_at: dt.datetime
    run_id: str | None
    git_commit: str
    device: str
    device_fallbacks: list[str]
    params: dict[str, Any]
    metrics: dict[str, float]
    features: list[str]
    training_set: dict[str, Any]
    upstream_versions: dict[str, int]
    model_uri: str
    model_sha256: str
    notes: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ModelVersion:
        return cls(
            model_name=row["model_name"],
            version=int(row["version"]),
            created_at=row["created_at"],
            run_id=row["run_id"],
            git_commit=row["git_commit"],
            device=row["device"],
            device_fallbacks=json.loads(row["device_fallbacks"] or "[]"),
            params=json.loads(row["params"] or "{}"),
            metrics=json.loads(row["metrics"] or "{}"),
            features=json.loads(row["features"] or "[]"),
            training_set=json.loads(row["training_set"] or "{}"),
            upstream_versions=json.loads(row["upstream_versions"] or "{}"),
            model_uri=row["model_uri"],
            model_sha256=row["model_sha256"],
            notes=row["notes"],
        )


@dataclass(frozen=True)
class AliasMove:
    alias: str
    version: int
    set_at: dt.datetime
    reason: str
    run_id: str | None


class ModelRegistry:
    """Versions and aliases of the models named ``model_name``… in one lakehouse."""

    def __init__(self, lakehouse: Lakehouse) -> None:
        self.lakehouse = lakehouse

    # -- versions -----------------------------------------------------------------------------
    def _model_path(self, model_name: str, version: int) -> str:
        return f"models/{model_name}/v{version:04d}/model.txt"

    def versions(self, model_name: str) -> list[ModelVersion]:
        if not self.lakehouse.exists(VERSIONS):
            return []
        rows = self.lakehouse.read(VERSIONS).to_pylist()
        return sorted(
            (ModelVersion.from_row(r) for r in rows if r["model_name"] == model_name),
            key=lambda v: v.version,
        )

    def get(self, model_name: str, version: int) -> ModelVersion:
        for v in self.versions(model_name):
            if v.version == version:
                return v
        raise KeyError(f"model {model_name!r} has no version {version}")

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
    ) -> ModelVersion:
        """Store the model file and its card, then append the version row (the commit point).

        The version number is one more than the highest registered; the file is written before
        the row, so a crash leaves at most an orphan file, never a row without its model.
        """
        existing = self.versions(model_name)
        version = (existing[-1].version + 1) if existing else 1
        data = model_text.encode()
        sha = hashlib.sha256(data).hexdigest()
        uri = self.lakehouse.write_bytes(self._model_path(model_name, version), data)
        now = dt.datetime.now(dt.UTC)
        row = {
            "model_name": model_name,
            "version": version,
            "created_at": now,
            "run_id": run_id,
            "git_commit": git_commit(),
            "device": device,
            "device_fallbacks": json.dumps(list(device_fallbacks)),
            "params": json.dumps(dict(params), sort_keys=True, default=str),
            "metrics": json.dumps(dict(metrics), sort_keys=True),
            "features": json.dumps(list(features)),
            "training_set": json.dumps(dict(training_set), sort_keys=True, default=str),
            "upstream_versions": json.dumps(dict(upstream_versions), sort_keys=True),
            "model_uri": uri,
            "model_sha256": sha,
            "notes": notes,
        }
        card_doc = {
            **{k: v for k, v in row.items() if k != "created_at"},
            "created_at": now.isoformat(),
            **(card or {}),
        }
        self.lakehouse.write_bytes(
            self._model_path(model_name, version).replace("model.txt", "card.json"),
            json.dumps(card_doc, indent=2, sort_keys=True, default=str).encode(),
        )
        self.lakehouse.write(
            VERSIONS,
            pa.Table.from_pylist([row], schema=VERSIONS_SCHEMA),
            mode="append",
            schema=VERSIONS_SCHEMA,
        )
        return ModelVersion.from_row(row)

    def load_text(self, model_name: str, version: int) -> str:
        """The model file of a version, verified against its recorded sha256."""
        record = self.get(model_name, version)
        data = self.lakehouse.read_bytes(self._model_path(model_name, version))
        if hashlib.sha256(data).hexdigest() != record.model_sha256:
            raise ValueError(
                f"model file of {model_name} v{version} does not match its recorded sha256"
            )
        return data.decode()

    # -- aliases ------------------------------------------------------------------------------
    def alias_history(self, model_name: str) -> list[AliasMove]:
        if not self.lakehouse.exists(ALIASES):
            return []
        rows = [
            r for r in self.lakehouse.read(ALIASES).to_pylist() if r["model_name"] == model_name
        ]
        rows.sort(key=lambda r: r["set_at"])
        return [
            AliasMove(r["alias"], int(r["version"]), r["set_at"], r["reason"], r["run_id"])
            for r in rows
        ]

    def alias(self, model_name: str, alias: str) -> int | None:
        """The version holding ``alias`` now (``-1`` rows clear an alias), or None."""
        current = None
        for move in self.alias_history(model_name):
            if move.alias == alias:
                current = move.version
        return None if current is None or current < 0 else current

    def set_alias(
        self,
        model_name: str,
        alias: str,
        version: int | None,
        reason: str,
        run_id: str | None = None,
    ) -> None:
        """Point ``alias`` at ``version`` (None clears it); the move and its reason are logged."""
        if version is not None:
            self.get(model_name, version)  # refuses unknown versions
        row = {
            "model_name": model_name,
            "alias": alias,
            "version": -1 if version is None else version,
            "set_at": dt.datetime.now(dt.UTC),
            "reason": reason,
            "run_id": run_id,
        }
        self.lakehouse.write(
            ALIASES,
            pa.Table.from_pylist([row], schema=ALIASES_SCHEMA),
            mode="append",
            schema=ALIASES_SCHEMA,
        )

    def promote(
        self, model_name: str, version: int, reason: str, run_id: str | None = None
    ) -> None:
        """Make ``version`` the champion and clear the challenger alias if it pointed there."""
        self.set_alias(model_name, CHAMPION, version, reason, run_id)
        if self.alias(model_name, CHALLENGER) == version:
            self.set_alias(model_name, CHALLENGER, None, f"promoted to champion: {reason}", run_id)

    # -- gate decisions -----------------------------------------------------------------------
    def record_decision(self, model_name: str, decision: Any, run_id: str | None = None) -> None:
        """Keep the gate's verdict: the champion step promotes only on a recorded pass."""
        row = {
            "model_name": model_name,
            "version": decision.challenger_version,
            "champion_version": decision.champion_version,
            "passed": decision.passed,
            "reason": decision.reason,
            "metric": decision.metric,
            "challenger_metrics": json.dumps(decision.challenger, sort_keys=True),
            "champion_metrics": json.dumps(decision.champion, sort_keys=True)
            if decision.champion
            else None,
            "decided_at": dt.datetime.now(dt.UTC),
            "run_id": run_id,
        }
        self.lakehouse.write(
            DECISIONS,
            pa.Table.from_pylist([row], schema=DECISIONS_SCHEMA),
            mode="append",
            schema=DECISIONS_SCHEMA,
        )

    def decisions(self, model_name: str, version: int | None = None) -> list[dict[str, Any]]:
        """Gate decisions, oldest first (optionally for one version)."""
        if not self.lakehouse.exists(DECISIONS):
            return []
        rows = [
            r
            for r in self.lakehouse.read(DECISIONS).to_pylist()
            if r["model_name"] == model_name and (version is None or r["version"] == version)
        ]
        return sorted(rows, key=lambda r: r["decided_at"])

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

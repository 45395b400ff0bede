"""Where MLflow keeps runs and registered models for one lakehouse, and the client to reach them.

Embedded default (no server): a SQLite backend store and the artefacts beside it, both under the
lakehouse root (``<root>/mlflow/mlflow.db``, ``<root>/mlflow/artifacts/``), so one lakehouse is
one backup and every test world has a registry of its own. Production: the backend store is
``SLIPWAY_MLFLOW_TRACKING_URI`` (a database on the Postgres server Dagster uses, e.g.
``postgresql://mlflow:${PASSWORD}@pg:5432/slipway_mlflow``) and the artefacts go to the lakehouse's object
storage (``s3://…/lakehouse/mlflow/artifacts``). The clients talk to the store directly: no MLflow
server needs to run for training or scoring; ``make mlflow`` starts the UI on the same store.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from slipway.settings import Settings, load_settings

TRACKING_DIR = "mlflow"


class TrackingConfigError(RuntimeError):
    """The MLflow store cannot be chosen from the configuration (e.g. prod without a URI)."""


@dataclass(frozen=True)
class TrackingStore:
    """An MLflow backend store and the root its experiments keep their artefacts under."""

    tracking_uri: str
    artifact_root: str

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file of an embedded store (None for a database server)."""
        if not self.tracking_uri.startswith("sqlite:///"):
            return None
        return Path(self.tracking_uri.removeprefix("sqlite:///"))

    def experiment_artifacts(self, experiment: str) -> str:
        return f"{self.artifact_root}/{experiment}"

    @property
    def display_uri(self) -> str:
        """The tracking URI with any password masked, for logs, metadata and the CLI."""
        parts = urlsplit(self.tracking_uri)
        if parts.password is None:
            return self.tracking_uri
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))


def tracking_store(lakehouse_root: str, settings: Settings | None = None) -> TrackingStore:
    """The store for the lakehouse at ``lakehouse_root`` under the current configuration.

    ``prod`` refuses to fall back to SQLite: a registry silently kept on a run worker's disk
    would give every process its own champion.
    """
    settings = settings or load_settings()
    root = lakehouse_root.rstrip("/")
    local = "://" not in root or root.startswith("file://")
    if local:
        root = str(Path(root.removeprefix("file://")).resolve())
    artifact_root = f"{root}/{TRACKING_DIR}/artifacts"
    uri = settings.mlflow_tracking_uri
    if uri:
        return TrackingStore(uri, artifact_root)
    if settings.is_prod:
        raise TrackingConfigError(
            "SLIPWAY_ENV=prod needs SLIPWAY_MLFLOW_TRACKING_URI (the MLflow backend store, e.g. "
            "postgresql://user:password@host:5432/slipway_mlflow)"
        )
    if not local:
        raise TrackingConfigError(
            f"the lakehouse root {lakehouse_root!r} is not a local path, so the embedded SQLite "
            "store cannot live under it: set SLIPWAY_MLFLOW_TRACKING_URI"
        )
    db = Path(root) / TRACKING_DIR / "mlflow.db"
    return TrackingStore(f"sqlite:///{db}", artifact_root)


@functools.lru_cache(maxsize=32)
def _client(tracking_uri: str) -> Any:
    # MLflow 3 reports usage to a remote endpoint unless told not to; nothing here may phone out.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # A model download is one small file: no progress bar in run logs and scorer output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def client_for(store: TrackingStore) -> Any:
    """An ``MlflowClient`` on ``store`` (tracking and registry), one per URI and process.

    Opening a new SQLite store creates its schema (MLflow's migrations, a few seconds), so the
    clients are kept; a client holds no global state, so two lakehouses in one process (tests)
    never see each other's models.
    """
    if store.sqlite_path is not None:
        store.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return _client(store.tracking_uri)


def relocate_sqlite_store(db: Path, old_root: str, new_root: str) -> None:
    """Point an embedded store's recorded artefact locations from ``old_root`` to ``new_root``.

    MLflow records absolute artefact URIs (experiments, runs, logged models, model versions), so
    a copied or moved lakehouse would keep reading and writing the artefacts of the original.
    """
    columns = {
        "experiments": ["artifact_location"],
        "runs": ["artifact_uri"],
        "logged_models": ["artifact_location"],
        "model_versions": ["source", "storage_location"],
    }
    old, new = old_root.rstrip("/"), new_root.rstrip("/")
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, cols in columns.items():
            if table not in tables:
                continue
            for col in cols:
                conn.execute(f"UPDATE {table} SET {col} = replace({col}, ?, ?)", (old, new))

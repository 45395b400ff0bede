"""The Feast store Slipway uses, configured from the environment, and `feast apply` as a step.

Each use case has its own repository, ``feature_repo/<usecase>/`` (entities, sources, views,
services; ``FeastSpec.repo``), its own project (``FeastSpec.project``) and its own registry and
embedded online store under ``<feast_dir>/<usecase>/``. The objects are read with Feast's own parser, so the CLI (``feast plan``/``feast apply`` in that folder) and the
asset graph apply exactly the same definitions. The configuration is built here, not read from
``feature_store.yaml``, so one variable switches environments:

* ``SLIPWAY_FEAST_ONLINE``: ``sqlite`` (default, ``{SLIPWAY_FEAST_DIR}/online.db``) or a Redis
  connection string (``redis://host:6379/0`` or Feast's ``host:6379,db=0``);
* ``SLIPWAY_FEAST_REGISTRY``: a file path (default ``{SLIPWAY_FEAST_DIR}/registry.db``) or a
  SQLAlchemy URL (``postgresql+psycopg2://…``) for a shared SQL registry;
* ``SLIPWAY_FEAST_PROJECT``: renames the deployment's projects (a private namespace in a shared
  SQL registry and Redis, e.g. for tests): the default project ``slipway`` becomes the value, any
  other use case's project ``<value>_<project>``, so use cases stay apart (:func:`feast_project`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from slipway.settings import PROJECT_ROOT, Settings, load_settings

if TYPE_CHECKING:
    from slipway.usecase import UseCase

FEATURE_REPOS = PROJECT_ROOT / "feature_repo"
DEFAULT_PROJECT = "slipway"


def _usecase(usecase: UseCase | None) -> UseCase:
    if usecase is not None:
        return usecase
    from slipway.usecases import get_usecase

    return get_usecase()


def feature_repo(usecase: UseCase | None = None) -> Path:
    """The Feast repository folder of ``usecase`` (default: the default use case)."""
    usecase = _usecase(usecase)
    if usecase.feast is None:
        raise ValueError(f"use case {usecase.name!r} declares no Feast repository (feast=)")
    return PROJECT_ROOT / usecase.feast.repo


def _redis_connection_string(value: str) -> str:
    """Feast wants ``host:port,db=N``; accept the usual ``redis://host:port/N`` as well."""
    if not value.startswith(("redis://", "rediss://")):
        return value
    parsed = urlparse(value)
    parts = [f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}"]
    db = parsed.path.strip("/")
    if db:
        parts.append(f"db={db}")
    if parsed.password:
        parts.append(f"password={parsed.password}")
    if value.startswith("rediss://"):
        parts.append("ssl=true")
    return ",".join(parts)


def online_store_config(settings: Settings) -> dict[str, object]:
    online = os.environ.get("SLIPWAY_FEAST_ONLINE", "sqlite").strip() or "sqlite"
    if online == "sqlite":
        return {"type": "sqlite", "path": str(Path(settings.feast_dir) / "online.db")}
    return {"type": "redis", "connection_string": _redis_connection_string(online)}


def registry_config(settings: Settings) -> dict[str, object]:
    registry = os.environ.get("SLIPWAY_FEAST_REGISTRY", "").strip()
    if registry and "://" in registry and not registry.startswith("file://"):
        return {"registry_type": "sql", "path": registry, "cache_ttl_seconds": 60}
    path = (
        registry.removeprefix("file://")
        if registry
        else str(Path(settings.feast_dir) / "registry.db")
    )
    return {"registry_type": "file", "path": path, "cache_ttl_seconds": 60}


def feast_project(usecase: UseCase) -> str:
    """The Feast project of ``usecase`` in this environment (see ``SLIPWAY_FEAST_PROJECT``)."""
    declared = usecase.feast.project if usecase.feast else DEFAULT_PROJECT
    override = os.environ.get("SLIPWAY_FEAST_PROJECT", "").strip()
    if not override:
        return declared
    return override if declared == DEFAULT_PROJECT else f"{override}_{declared}"


def repo_config(settings: Settings | None = None, usecase: UseCase | None = None):
    """The Feast ``RepoConfig`` of ``usecase`` (default: the default one) in this environment.

    ``settings`` (default: the environment's) are scoped to the use case here, so the registry,
    the embedded online store and the offline store's lakehouse are the use case's own.
    """
    from feast.repo_config import RepoConfig

    usecase = _usecase(usecase)
    settings = (settings or load_settings()).scoped(usecase.name)
    Path(settings.feast_dir).mkdir(parents=True, exist_ok=True)
    return RepoConfig(
        project=feast_project(usecase),
        provider="local",
        registry=registry_config(settings),
        online_store=online_store_config(settings),
        offline_store={
            "type": "slipway.featurestore.delta_offline_store.DeltaOfflineStore",
            "lakehouse_root": settings.lakehouse_root,
        },
        entity_key_serialization_version=3,
        repo_path=feature_repo(usecase),
    )


def open_store(settings: Settings | None = None, usecase: UseCase | None = None):
    """``usecase``'s ``FeatureStore`` on this environment's registry, online and offline stores."""
    from feast import FeatureStore

    return FeatureStore(config=repo_config(settings, usecase))


@dataclass(frozen=True)
class ApplyReport:
    """What ``apply`` changed, in Feast's own plan words."""

    diff: str
    objects: dict[str, int]
    changed: bool


_repo_lock = threading.Lock()


@contextmanager
def _as_feast_cli(repo_path: Path) -> Iterator[None]:
    """Feast names repo modules relative to the working directory and imports siblings by bare
    name (``from entities import customer``): reproduce the CLI's cwd and ``sys.path``, briefly."""
    previous_cwd = os.getcwd()
    names = {p.stem for p in repo_path.glob("*.py")}
    with _repo_lock:
        for name in names:
            sys.modules.pop(name, None)
        sys.path.insert(0, str(repo_path))
        os.chdir(repo_path)
        try:
            yield
        finally:
            os.chdir(previous_cwd)
            sys.path.remove(str(repo_path))


def repo_contents(repo_path: Path):
    """The objects defined in the feature repo, parsed the way ``feast apply`` parses them."""
    from feast.repo_operations import parse_repo

    with _as_feast_cli(repo_path):
        return parse_repo(repo_path)


def apply_repo(store, repo_path: Path | None = None) -> ApplyReport:
    """Plan against the registry, then apply: the same as ``feast plan && feast apply``.

    ``repo_path`` defaults to the repository the store was opened on.

    Objects removed from the repo are removed from the registry too (a partial apply would leave
    stale feature views that a model could still ask for).
    """
    from feast.project import Project

    contents = repo_contents(Path(repo_path or store.config.repo_path))
    if not contents.projects:  # as the CLI does: the project is named by the configuration
        contents.projects.append(Project(name=store.project, description="Slipway feature store"))
    # Materialization intervals are registry *state* (what has been loaded online), compared by
    # FeatureView.__eq__: without carrying them over, every plan after a materialization reports
    # every view as changed and apply rewrites the registry for nothing.
    registered = {fv.name: fv for fv in store.list_feature_views()}
    for fv in contents.feature_views:
        if fv.name in registered:
            fv.materialization_intervals = list(registered[fv.name].materialization_intervals)
    registry_diff, infra_diff, new_infra = store.plan(contents)
    diff_text = registry_diff.to_string().strip()
    changed = any(d.transition_type.name != "UNCHANGED" for d in registry_diff.feast_object_diffs)
    if changed or infra_diff.infra_object_diffs:
        store._apply_diffs(registry_diff, infra_diff, new_infra)
    objects = {
        "entities": len(contents.entities),
        "data_sources": len(contents.data_sources),
        "feature_views": len(contents.feature_views),
        "on_demand_feature_views": len(contents.on_demand_feature_views),
        "feature_services": len(contents.feature_services),
    }
    return ApplyReport(diff=diff_text or "no changes", objects=objects, changed=changed)

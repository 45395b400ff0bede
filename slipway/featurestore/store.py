"""The Feast store Slipway uses, configured from the repo's ``feature_store.yaml``, and `feast apply`.

Each use case has its own repository, ``feature_repo/<usecase>/`` (entities, sources, views,
services; ``FeastSpec.repo``), its own project (``FeastSpec.project``) and its own registry and
online store. The repository is a plain Feast repo: `feast plan`, `feast apply` and
`feast materialize-incremental` run in that folder do what the assets do, because both read the
same files:

* ``feature_store.yaml``: the embedded default (file registry and SQLite online store under
  ``data/feast/<usecase>/``), used by the CLI as is;
* ``feature_store.prod.yaml``: production (Redis online store, SQL registry), read when
  ``SLIPWAY_ENV=prod`` and by ``feast -f feature_store.prod.yaml …``, with Feast's ``${VAR}``
  expansion of ``SLIPWAY_FEAST_ONLINE`` and ``SLIPWAY_FEAST_REGISTRY``.

The code loads that file (:func:`repo_config`) and changes only *where* things live, from the
same variables the CLI would be given:

* ``SLIPWAY_FEAST_DIR``: the embedded registry and online store files go to
  ``<SLIPWAY_FEAST_DIR>/<usecase>/`` (the yaml's relative paths name the default location);
* ``SLIPWAY_FEAST_ONLINE``: ``sqlite`` (default) or Redis, as ``redis://[:pw@]host:6379/0``
  or Feast's own ``host:6379,db=0,password=…`` (the form the prod yaml hands the CLI);
* ``SLIPWAY_FEAST_REGISTRY``: a file path or a SQLAlchemy URL (``postgresql+psycopg2://…``);
* ``SLIPWAY_FEAST_PROJECT``: renames the deployment's projects (a private namespace in a shared
  SQL registry and Redis, e.g. for tests): the default project ``slipway`` becomes the value, any
  other use case's project ``<value>_<project>``, so use cases stay apart (:func:`feast_project`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from slipway.settings import PROJECT_ROOT, Settings, load_settings

if TYPE_CHECKING:
    from slipway.usecase import UseCase

FEATURE_REPOS = PROJECT_ROOT / "feature_repo"
DEFAULT_PROJECT = "slipway"
LOCAL_YAML = "feature_store.yaml"
PROD_YAML = "feature_store.prod.yaml"


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


def feature_store_yaml(usecase: UseCase | None = None, settings: Settings | None = None) -> Path:
    """The ``feature_store.yaml`` this environment reads: the prod file under ``SLIPWAY_ENV=prod``
    (when the repo has one), else the embedded default."""
    repo = feature_repo(usecase)
    prod = repo / PROD_YAML
    if (settings or load_settings()).is_prod and prod.exists():
        return prod
    return repo / LOCAL_YAML


def redis_connection_string(value: str) -> str:
    """Feast wants ``host:port,db=N``; accept the usual ``redis://host:port/N`` as well."""
    if not value.startswith(("redis://", "rediss://")):
        return value
    parsed = urlparse(value)
    parts = [f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}"]
    db = parsed.path.strip("/")
    if db:
        parts.append(f"db={db}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if value.startswith("rediss://"):
        parts.append("ssl=true")
    return ",".join(parts)


def _feast_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a ``feature_store*.yaml`` is expanded with: the environment, with
    ``SLIPWAY_FEAST_ONLINE`` in Feast's connection-string form (the CLI needs it given so)."""
    env = dict(environ)
    online = env.get("SLIPWAY_FEAST_ONLINE", "").strip()
    if online and online != "sqlite":
        env["SLIPWAY_FEAST_ONLINE"] = redis_connection_string(online)
    return env


# os.path.expandvars' syntax (what Feast's own loader applies): $NAME and ${NAME}.
_VARIABLE = re.compile(r"\$(\w+)|\$\{([^}]*)\}")


def _unexpanded(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _unexpanded(v)]
    if isinstance(value, list):
        return [n for v in value for n in _unexpanded(v)]
    if isinstance(value, str):
        return [a or b for a, b in _VARIABLE.findall(value)]
    return []


def load_feature_store_yaml(path: Path, environ: Mapping[str, str] | None = None) -> dict:
    """``path`` as Feast's CLI reads it: ``${VAR}`` expanded, then YAML.

    Unlike the CLI, a variable left unset is an error naming it, not a literal ``${VAR}`` that
    fails later as a strange host or a file called ``${SLIPWAY_FEAST_REGISTRY}``.
    """
    import yaml

    env = _feast_environment(os.environ if environ is None else environ)

    def expand(match: re.Match[str]) -> str:
        return env.get(match.group(1) or match.group(2), match.group(0))

    raw = yaml.safe_load(_VARIABLE.sub(expand, path.read_text()))
    missing = sorted(set(_unexpanded(raw)))
    if missing:
        raise ValueError(f"{path} needs {', '.join(missing)} set in the environment")
    return raw


def _registry_block(raw: Any) -> dict[str, Any]:
    block = {"path": raw} if isinstance(raw, str) else dict(raw or {})
    block.setdefault("registry_type", "file")
    return block


def _registry_override(value: str, declared: dict[str, Any]) -> dict:
    """``SLIPWAY_FEAST_REGISTRY``: a SQLAlchemy URL (SQL registry) or a file path."""
    block = {k: v for k, v in declared.items() if k in ("cache_ttl_seconds", "cache_mode")}
    if "://" in value and not value.startswith("file://"):
        return {**block, "registry_type": "sql", "path": value}
    return {**block, "registry_type": "file", "path": value.removeprefix("file://")}


def _embedded(path: str, settings: Settings, repo: Path | None = None) -> str:
    """An embedded store file: the yaml's relative path names the default place, the file goes to
    this environment's ``<feast_dir>/<usecase>/`` (``SLIPWAY_FEAST_DIR``).

    With ``repo`` given, where both are the same file the yaml's spelling is kept: Feast records
    the SQLite online path as ``<repo>/<relative path>`` and `feast plan` compares it as text, so
    the CLI run in the repo would otherwise see every online table as moved. (The registry path
    is made absolute: a ``FeatureStore`` built from a config resolves it against the cwd.)
    """
    target = Path(settings.feast_dir) / Path(path).name
    target.parent.mkdir(parents=True, exist_ok=True)
    if repo and not Path(path).is_absolute() and (repo / path).resolve() == target.resolve():
        return path
    return str(target)


def feast_project(usecase: UseCase) -> str:
    """The Feast project of ``usecase`` in this environment (see ``SLIPWAY_FEAST_PROJECT``)."""
    declared = usecase.feast.project if usecase.feast else DEFAULT_PROJECT
    override = os.environ.get("SLIPWAY_FEAST_PROJECT", "").strip()
    if not override:
        return declared
    return override if declared == DEFAULT_PROJECT else f"{override}_{declared}"


def repo_config(settings: Settings | None = None, usecase: UseCase | None = None):
    """The Feast ``RepoConfig`` of ``usecase`` (default: the default one) in this environment.

    It is the repo's ``feature_store.yaml`` (:func:`feature_store_yaml`), so the CLI and the
    assets share project, description, providers and serialization; only locations follow the
    environment (module docstring). ``settings`` (default: the environment's) are scoped to the
    use case, so the registry, the embedded online store and the lakehouse are its own.
    """
    from feast.repo_config import RepoConfig

    usecase = _usecase(usecase)
    settings = (settings or load_settings()).scoped(usecase.name)
    repo = feature_repo(usecase)
    path = feature_store_yaml(usecase, settings)
    raw = load_feature_store_yaml(path)
    declared = usecase.feast.project if usecase.feast else None
    if raw.get("project") != declared:  # the CLI would apply to another project
        raise ValueError(
            f"{path} names project {raw.get('project')!r}, the use case declares {declared!r}"
        )
    raw["project"] = feast_project(usecase)

    registry = _registry_block(raw.get("registry"))
    registry_env = os.environ.get("SLIPWAY_FEAST_REGISTRY", "").strip()
    if registry_env:
        registry = _registry_override(registry_env, registry)
    if registry["registry_type"] == "file":
        registry["path"] = _embedded(str(registry["path"]), settings)
    raw["registry"] = registry

    online = dict(raw.get("online_store") or {"type": "sqlite", "path": "online.db"})
    online_env = os.environ.get("SLIPWAY_FEAST_ONLINE", "").strip()
    if online_env == "sqlite":
        online = {"type": "sqlite", "path": str(online.get("path", "online.db"))}
    elif online_env:
        online = {"type": "redis", "connection_string": redis_connection_string(online_env)}
    if online.get("type", "sqlite") == "sqlite":
        online["path"] = _embedded(str(online.get("path", "online.db")), settings, repo)
    raw["online_store"] = online

    raw["offline_store"] = {
        **(raw.get("offline_store") or {}),
        "lakehouse_root": settings.lakehouse_root,
    }
    config = RepoConfig(**raw)
    config.repo_path = repo
    return config


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


@contextlib.contextmanager
def _repo_importable(repo_path: Path) -> Iterator[None]:
    """The repo's modules import their siblings by bare name (``from entities import customer``),
    as the CLI lets them: the folder is on ``sys.path`` for the import, and one repo's
    ``features`` module is never taken for another's."""
    names = {p.stem for p in repo_path.glob("*.py")}
    with _repo_lock:
        for name in names:
            sys.modules.pop(name, None)
        sys.path.insert(0, str(repo_path))
        try:
            yield
        finally:
            sys.path.remove(str(repo_path))


def repo_contents(repo_path: Path):
    """The objects defined in the feature repo, as ``feast plan``/``feast apply`` collect them.

    Feast's ``parse_repo`` names each file's module relative to the *working directory*, which
    would make library code ``chdir``; the files are imported here by their bare names instead
    (exactly the names the CLI gives them, run in the folder) and collected by
    :func:`collect_objects`. ``tests/integration/test_feast_cli.py`` checks the two agree.
    """
    import importlib

    from feast.repo_operations import get_repo_files

    repo_path = Path(repo_path).resolve()
    with _repo_importable(repo_path):
        modules = []
        for file in get_repo_files(repo_path):
            relative = file.relative_to(repo_path).with_suffix("")
            modules.append(importlib.import_module(".".join(relative.parts)))
    return collect_objects(getattr(m, a) for m in modules for a in dir(m))


def collect_objects(candidates) -> Any:
    """Feast objects among ``candidates``, deduplicated by identity, into a ``RepoContents``
    (the rules of Feast's ``parse_repo``: a view's batch and stream sources count as sources)."""
    from feast import (
        BatchFeatureView,
        Entity,
        FeatureService,
        FeatureView,
        OnDemandFeatureView,
        Project,
        StreamFeatureView,
    )
    from feast.data_source import DataSource, KafkaSource, KinesisSource, PushSource
    from feast.feature_view import DUMMY_ENTITY
    from feast.labeling.label_view import LabelView
    from feast.permissions.permission import Permission
    from feast.repo_contents import RepoContents

    res = RepoContents(
        projects=[],
        data_sources=[],
        entities=[],
        feature_views=[],
        feature_services=[],
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        permissions=[],
    )

    def add(bucket: list, obj: Any) -> None:
        if obj is not None and not any(obj is seen for seen in bucket):
            bucket.append(obj)

    for obj in candidates:
        if isinstance(obj, DataSource):
            add(res.data_sources, obj)
            if isinstance(obj, PushSource | KafkaSource | KinesisSource):
                add(res.data_sources, obj.batch_source)
        elif isinstance(obj, StreamFeatureView):
            add(res.stream_feature_views, obj)
            add(res.data_sources, obj.batch_source)
            add(res.data_sources, obj.stream_source)
        elif isinstance(obj, FeatureView | BatchFeatureView):
            add(res.feature_views, obj)
            add(res.data_sources, obj.batch_source)
            add(res.data_sources, obj.stream_source)
        elif isinstance(obj, Entity):
            add(res.entities, obj)
        elif isinstance(obj, FeatureService):
            add(res.feature_services, obj)
        elif isinstance(obj, OnDemandFeatureView):
            add(res.on_demand_feature_views, obj)
        elif isinstance(obj, LabelView):
            add(res.label_views, obj)
            add(res.data_sources, obj.source)
            if isinstance(obj.source, PushSource):
                add(res.data_sources, obj.source.batch_source)
        elif isinstance(obj, Permission):
            add(res.permissions, obj)
        elif isinstance(obj, Project):
            add(res.projects, obj)
    res.entities.append(DUMMY_ENTITY)
    return res


def apply_repo(store, repo_path: Path | None = None) -> ApplyReport:
    """`feast plan`, then `feast apply` when the plan has changes, through Feast's public API.

    ``repo_path`` defaults to the repository the store was opened on. The apply is Feast's own
    ``repo_operations.apply_total_with_repo_instance``, the function behind `feast apply`, so
    objects removed from the repo are removed from the registry too (a partial apply would leave
    stale feature views that a model could still ask for) and a view's materialization
    intervals are kept the way the CLI keeps them.
    """
    from feast.project import Project
    from feast.repo_operations import apply_total_with_repo_instance

    contents = repo_contents(Path(repo_path or store.config.repo_path))
    if not contents.projects:  # as the CLI does: the project is named by the configuration
        description = store.config.project_description or ""
        contents.projects.append(Project(name=store.project, description=description))
    registry_diff, infra_diff, _ = store.plan(contents)
    diff_text = registry_diff.to_string().strip()
    changed = any(d.transition_type.name != "UNCHANGED" for d in registry_diff.feast_object_diffs)
    if changed or infra_diff.infra_object_diffs:
        with contextlib.redirect_stdout(io.StringIO()):  # it echoes the plan we already have
            apply_total_with_repo_instance(
                store, store.project, store.registry, contents, skip_source_validation=False
            )
    objects = {
        "entities": len(contents.entities) - 1,  # Feast's dummy entity is not the repo's
        "data_sources": len(contents.data_sources),
        "feature_views": len(contents.feature_views),
        "on_demand_feature_views": len(contents.on_demand_feature_views),
        "feature_services": len(contents.feature_services),
    }
    return ApplyReport(diff=_plain(diff_text) or "no changes", objects=objects, changed=changed)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str) -> str:
    """Feast colours its plan for a terminal; metadata and logs want the words."""
    return _ANSI.sub("", text)

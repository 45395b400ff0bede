"""Where the dbt project lives, the environment dbt runs with, and a manifest that is never stale.

Dagster builds the gold assets from ``target/manifest.json`` when it loads the code location. A
newcomer who edits a model (or clones the repo) should not have to remember ``dbt parse``: the
definitions call :func:`ensure_manifest`, which re-parses only when the manifest is missing or
older than a file that shapes it, and swaps the new one in atomically so a webserver, a daemon and
a run loading the code at the same time never read a half-written file.

Several use cases share the one dbt project (each in ``models/<usecase>/``), and each gets its
own parsed manifest under ``target/<usecase>/``, parsed with ``--vars {"usecase": <name>}``: the
same vars every invocation for that use case passes (:func:`usecase_vars`), so the manifests
cached for one use case can never serve another's build.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from slipway.gold.dbt_delta_plugin import LAKEHOUSE_ENV, SCRATCH_ENV
from slipway.settings import PROJECT_ROOT, load_settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_PROFILES_DIR = DBT_PROJECT_DIR
TARGET_DIR = DBT_PROJECT_DIR / "target"
MANIFEST_PATH = TARGET_DIR / "manifest.json"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
# The packages the last parse was made with: a manifest parsed by another dbt-core/dbt-duckdb is
# stale even when no project file changed (an upgrade changes the adapter's macros).
PARSE_VERSIONS_FILE = "slipway_parse_versions.json"
_VERSIONED_PACKAGES = ("dbt-core", "dbt-duckdb")

# dbt keeps process-global state (flags, the adapter registry, the event manager, dbt-duckdb's
# DuckDB environment) and reads os.environ at the start of an invocation: two in-process dbt
# invocations at once in one process would corrupt each other. Every in-process dbt call in
# Slipway (parse or build) holds this lock. Re-entrant, so a build may parse under it.
DBT_LOCK = threading.RLock()

# What the manifest is derived from: a change to any of these makes it stale.
_SOURCE_DIRS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")
_SOURCE_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")


def usecase_vars(usecase: str, **extra: object) -> dict[str, object]:
    """The dbt ``--vars`` of every parse and invocation for ``usecase`` (plus ``extra``)."""
    return {"usecase": usecase, **extra}


def dbt_env(lakehouse_root: str | None = None, usecase: str | None = None) -> dict[str, str]:
    """The environment variables dbt needs, resolved from Slipway's settings.

    The lakehouse plugin and the ``external_location`` macro read them when dbt *runs* (never at
    parse time, so their absolute paths stay out of dbt's partial-parse hash: see profiles.yml);
    passing them explicitly keeps dbt on the same lakehouse as the caller even when the caller's
    root came from a resource, not the environment. Without a root, ``usecase``'s lakehouse (the
    settings scoped to it) is the one.
    """
    settings = load_settings(usecase)
    scratch = os.environ.get(SCRATCH_ENV, "").strip() or str(settings.data_dir / "dbt" / "scratch")
    root = lakehouse_root or settings.lakehouse_root
    return {
        LAKEHOUSE_ENV: _absolute(root),
        SCRATCH_ENV: _absolute(scratch),
    }


def _absolute(location: str) -> str:
    """A local path made absolute against the caller's working directory; URIs unchanged.

    dbt run in this process and dbt run as a subprocess (whose working directory is the dbt
    project) must not resolve a relative ``SLIPWAY_*`` path differently.
    """
    if "://" in location:
        return location
    return os.fspath(Path(location).absolute())


@contextmanager
def environ(overrides: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _newest_source_mtime(project_dir: Path) -> float:
    """The newest modification time of a file or folder the manifest is derived from.

    Folders count too: deleting or renaming a model changes its folder's time, not any file's.
    """
    newest = 0.0
    for name in _SOURCE_FILES:
        path = project_dir / name
        if path.exists():
            newest = max(newest, path.stat().st_mtime)
    for name in _SOURCE_DIRS:
        root = project_dir / name
        if root.is_dir():
            newest = max(newest, root.stat().st_mtime)
            for path in root.rglob("*"):
                newest = max(newest, path.stat().st_mtime)
    return newest


def source_fingerprint(project_dir: Path = DBT_PROJECT_DIR) -> float:
    """Changes whenever a file the manifest is derived from changes (for in-memory caches)."""
    return _newest_source_mtime(project_dir)


def installed_versions() -> dict[str, str]:
    """The versions of the packages a parsed manifest depends on besides the project's files."""
    return {name: importlib.metadata.version(name) for name in _VERSIONED_PACKAGES}


def target_dir(project_dir: Path = DBT_PROJECT_DIR, usecase: str | None = None) -> Path:
    """Where the parsed manifest lives: ``target/<usecase>/`` (``target/`` without a use case)."""
    return project_dir / "target" / usecase if usecase else project_dir / "target"


def manifest_is_stale(project_dir: Path = DBT_PROJECT_DIR, usecase: str | None = None) -> bool:
    """True when the manifest is missing, older than any model, macro, test or project file, or
    was parsed by other versions of dbt-core / dbt-duckdb than the installed ones."""
    target = target_dir(project_dir, usecase)
    manifest = target / "manifest.json"
    if not manifest.exists():
        return True
    try:
        parsed_with = json.loads((target / PARSE_VERSIONS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    if parsed_with != installed_versions():
        return True
    return manifest.stat().st_mtime < _newest_source_mtime(project_dir)


def parse_project(
    project_dir: Path = DBT_PROJECT_DIR,
    profiles_dir: Path = DBT_PROFILES_DIR,
    usecase: str | None = None,
) -> Path:
    """Run ``dbt parse`` in-process and atomically install ``target/manifest.json``.

    The parse writes into a private temporary target folder first; the manifest and the
    partial-parse file (which dagster-dbt copies into each run's target folder to skip
    re-parsing, and which :mod:`slipway.gold.dbt_runner` loads instead of parsing) are then
    moved into ``target/`` with ``os.replace``, next to the versions they were parsed with.
    """
    from dbt.cli.main import dbtRunner

    target = target_dir(project_dir, usecase)
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".parse-", dir=target))
    cli_vars = ["--vars", json.dumps(usecase_vars(usecase), sort_keys=True)] if usecase else []
    try:
        (tmp / PARSE_VERSIONS_FILE).write_text(json.dumps(installed_versions()), encoding="utf-8")
        with DBT_LOCK, environ(dbt_env(usecase=usecase)):
            result = dbtRunner().invoke(
                [
                    "parse",
                    "--quiet",
                    "--project-dir",
                    str(project_dir),
                    "--profiles-dir",
                    str(profiles_dir),
                    "--target-path",
                    str(tmp),
                    "--log-path",
                    str(tmp),
                    *cli_vars,
                ]
            )
        if not result.success:
            raise RuntimeError(f"dbt parse failed for {project_dir}: {result.exception}")
        # manifest last: it marks "fresh"
        for name in (PARSE_VERSIONS_FILE, PARTIAL_PARSE_FILE, "manifest.json"):
            if (tmp / name).exists():
                os.replace(tmp / name, target / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "manifest.json"


def ensure_manifest(
    project_dir: Path = DBT_PROJECT_DIR,
    profiles_dir: Path = DBT_PROFILES_DIR,
    usecase: str | None = None,
) -> Path:
    """The path of an up-to-date ``manifest.json`` (``usecase``'s own when given), parsing the
    project first when needed."""
    if manifest_is_stale(project_dir, usecase):
        return parse_project(project_dir, profiles_dir, usecase)
    return target_dir(project_dir, usecase) / "manifest.json"

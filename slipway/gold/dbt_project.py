"""Where the dbt project lives, the environment dbt runs with, and a manifest that is never stale.

Dagster builds the gold assets from ``target/manifest.json`` when it loads the code location. A
newcomer who edits a model (or clones the repo) should not have to remember ``dbt parse``: the
definitions call :func:`ensure_manifest`, which re-parses only when the manifest is missing or
older than a file that shapes it, and swaps the new one in atomically so a webserver, a daemon and
a run loading the code at the same time never read a half-written file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from slipway.settings import PROJECT_ROOT, load_settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_PROFILES_DIR = DBT_PROJECT_DIR
TARGET_DIR = DBT_PROJECT_DIR / "target"
MANIFEST_PATH = TARGET_DIR / "manifest.json"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"

# What the manifest is derived from: a change to any of these makes it stale.
_SOURCE_DIRS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")
_SOURCE_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")


def dbt_env(lakehouse_root: str | None = None) -> dict[str, str]:
    """The environment variables dbt needs, resolved from Slipway's settings.

    ``profiles.yml`` reads them with ``env_var``; passing them explicitly keeps dbt on the same
    lakehouse as the caller even when the caller's root came from a resource, not the environment.
    """
    settings = load_settings()
    scratch = os.environ.get("SLIPWAY_DBT_SCRATCH", "").strip() or str(
        settings.data_dir / "dbt" / "scratch"
    )
    return {
        "SLIPWAY_LAKEHOUSE_ROOT": lakehouse_root or settings.lakehouse_root,
        "SLIPWAY_DBT_SCRATCH": scratch,
    }


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
    newest = 0.0
    for name in _SOURCE_FILES:
        path = project_dir / name
        if path.exists():
            newest = max(newest, path.stat().st_mtime)
    for name in _SOURCE_DIRS:
        root = project_dir / name
        if root.is_dir():
            for path in root.rglob("*"):
                if path.is_file():
                    newest = max(newest, path.stat().st_mtime)
    return newest


def manifest_is_stale(project_dir: Path = DBT_PROJECT_DIR) -> bool:
    """True when the manifest is missing or older than any model, macro, test or project file."""
    manifest = project_dir / "target" / "manifest.json"
    if not manifest.exists():
        return True
    return manifest.stat().st_mtime < _newest_source_mtime(project_dir)


def parse_project(
    project_dir: Path = DBT_PROJECT_DIR, profiles_dir: Path = DBT_PROFILES_DIR
) -> Path:
    """Run ``dbt parse`` in-process and atomically install ``target/manifest.json``.

    The parse writes into a private temporary target folder first; the manifest and the
    partial-parse file (which dagster-dbt copies into each run's target folder to skip
    re-parsing) are then moved into ``target/`` with ``os.replace``.
    """
    from dbt.cli.main import dbtRunner

    target = project_dir / "target"
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".parse-", dir=target))
    try:
        with environ(dbt_env()):
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
                ]
            )
        if not result.success:
            raise RuntimeError(f"dbt parse failed for {project_dir}: {result.exception}")
        for name in (PARTIAL_PARSE_FILE, "manifest.json"):  # manifest last: it marks "fresh"
            if (tmp / name).exists():
                os.replace(tmp / name, target / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "manifest.json"


def ensure_manifest(
    project_dir: Path = DBT_PROJECT_DIR, profiles_dir: Path = DBT_PROFILES_DIR
) -> Path:
    """The path of an up-to-date ``manifest.json``, parsing the project first when needed."""
    if manifest_is_stale(project_dir):
        return parse_project(project_dir, profiles_dir)
    return project_dir / "target" / "manifest.json"

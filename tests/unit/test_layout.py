"""The layout holds: imports run one way and every capability folder owns its definitions.

Arrows: ``orchestration`` -> ``assets`` -> ``slipway``. So ``slipway/`` imports neither
``assets``, ``orchestration`` nor Dagster; ``assets/`` never imports ``orchestration``; and within
the core ``slipway.training`` never imports ``slipway.registry`` (the registry's gate and model
lifecycle use training, not the reverse). Every folder under ``assets/`` except ``lib`` ends in
a ``definitions(usecase) -> dg.Definitions`` that the one loader calls.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, lazily or not (``from a import b`` gives ``a`` and ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def _offending(folder: str, banned: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = sorted(
            m for m in imported(path) if any(m == b or m.startswith(b + ".") for b in banned)
        )
        if bad:
            out[path.relative_to(ROOT).as_posix()] = bad
    return out


def test_the_core_imports_no_dagster_assets_or_orchestration() -> None:
    assert not _offending("slipway", ("dagster", "dagster_dbt", "assets", "orchestration"))


def test_assets_never_import_orchestration() -> None:
    assert not _offending("assets", ("orchestration",))


def test_training_does_not_import_the_registry() -> None:
    assert not _offending("slipway/training", ("slipway.registry",))


CAPABILITIES = sorted(
    p.name for p in (ROOT / "assets").iterdir() if (p / "__init__.py").exists() and p.name != "lib"
)


def test_the_loader_calls_every_capability_folder() -> None:
    from orchestration.definitions import CAPABILITIES as LOADED

    assert {f.__module__ for f in LOADED} == {f"assets.{c}" for c in CAPABILITIES}


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_each_capability_folder_ends_in_definitions(capability: str) -> None:
    module = importlib.import_module(f"assets.{capability}")
    definitions = getattr(module, "definitions", None)
    assert callable(definitions), f"assets/{capability}/ has no definitions(usecase)"
    assert list(inspect.signature(definitions).parameters) == ["usecase"]


def test_assets_take_typed_resources() -> None:
    """Assets, checks and sensors name their resources as typed parameters (what the UI shows
    and Dagster validates when the definitions load), never ``required_resource_keys`` and
    ``context.resources`` lookups that fail only when a run reaches them."""
    found = {
        path.relative_to(ROOT).as_posix(): needle
        for path in sorted((ROOT / "assets").rglob("*.py"))
        for needle in ("required_resource_keys", "context.resources")
        if needle in path.read_text(encoding="utf-8")
    }
    assert not found, found

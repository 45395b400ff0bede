"""Use-case registry: declarations are found by entry point or module path, never by an ``if``.

A use case is a :class:`~slipway.usecase.UseCase` object exposed by a module. Installed packages
register theirs under the ``slipway.usecases`` entry-point group (this project registers its own in
``pyproject.toml``); ``SLIPWAY_USECASES`` (comma-separated names or ``module:ATTR`` paths) narrows
or extends what one deployment loads, and ``SLIPWAY_USECASE`` names the default one (``make run``,
the CLI, the online scorer).
"""

from __future__ import annotations

import importlib
import os
from functools import cache
from importlib.metadata import entry_points

from slipway.usecase import UseCase

ENTRY_POINT_GROUP = "slipway.usecases"
DEFAULT_USECASE = "fraud"


def registered() -> dict[str, str]:
    """Every use case installed packages register: name -> ``module:ATTR``."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


@cache
def load_path(path: str) -> UseCase:
    """The use case at ``module:ATTR`` (``module`` alone: its ``USECASE`` attribute)."""
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    usecase = getattr(module, attr or "USECASE", None)
    if not isinstance(usecase, UseCase):
        raise TypeError(f"{path!r} is not a UseCase declaration (got {type(usecase).__name__})")
    return usecase


def _resolve(name_or_path: str) -> UseCase:
    if ":" in name_or_path or "." in name_or_path:
        return load_path(name_or_path)
    known = registered()
    if name_or_path not in known:
        raise KeyError(
            f"unknown use case {name_or_path!r}; registered: {', '.join(sorted(known)) or 'none'}"
            f" (entry-point group {ENTRY_POINT_GROUP!r}, or give a module:ATTR path)"
        )
    usecase = load_path(known[name_or_path])
    if usecase.name != name_or_path:
        raise ValueError(f"entry point {name_or_path!r} declares a use case named {usecase.name!r}")
    return usecase


def get_usecase(name: str | None = None) -> UseCase:
    """The use case ``name`` (default: ``SLIPWAY_USECASE``, else ``fraud``)."""
    name = name or os.environ.get("SLIPWAY_USECASE", "").strip() or DEFAULT_USECASE
    return _resolve(name)


def deployed_usecases() -> list[UseCase]:
    """The use cases this deployment loads side by side (``SLIPWAY_USECASES``, default: all).

    Names must be unique: they scope asset keys, storage and streams.
    """
    raw = os.environ.get("SLIPWAY_USECASES", "").strip()
    wanted = [p.strip() for p in raw.split(",") if p.strip()] if raw else sorted(registered())
    usecases = [_resolve(item) for item in wanted]
    names = [u.name for u in usecases]
    if len(set(names)) != len(names):
        raise ValueError(f"SLIPWAY_USECASES names a use case twice: {names}")
    return usecases

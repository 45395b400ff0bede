"""Asset keys, groups, jobs, sensors, schedules and pools, scoped by use case.

Several use cases live in one code location, so every name the graph shows starts with the use
case's: asset keys ``<usecase>/<layer>/<name>`` (``fraud/silver/transactions``), groups, jobs,
sensors, schedules and pools ``<usecase>_<name>``. A key that one folder produces and another
consumes is derived here from the lakehouse table it stands for, never retyped.
"""

from __future__ import annotations

import dagster as dg

from slipway.usecase import UseCase


def asset_key(usecase: UseCase | str, *path: str) -> dg.AssetKey:
    """``<usecase>/<path...>``: e.g. ``asset_key(u, "training", "model_candidate")``."""
    return dg.AssetKey([_name(usecase), *path])


def table_key(usecase: UseCase | str, table: str) -> dg.AssetKey:
    """The asset that writes the lakehouse table ``layer.name`` (``silver.transactions``)."""
    return asset_key(usecase, *table.split("."))


def scoped_name(usecase: UseCase | str, base: str) -> str:
    """A group, job, sensor, schedule or pool name of ``usecase``: ``<usecase>_<base>``."""
    return f"{_name(usecase)}_{base}"


def _name(usecase: UseCase | str) -> str:
    return usecase if isinstance(usecase, str) else usecase.name

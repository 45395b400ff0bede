"""Resources, chosen per environment by one variable: ``SLIPWAY_ENV=local|prod``.

``local`` (default) runs everything embedded: a lakehouse under ``data/``, Sail for Spark, SQLite
for Feast's online store; the resources hold the resolved local paths. ``prod`` takes every
location and endpoint from the environment and refuses to start when one of
``slipway.settings.PROD_REQUIRED`` is missing, rather than silently writing to a laptop path; its
resources hold ``dg.EnvVar``s, so the UI shows which variable each comes from and Dagster resolves
them when a run starts (never at import, never printed). Secrets are only ever read from the
environment.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from assets.lib.resources import (
    FeastResource,
    LakehouseResource,
    LandingResource,
    SparkResource,
)
from slipway.settings import load_settings, require_prod_settings

__all__ = [
    "FeastResource",
    "LakehouseResource",
    "LandingResource",
    "SparkResource",
    "build_resources",
]


def build_resources(env: str | None = None) -> dict[str, Any]:
    """The resource set for ``env`` (default: ``SLIPWAY_ENV``)."""
    settings = load_settings()
    env = env or settings.env
    if env == "prod":
        require_prod_settings({**os.environ, "SLIPWAY_ENV": "prod"})
        return {
            "lakehouse": LakehouseResource(root=dg.EnvVar("SLIPWAY_LAKEHOUSE_ROOT")),
            "landing": LandingResource(root=dg.EnvVar("SLIPWAY_LANDING_ROOT")),
            "spark": SparkResource(remote=dg.EnvVar("SLIPWAY_SPARK_REMOTE")),
            "feast": FeastResource(),
        }
    if env != "local":
        raise ValueError(f"SLIPWAY_ENV must be 'local' or 'prod', got {env!r}")
    return {
        "lakehouse": LakehouseResource(root=settings.lakehouse_root),
        "landing": LandingResource(root=settings.landing_root),
        "spark": SparkResource(remote=settings.spark_remote),
        "feast": FeastResource(),
    }

"""Resources, chosen per environment by one variable: ``SLIPWAY_ENV=local|prod``.

``local`` (default) runs everything embedded: a lakehouse under ``data/``, Sail for Spark, SQLite
for Feast's online store. ``prod`` takes every location and endpoint from the environment
(``SLIPWAY_LAKEHOUSE_ROOT``, ``SLIPWAY_SPARK_REMOTE``, Feast's Redis and SQL registry, see
``slipway.featurestore``) and refuses to start when one is missing, rather than silently writing
to a laptop path. Secrets are only ever read from the environment.
"""

from __future__ import annotations

import os
from typing import Any

from assets.lib.resources import (
    FeastResource,
    LakehouseResource,
    LandingResource,
    SparkResource,
)
from slipway.settings import load_settings

PROD_REQUIRED = (
    "SLIPWAY_LAKEHOUSE_ROOT",
    "SLIPWAY_LANDING_ROOT",
    "SLIPWAY_SPARK_REMOTE",
    "SLIPWAY_MLFLOW_TRACKING_URI",
)


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
        missing = [name for name in PROD_REQUIRED if not os.environ.get(name)]
        if missing:
            raise RuntimeError(
                f"SLIPWAY_ENV=prod needs {', '.join(missing)} set in the environment"
            )
    elif env != "local":
        raise ValueError(f"SLIPWAY_ENV must be 'local' or 'prod', got {env!r}")
    return {
        "lakehouse": LakehouseResource(root=settings.lakehouse_root),
        "landing": LandingResource(root=settings.landing_root),
        "spark": SparkResource(remote=settings.spark_remote),
        "feast": FeastResource(),
    }

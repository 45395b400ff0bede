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

import dagster as dg

from slipway.lakehouse import Lakehouse
from slipway.settings import load_settings
from slipway.spark import get_spark

PROD_REQUIRED = (
    "SLIPWAY_LAKEHOUSE_ROOT",
    "SLIPWAY_LANDING_ROOT",
    "SLIPWAY_SPARK_REMOTE",
    "SLIPWAY_MLFLOW_TRACKING_URI",
)


class LakehouseResource(dg.ConfigurableResource):
    """The lakehouse root: a local path or an ``s3://`` URI (credentials from the environment)."""

    root: str

    def get(self) -> Lakehouse:
        return Lakehouse(self.root)


class LandingResource(dg.ConfigurableResource):
    """Where the upstream drops its daily files."""

    root: str


class SparkResource(dg.ConfigurableResource):
    """``sail`` (embedded, default), ``sc://host:port`` (Spark Connect) or ``local[N]`` (JVM)."""

    remote: str = "sail"

    def session(self):
        return get_spark(self.remote)


class FeastResource(dg.ConfigurableResource):
    """The Feast store (registry, online and offline stores) for this environment.

    Configured from the environment (``SLIPWAY_FEAST_*``; see ``slipway.featurestore.store``) so
    that the online scorer, the CLI and the assets share one configuration.
    """

    def store(self):
        from slipway.featurestore.store import open_store

        return open_store()


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

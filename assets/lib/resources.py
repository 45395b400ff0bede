"""The resources assets, checks and sensors read: the deployment's roots, Spark, Feast.

Each resource holds the deployment's locations; a use case's own (``<root>/<usecase>``) are
derived on use with its name, so one resource set serves every use case of the code location.
Which values they get per environment is ``orchestration.resources.build_resources``.
"""

from __future__ import annotations

import dagster as dg

from slipway.lakehouse import Lakehouse
from slipway.settings import scoped_location
from slipway.spark import get_spark


class LakehouseResource(dg.ConfigurableResource):
    """The deployment's lakehouse root: a local path or an ``s3://`` URI (credentials from the
    environment). Each use case has its own lakehouse under it (``<root>/<usecase>``)."""

    root: str

    def get(self, usecase: str) -> Lakehouse:
        """The lakehouse of ``usecase`` (a name is required: no asset reads another's tables)."""
        return Lakehouse(scoped_location(self.root, usecase))


class LandingResource(dg.ConfigurableResource):
    """Where the upstream drops its daily files: ``<root>/<usecase>/<stream>/<day>/``."""

    root: str

    def root_for(self, usecase: str) -> str:
        """The landing area of ``usecase``."""
        return scoped_location(self.root, usecase)


class SparkResource(dg.ConfigurableResource):
    """``sail`` (embedded, default), ``sc://host:port`` (Spark Connect) or ``local[N]`` (JVM)."""

    remote: str = "sail"

    def session(self):
        return get_spark(self.remote)


class FeastResource(dg.ConfigurableResource):
    """The Feast store (registry, online and offline stores) for this environment.

    Configured from the environment (``SLIPWAY_FEAST_*``; see ``slipway.featurestore.store``) so
    that the online scorer, the CLI and the assets share one configuration; each use case has its
    own repository, registry and online store (``FeastSpec``, ``<feast_dir>/<usecase>``).
    """

    def store(self, usecase):
        from slipway.featurestore.store import open_store

        return open_store(usecase=usecase)

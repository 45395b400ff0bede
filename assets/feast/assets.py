"""Feast as assets: `feast apply` (the registry) and the online store's materialization.

Putting the registry in the graph means a change to a feature view shows up in the lineage
between the feature tables and everything that reads features, and a failed apply stops them.
"""

import dagster as dg

from assets.lib.keys import asset_key, scoped_name
from assets.lib.metadata import read_versions
from assets.lib.partitions import daily_partitions
from assets.lib.resources import FeastResource, LakehouseResource
from assets.lib.retries import REMOTE_RETRY_POLICY, retry_transient_only
from slipway.featurestore.online import materialize_online, online_consistency
from slipway.featurestore.store import apply_repo, feature_repo
from slipway.lakehouse import TableRef
from slipway.settings import PROJECT_ROOT
from slipway.usecase import UseCase

FEAST = "feast"


def registry_key(usecase: UseCase) -> dg.AssetKey:
    """``<usecase>/feast/registry``: what every reader of features depends on."""
    return asset_key(usecase, "feast", "registry")


def online_key(usecase: UseCase) -> dg.AssetKey:
    return asset_key(usecase, "feast", "online_store")


def feast_definitions(usecase: UseCase) -> list:
    feature_keys = [asset_key(usecase, "features", t.name) for t in usecase.feature_tables]
    repo = feature_repo(usecase).relative_to(PROJECT_ROOT)

    @dg.asset(
        key=registry_key(usecase),
        deps=feature_keys,
        group_name=scoped_name(usecase, FEAST),
        kinds={"feast"},
        description=f"`feast plan` + `feast apply` of {repo}/: entities, Delta sources, feature views, services.",
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def feast_registry(
        context: dg.AssetExecutionContext, feast: FeastResource
    ) -> dg.MaterializeResult:
        store = feast.store(usecase)
        report = apply_repo(store)
        context.log.info(f"feast apply: {report.diff}")
        return dg.MaterializeResult(
            metadata={
                "plan": dg.MetadataValue.md(f"```\n{report.diff}\n```"),
                "changed": report.changed,
                "objects": dg.MetadataValue.json(report.objects),
                "feature_services": dg.MetadataValue.json(
                    sorted(s.name for s in store.list_feature_services())
                ),
                "project": store.project,
                "registry": str(store.config.registry.path),
            }
        )

    deps = [dg.AssetDep(registry_key(usecase)), *(dg.AssetDep(k) for k in feature_keys)]

    @dg.asset(
        key=online_key(usecase),
        deps=deps,
        group_name=scoped_name(usecase, FEAST),
        partitions_def=daily_partitions(usecase),
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"feast", "sqlite", "redis"},
        description="Latest feature values per entity in the online store (SQLite locally, Redis in production).",
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def online_store(
        context: dg.AssetExecutionContext, feast: FeastResource, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        start = context.partition_time_window.start.date()
        lakehouse = lakehouse.get(usecase.name)
        store = feast.store(usecase)
        report = materialize_online(store, lakehouse, start)
        consistency = online_consistency(store, lakehouse)
        if not consistency.consistent:  # never a silent mix of loads
            context.log.warning(f"online store after this load: {consistency.describe()}")
        return dg.MaterializeResult(
            metadata={
                "window_start": report.start.isoformat(),
                "window_end": report.end.isoformat(),
                "feature_views": dg.MetadataValue.json(report.feature_views),
                "table_versions_read": read_versions(
                    [TableRef(n, lakehouse.uri(n), v) for n, v in report.versions.items()]
                ),
                "online_store": store.config.online_store.type,
                "seconds": round(report.seconds, 2),
                "consistent": consistency.consistent,
                "consistency": consistency.describe(),
                "recovered_views": dg.MetadataValue.json(report.recovered),
            }
        )

    return [feast_registry, online_store]

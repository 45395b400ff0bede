"""Feast as assets: `feast apply` (the registry) and the online store's materialization.

Putting the registry in the graph means a change to a feature view shows up in the lineage
between the feature tables and everything that reads features, and a failed apply stops them.
"""

import dagster as dg

from assets.metadata import read_versions
from orchestration.partitions import daily_partitions
from slipway.featurestore.online import materialize_online, online_consistency
from slipway.featurestore.store import FEATURE_REPO, apply_repo
from slipway.lakehouse import TableRef
from slipway.usecase import UseCase

FEAST = "feast"
REGISTRY_KEY = dg.AssetKey(["feast", "registry"])
ONLINE_KEY = dg.AssetKey(["feast", "online_store"])


def feast_definitions(usecase: UseCase) -> list:
    feature_keys = [dg.AssetKey(["features", t.name]) for t in usecase.feature_tables]

    @dg.asset(
        key=REGISTRY_KEY,
        deps=feature_keys,
        group_name=FEAST,
        kinds={"feast"},
        description=f"`feast plan` + `feast apply` of {FEATURE_REPO.name}/: entities, Delta sources, feature views, services.",
        required_resource_keys={"feast"},
    )
    def feast_registry(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        store = context.resources.feast.store()
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

    deps = [dg.AssetDep(REGISTRY_KEY)]
    deps += [dg.AssetDep(dg.AssetKey(["features", t.name])) for t in usecase.feature_tables]

    @dg.asset(
        key=ONLINE_KEY,
        deps=deps,
        group_name=FEAST,
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"feast", "sqlite", "redis"},
        description="Latest feature values per entity in the online store (SQLite locally, Redis in production).",
        required_resource_keys={"feast", "lakehouse"},
    )
    def online_store(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        start = context.partition_time_window.start.date()
        lakehouse = context.resources.lakehouse.get()
        store = context.resources.feast.store()
        report = materialize_online(store, lakehouse, start, progress=context.log.info)
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

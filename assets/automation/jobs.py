"""Jobs: named selections of the graph that schedules, sensors and `make run` launch."""

from __future__ import annotations

import dagster as dg

DRIFT = dg.AssetKey(["monitoring", "drift"])
PERFORMANCE = dg.AssetKey(["monitoring", "performance"])

end_to_end = dg.define_asset_job(
    "end_to_end",
    selection=dg.AssetSelection.all(),
    description="Everything, landing to monitoring, for a range of days (what `make run` launches).",
)

ingestion = dg.define_asset_job(
    "ingestion",
    selection=dg.AssetSelection.groups("ingestion"),
    description="Landing files -> bronze -> silver + quarantine, and the reference snapshots.",
)

daily_ingest_and_score = dg.define_asset_job(
    "daily_ingest_and_score",
    selection=dg.AssetSelection.groups("ingestion", "gold", "features", "feast", "scoring")
    | dg.AssetSelection.assets(DRIFT),
    description=(
        "A day (or a range, as one run) from landing files through silver, gold, features, the "
        "online store, scoring and drift monitoring."
    ),
)

evaluate_performance = dg.define_asset_job(
    "evaluate_performance",
    selection=dg.AssetSelection.assets(PERFORMANCE),
    description="Model performance on days whose labels have matured.",
)

retrain = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.groups("training", "registry"),
    description="Training set -> model candidate -> promotion gate -> champion.",
)


def jobs() -> list:
    return [end_to_end, ingestion, daily_ingest_and_score, evaluate_performance, retrain]

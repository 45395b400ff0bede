"""Jobs: named selections of the graph that schedules, sensors and `make run` launch."""

from __future__ import annotations

import dagster as dg

INGEST_GROUPS = ("ingestion", "gold", "features", "feast")

end_to_end = dg.define_asset_job(
    "end_to_end",
    selection=dg.AssetSelection.all(),
    description="Everything, landing to predictions, for a range of days (what `make run` launches).",
)

ingestion = dg.define_asset_job(
    "ingestion",
    selection=dg.AssetSelection.groups("ingestion"),
    description="Landing files -> bronze -> silver + quarantine, and the reference snapshots.",
)

daily_ingest_and_score = dg.define_asset_job(
    "daily_ingest_and_score",
    selection=dg.AssetSelection.groups(*INGEST_GROUPS, "scoring"),
    description="One day's landing files through silver, gold, features, the online store and scoring.",
)

retrain = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.groups("training", "registry"),
    description="Training set -> model candidate -> promotion gate -> champion.",
)


def jobs() -> list:
    return [end_to_end, ingestion, daily_ingest_and_score, retrain]

"""The toy parcels use case's Delta feature table."""

from slipway.featurestore import DeltaSource

depot_load_source = DeltaSource(
    name="depot_load_source",
    table="features.depot_load",
    timestamp_field="feature_ts",
    description="Per depot and day, known at the start of the day.",
)

"""Data sources: the flights lakehouse's Delta feature tables, read at exact versions.

Each source names a table (``layer.name``) of the use case's own lakehouse; the offline store
resolves it against the root the environment gives, so one registry serves every deployment.
"""

from slipway.featurestore import DeltaSource

route_delays_source = DeltaSource(
    name="route_delays_source",
    table="features.route_delays",
    timestamp_field="feature_ts",
    description="Per route and local day, known at the start of the day.",
)

carrier_delays_source = DeltaSource(
    name="carrier_delays_source",
    table="features.carrier_delays",
    timestamp_field="feature_ts",
    description="Per carrier and local day, known at the start of the day.",
)

origin_delays_source = DeltaSource(
    name="origin_delays_source",
    table="features.origin_delays",
    timestamp_field="feature_ts",
    description="Per origin airport and local day, known at the start of the day.",
)

origin_weather_source = DeltaSource(
    name="origin_weather_source",
    table="features.origin_weather",
    timestamp_field="observed_at",
    description="Hourly weather at each origin, stamped at the hour observed.",
)

plane_profile_source = DeltaSource(
    name="plane_profile_source",
    table="features.plane_profile",
    timestamp_field="feature_ts",
    description="The plane registry, valid from its snapshot.",
)

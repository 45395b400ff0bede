"""Feature views over the flights feature tables (declared in ``slipway.usecases.flights``).

Join keys are declared in each schema so that the parsed views equal the registered ones and
``feast plan`` reports no change. TTLs say how stale a row may be at the scheduled departure:
a daily row is stamped at local midnight (two days covers a day the upstream delivered late),
an hourly observation holds for three hours, the plane registry for ever.
"""

from datetime import timedelta

from data_sources import (
    carrier_delays_source,
    origin_delays_source,
    origin_weather_source,
    plane_profile_source,
    route_delays_source,
)
from entities import carrier, origin, plane, route
from feast import FeatureView, Field
from feast.types import Float64, Int64, String

DAILY_TTL = timedelta(days=2)


def _trailing(prefix: str) -> list[Field]:
    return [
        Field(name=f"{prefix}_flights_28d", dtype=Int64),
        Field(name=f"{prefix}_cancel_rate_28d", dtype=Float64),
        Field(name=f"{prefix}_delay_rate_28d", dtype=Float64),
        Field(name=f"{prefix}_delay_rate_7d", dtype=Float64),
        Field(name=f"{prefix}_mean_arr_delay_28d", dtype=Float64),
    ]


route_delays = FeatureView(
    name="route_delays",
    entities=[route],
    ttl=DAILY_TTL,
    schema=[Field(name="route", dtype=String), *_trailing("route")],
    source=route_delays_source,
    online=True,
    description="How the route's matured flights went over the last 28 and 7 days.",
    tags={"owner": "flights", "table": "features.route_delays"},
)

carrier_delays = FeatureView(
    name="carrier_delays",
    entities=[carrier],
    ttl=DAILY_TTL,
    schema=[Field(name="carrier", dtype=String), *_trailing("carrier")],
    source=carrier_delays_source,
    online=True,
    description="How the carrier's matured flights from New York went over the last 28 and 7 days.",
    tags={"owner": "flights", "table": "features.carrier_delays"},
)

origin_delays = FeatureView(
    name="origin_delays",
    entities=[origin],
    ttl=DAILY_TTL,
    schema=[Field(name="origin", dtype=String), *_trailing("origin")],
    source=origin_delays_source,
    online=True,
    description="How the origin airport's matured departures went over the last 28 and 7 days.",
    tags={"owner": "flights", "table": "features.origin_delays"},
)

origin_weather = FeatureView(
    name="origin_weather",
    entities=[origin],
    ttl=timedelta(hours=3),
    schema=[
        Field(name="origin", dtype=String),
        *[
            Field(name=f"wx_{c}", dtype=Float64)
            for c in (
                "temp",
                "dewp",
                "humid",
                "wind_dir",
                "wind_speed",
                "wind_gust",
                "precip",
                "pressure",
                "visib",
            )
        ],
    ],
    source=origin_weather_source,
    online=True,
    description="The latest hourly weather observation at the origin.",
    tags={"owner": "flights", "table": "features.origin_weather"},
)

plane_profile = FeatureView(
    name="plane_profile",
    entities=[plane],
    ttl=timedelta(0),
    schema=[
        Field(name="tailnum", dtype=String),
        Field(name="plane_year", dtype=Int64),
        Field(name="plane_seats", dtype=Int64),
        Field(name="plane_engines", dtype=Int64),
    ],
    source=plane_profile_source,
    online=True,
    description="The plane's registry entry: year built, seats, engines.",
    tags={"owner": "flights", "table": "features.plane_profile"},
)

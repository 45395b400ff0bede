"""Feature views of the toy parcels use case."""

from datetime import timedelta

from data_sources import depot_load_source
from entities import depot
from feast import FeatureView, Field
from feast.types import Float64, Int64, String

depot_load = FeatureView(
    name="depot_load",
    entities=[depot],
    ttl=timedelta(days=2),
    schema=[
        Field(name="depot_id", dtype=String),
        Field(name="region", dtype=String),
        Field(name="depot_scans_3d", dtype=Int64),
        Field(name="depot_avg_weight_3d", dtype=Float64),
    ],
    source=depot_load_source,
    online=True,
    description="A depot's recent load.",
)

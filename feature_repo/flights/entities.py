"""Entities: what the flights features describe (none of them is the flight itself)."""

from feast import Entity
from feast.value_type import ValueType

route = Entity(
    name="route",
    join_keys=["route"],
    value_type=ValueType.STRING,
    description="An origin-destination pair, e.g. EWR-IAH.",
)

carrier = Entity(
    name="carrier",
    join_keys=["carrier"],
    value_type=ValueType.STRING,
    description="An airline, by its two-character code.",
)

origin = Entity(
    name="origin",
    join_keys=["origin"],
    value_type=ValueType.STRING,
    description="A New York departure airport (EWR, JFK, LGA): delays and weather.",
)

plane = Entity(
    name="plane",
    join_keys=["tailnum"],
    value_type=ValueType.STRING,
    description="An aircraft, by tail number.",
)

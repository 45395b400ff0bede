"""Entities of the toy parcels use case."""

from feast import Entity
from feast.value_type import ValueType

depot = Entity(
    name="depot", join_keys=["depot_id"], value_type=ValueType.STRING, description="A depot."
)

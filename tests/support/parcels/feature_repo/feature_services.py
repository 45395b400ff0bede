"""Feature services of the toy parcels use case."""

from feast import FeatureService
from features import depot_load

parcels_model_v1 = FeatureService(name="parcels_model_v1", features=[depot_load])

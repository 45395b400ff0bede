"""Feature services: one per model version family, so a model names exactly what it was fed."""

from feast import FeatureService
from features import carrier_delays, origin_delays, origin_weather, plane_profile, route_delays

flights_model_v1 = FeatureService(
    name="flights_model_v1",
    features=[route_delays, carrier_delays, origin_delays, origin_weather, plane_profile],
    description="Everything the flights LightGBM model reads from the store.",
    tags={"model": "flights_lgbm"},
)

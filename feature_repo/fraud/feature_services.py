"""Feature services: one per model version family, so a model names exactly what it was fed."""

from feast import FeatureService
from features import customer_behaviour, customer_profile, merchant_risk, transaction_context

fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[customer_behaviour, merchant_risk, customer_profile, transaction_context],
    description="Everything the fraud LightGBM model reads, stored and request-time.",
    tags={"model": "fraud_lgbm"},
)

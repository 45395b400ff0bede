"""Data sources: the lakehouse's Delta feature tables, read at exact versions.

Each source names a table (``layer.name``); the offline store resolves it against the lakehouse
root of the environment, so the same registry serves local and production deployments.
"""

from feast import RequestSource
from feast.field import Field
from feast.types import Float64, String

from slipway.featurestore import DeltaSource

customer_behaviour_source = DeltaSource(
    name="customer_behaviour_source",
    table="features.customer_behaviour",
    timestamp_field="event_time",
    description="The customer's window features before each transaction, one row per transaction.",
)

merchant_risk_source = DeltaSource(
    name="merchant_risk_source",
    table="features.merchant_risk",
    timestamp_field="feature_ts",
    description="Per merchant and day, known at the start of the day.",
)

customer_profile_source = DeltaSource(
    name="customer_profile_source",
    table="features.customer_profile",
    timestamp_field="feature_ts",
    description="Customer master data, valid from signup.",
)

transaction_request = RequestSource(
    name="transaction_request",
    schema=[
        Field(name="amount_eur", dtype=Float64),
        Field(name="country", dtype=String),
        Field(name="device_id", dtype=String),
        Field(name="event_epoch", dtype=Float64),
    ],
    description="The incoming transaction, as known at authorisation time.",
)

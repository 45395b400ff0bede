"""Feature views over the Delta feature tables, and the request-time on-demand view.

Join keys are declared in each schema: Feast would infer them at apply time, but then the views
parsed from this file never equal the registered ones and every `feast plan` reports a change.

``customer_behaviour`` is keyed by the transaction itself: its row holds the customer's windows
*before* that transaction (declared once in ``slipway.usecases.fraud.CUSTOMER_WINDOWS``), so the
point-in-time join picks exactly the transaction's own row and cannot leak. It is not
materialized: Feast's online path has no per-event windows (push sources are last-write-wins and
the stream processor ignores aggregations), so the online scorer gets these features from
``slipway.windows``' aggregator, from the same declaration, and Feast stays the registry of what
the model reads.
"""

from datetime import timedelta

from data_sources import (
    customer_behaviour_source,
    customer_profile_source,
    merchant_risk_source,
    transaction_request,
)
from entities import customer, merchant, transaction
from feast import FeatureView, Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float64, Int64, String

from slipway.featurestore.on_demand import columnar_tag

customer_behaviour = FeatureView(
    name="customer_behaviour",
    entities=[transaction],
    # The row is stamped at its own transaction's time: any TTL keeps exactly that row.
    ttl=timedelta(days=1),
    schema=[
        Field(name="transaction_id", dtype=String),
        Field(name="txn_count_1h", dtype=Int64),
        Field(name="txn_count_24h", dtype=Int64),
        Field(name="txn_count_7d", dtype=Int64),
        Field(name="txn_count_30d", dtype=Int64),
        Field(name="amount_sum_1h", dtype=Float64),
        Field(name="amount_sum_24h", dtype=Float64),
        Field(name="amount_sum_7d", dtype=Float64),
        Field(name="amount_avg_30d", dtype=Float64),
        Field(name="amount_max_30d", dtype=Float64),
        Field(name="distinct_merchants_24h", dtype=Int64),
        Field(name="distinct_countries_24h", dtype=Int64),
        Field(name="countries_30d", dtype=Array(String)),
        Field(name="devices_30d", dtype=Array(String)),
        Field(name="last_txn_epoch", dtype=Float64),
    ],
    source=customer_behaviour_source,
    online=False,
    description="The customer's windows before each transaction (velocity, spend, habits); "
    "served online by the window aggregator.",
    tags={"owner": "fraud", "table": "features.customer_behaviour"},
)

merchant_risk = FeatureView(
    name="merchant_risk",
    entities=[merchant],
    ttl=timedelta(days=2),
    schema=[
        Field(name="merchant_id", dtype=String),
        Field(name="merchant_txn_count_30d", dtype=Int64),
        Field(name="merchant_avg_amount_30d", dtype=Float64),
        Field(name="merchant_matured_txn_count", dtype=Int64),
        Field(name="merchant_matured_fraud_count", dtype=Int64),
        Field(name="merchant_fraud_rate_30d", dtype=Float64),
    ],
    source=merchant_risk_source,
    online=True,
    description="Merchant volume and fraud rate over matured labels, as of the start of the day.",
    tags={"owner": "fraud", "table": "features.merchant_risk"},
)

customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(0),
    schema=[
        Field(name="customer_id", dtype=String),
        Field(name="home_country", dtype=String),
        Field(name="segment", dtype=String),
        Field(name="birth_year", dtype=Int64),
        Field(name="signup_epoch", dtype=Float64),
    ],
    source=customer_profile_source,
    online=True,
    description="Customer master data.",
    tags={"owner": "fraud", "table": "features.customer_profile"},
)


@on_demand_feature_view(
    sources=[customer_behaviour, customer_profile, transaction_request],
    schema=[
        Field(name="seconds_since_last_txn", dtype=Float64),
        Field(name="amount_to_avg_30d", dtype=Float64),
        Field(name="is_new_country", dtype=Float64),
        Field(name="is_new_device", dtype=Float64),
        Field(name="is_foreign", dtype=Float64),
        Field(name="account_age_days", dtype=Float64),
        Field(name="hour_of_day", dtype=Float64),
        Field(name="is_night", dtype=Float64),
    ],
    mode="pandas",
    description="Request-time features: the transaction against the customer's stored state.",
    # The function below delegates to this transform; the offline store calls it on Arrow.
    tags=columnar_tag("slipway.usecases.fraud.request_features:transaction_context"),
)
def transaction_context(inputs):
    # Feast serialises this function by value into its registry (it rebinds __module__ to
    # __main__), so the body only delegates: the logic stays in one importable, tested place and
    # every process that reads the registry runs the same code.
    from slipway.usecases.fraud.request_features import transaction_context as compute

    return compute(inputs)

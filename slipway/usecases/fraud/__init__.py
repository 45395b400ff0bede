"""The flagship use case: card-payment fraud, declared in one place.

Landing streams and reference snapshots (``landing``), their silver contracts (``contracts``),
labels, features, model and monitoring settings are all read from ``FRAUD`` by the generic
machinery.
"""

from __future__ import annotations

from collections.abc import Mapping

from functools import partial

from slipway.usecase import FeatureTable, IngestPolicy, LabelSpec, Reference, Stream, UseCase
from slipway.usecases.fraud import contracts, feature_contracts, features
from slipway.usecases.fraud.landing import (
    CHARGEBACK_FIELDS,
    CUSTOMER_FIELDS,
    FX_TO_EUR,
    MERCHANT_FIELDS,
    TRANSACTION_FIELDS,
)


def _amount_eur() -> Mapping[str, object]:
    from pyspark.sql import functions as F

    rates = F.create_map(*[x for code, rate in sorted(FX_TO_EUR.items()) for x in (F.lit(code), F.lit(rate))])
    return {"amount_eur": F.round(F.col("amount") * rates[F.col("currency")], 4)}


TRANSACTIONS = Stream(
    name="transactions",
    key="transaction_id",
    event_time="event_time",
    fields=TRANSACTION_FIELDS,
    contract=contracts.transactions_contract,
    derive=_amount_eur,
    description="Card authorisations delivered daily by the processor.",
)

CHARGEBACKS = Stream(
    name="chargebacks",
    key="transaction_id",
    event_time="reported_at",
    fields=CHARGEBACK_FIELDS,
    contract=contracts.chargebacks_contract,
    description="Fraud reports (chargebacks), arriving days after the transaction.",
)

CUSTOMERS = Reference(
    name="customers",
    key="customer_id",
    fields=CUSTOMER_FIELDS,
    contract=contracts.customers_contract,
    description="Customer master data snapshot.",
)

MERCHANTS = Reference(
    name="merchants",
    key="merchant_id",
    fields=MERCHANT_FIELDS,
    contract=contracts.merchants_contract,
    description="Merchant master data snapshot.",
)

LABEL = LabelSpec(
    stream="chargebacks",
    key="transaction_id",
    reported_at="reported_at",
    maturity_days=7,
    target="is_fraud",
)

CUSTOMER_BEHAVIOUR = FeatureTable(
    name="customer_behaviour",
    entity="customer_id",
    timestamp="feature_ts",
    inputs=("gold.enriched_transactions",),
    lookback_days=30,
    build=features.customer_behaviour,
    contract=feature_contracts.customer_behaviour_contract,
    description="Per-transaction customer state: velocity, spend, diversity, 30-day habits.",
)

MERCHANT_RISK = FeatureTable(
    name="merchant_risk",
    entity="merchant_id",
    timestamp="feature_ts",
    inputs=("gold.enriched_transactions", "silver.chargebacks"),
    lookback_days=30 + LABEL.maturity_days,
    build=partial(features.merchant_risk, maturity_days=LABEL.maturity_days),
    contract=feature_contracts.merchant_risk_contract,
    description="Per merchant and day: 30-day volume and fraud rate over matured labels only.",
)

CUSTOMER_PROFILE = FeatureTable(
    name="customer_profile",
    entity="customer_id",
    timestamp="feature_ts",
    inputs=("silver.customers",),
    lookback_days=0,
    build=features.customer_profile,
    contract=feature_contracts.customer_profile_contract,
    partitioned=False,
    description="Customer master data, valid from signup.",
)

FRAUD = UseCase(
    name="fraud",
    streams=(TRANSACTIONS, CHARGEBACKS),
    references=(CUSTOMERS, MERCHANTS),
    label=LABEL,
    ingest=IngestPolicy(max_bad_share=0.05, require_manifest=True),
    feature_tables=(CUSTOMER_BEHAVIOUR, MERCHANT_RISK, CUSTOMER_PROFILE),
)

"""The flagship use case: card-payment fraud, declared in one place.

Landing streams and reference snapshots (``landing``), their silver contracts (``contracts``),
labels, features, model and monitoring settings are all read from ``FRAUD`` by the generic
machinery.
"""

from __future__ import annotations

from collections.abc import Mapping

from slipway.usecase import IngestPolicy, LabelSpec, Reference, Stream, UseCase
from slipway.usecases.fraud import contracts
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

FRAUD = UseCase(
    name="fraud",
    streams=(TRANSACTIONS, CHARGEBACKS),
    references=(CUSTOMERS, MERCHANTS),
    label=LabelSpec(stream="chargebacks", key="transaction_id", reported_at="reported_at", maturity_days=7, target="is_fraud"),
    ingest=IngestPolicy(max_bad_share=0.05, require_manifest=True),
)

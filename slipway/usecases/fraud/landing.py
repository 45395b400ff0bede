"""What the card processor delivers: the landed fields of each stream and reference snapshot.

This is the upstream contract as promised; the silver contracts (``contracts.py``) are what we
check that the delivery actually honours.
"""

from __future__ import annotations

from slipway.usecase import Field

# Fixed reporting-currency rates. The simulator imports this table to generate amounts, so the
# converted amounts are exact; a real deployment would read a rates table instead.
FX_TO_EUR: dict[str, float] = {
    "EUR": 1.0,
    "GBP": 1.17,
    "USD": 0.92,
    "CHF": 1.04,
    "PLN": 0.23,
    "SEK": 0.088,
}

CHANNELS: tuple[str, ...] = ("ecom", "pos", "contactless", "atm")

# The merchant category codes the processor uses, with their meaning. The model encodes
# merchant_category against this list, so an MCC outside it is treated as missing, not new.
MERCHANT_CATEGORIES: dict[str, str] = {
    "5411": "grocery stores",
    "5812": "restaurants",
    "5732": "electronics",
    "4722": "travel agencies",
    "7995": "gambling",
    "6011": "ATM cash",
    "5999": "miscellaneous retail",
    "5691": "clothing",
    "4121": "taxis",
    "5541": "fuel",
}

SEGMENTS: tuple[str, ...] = ("retail", "premium", "business", "student")

TRANSACTION_FIELDS: tuple[Field, ...] = (
    Field("transaction_id", "string", description="unique id assigned by the processor"),
    Field("event_time", "timestamp", description="authorisation time at the terminal, UTC"),
    Field(
        "received_at",
        "timestamp",
        description="when the processor received the authorisation, UTC: its position in the "
        "live stream (milliseconds after event_time, late for a few; same UTC day)",
    ),
    Field("customer_id", "string", normalise="upper"),
    Field("merchant_id", "string", normalise="upper"),
    Field("amount", "double", description="in the transaction currency's units"),
    Field("currency", "string", normalise="upper"),
    Field("channel", "string", normalise="lower"),
    Field("country", "string", normalise="upper", description="ISO-2 where it happened"),
    Field("merchant_category", "string", description="4-digit MCC"),
    Field("device_id", "string", description="wallet, browser or terminal fingerprint"),
)

CHARGEBACK_FIELDS: tuple[Field, ...] = (
    Field("transaction_id", "string"),
    Field("reported_at", "timestamp"),
    Field("fraud_type", "string", normalise="lower"),
)

CUSTOMER_FIELDS: tuple[Field, ...] = (
    Field("customer_id", "string", normalise="upper"),
    Field("signup_date", "date"),
    Field("home_country", "string", normalise="upper"),
    Field("segment", "string", normalise="lower"),
    Field("birth_year", "long"),
)

MERCHANT_FIELDS: tuple[Field, ...] = (
    Field("merchant_id", "string", normalise="upper"),
    Field("merchant_name", "string"),
    Field("merchant_category", "string"),
    Field("country", "string", normalise="upper"),
)

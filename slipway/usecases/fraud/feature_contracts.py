"""Pandera contracts for the fraud feature tables: types, nulls and the ranges that must hold.

A feature that breaks one of these (a negative count, a rate above one, a window sum smaller than
the transaction it includes) means the feature code or its input is wrong, and training on it
would silently learn the bug; the blocking check stops the graph instead.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.pandas import Check, Column

UTC_TS = pd.DatetimeTZDtype("us", "UTC")


def _sorted_sets(s: pd.Series) -> pd.Series:
    return s.map(lambda v: v is not None and list(v) == sorted(set(v)))


def customer_behaviour_contract() -> pa.DataFrameSchema:
    """One row per transaction: the customer's windows *before* it (its own amount excluded).

    A customer's first transaction has empty windows (counts and sums 0, no average, max or last
    time); nothing in a row may come from the transaction itself or a later one, which the
    ``last_before_event`` rule checks directly.
    """
    counts = {
        f"txn_count_{w}": Column("Int64", Check.ge(0), nullable=False)
        for w in ("1h", "24h", "7d", "30d")
    }
    sums = {
        f"amount_sum_{w}": Column(float, Check.ge(0), nullable=False) for w in ("1h", "24h", "7d")
    }
    return pa.DataFrameSchema(
        {
            "customer_id": Column(str, nullable=False),
            "transaction_id": Column(str, nullable=False, unique=True),
            "event_time": Column(UTC_TS, nullable=False),
            "received_at": Column(UTC_TS, nullable=False),
            **counts,
            **sums,
            "amount_avg_30d": Column(float, Check.gt(0), nullable=True),
            "amount_max_30d": Column(float, Check.gt(0), nullable=True),
            "distinct_merchants_24h": Column("Int64", Check.ge(0), nullable=False),
            "distinct_countries_24h": Column("Int64", Check.ge(0), nullable=False),
            "countries_30d": Column(
                object, Check(_sorted_sets, name="sorted_country_set"), nullable=False
            ),
            "devices_30d": Column(
                object, Check(_sorted_sets, name="sorted_device_set"), nullable=False
            ),
            "last_txn_epoch": Column(float, Check.gt(0), nullable=True),
        },
        checks=[
            Check(lambda df: df["txn_count_1h"] <= df["txn_count_24h"], name="count_1h_within_24h"),
            Check(lambda df: df["txn_count_24h"] <= df["txn_count_7d"], name="count_24h_within_7d"),
            Check(lambda df: df["txn_count_7d"] <= df["txn_count_30d"], name="count_7d_within_30d"),
            Check(
                lambda df: df["distinct_merchants_24h"] <= df["txn_count_24h"],
                name="distinct_merchants_bounded",
            ),
            Check(
                lambda df: df["amount_sum_1h"] <= df["amount_sum_24h"] + 1e-6,
                name="sum_1h_within_24h",
            ),
            Check(
                lambda df: (
                    df["amount_avg_30d"].isna()
                    | (df["amount_max_30d"] >= df["amount_avg_30d"] - 1e-6)
                ),
                name="max_at_least_avg",
            ),
            Check(
                lambda df: (df["txn_count_30d"] == 0) == df["last_txn_epoch"].isna(),
                name="last_exactly_when_history",
            ),
            Check(
                lambda df: (
                    df["last_txn_epoch"].isna()
                    | (
                        df["last_txn_epoch"]
                        < df["event_time"].astype("datetime64[us, UTC]").astype("int64") / 1e6
                    )
                ),
                name="last_before_event",
            ),
        ],
        strict=False,
        name="features.customer_behaviour",
    )


def merchant_risk_contract() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "merchant_id": Column(str, nullable=False),
            "feature_ts": Column(UTC_TS, nullable=False),
            "merchant_txn_count_30d": Column("Int64", Check.ge(0), nullable=False),
            "merchant_avg_amount_30d": Column(float, Check.gt(0), nullable=True),
            "merchant_matured_txn_count": Column("Int64", Check.ge(0), nullable=False),
            "merchant_matured_fraud_count": Column("Int64", Check.ge(0), nullable=False),
            "merchant_fraud_rate_30d": Column(float, Check.in_range(0.0, 1.0), nullable=True),
        },
        checks=[
            Check(
                lambda df: df["merchant_matured_fraud_count"] <= df["merchant_matured_txn_count"],
                name="frauds_within_matured_transactions",
            ),
        ],
        unique=["merchant_id", "feature_ts"],
        strict=False,
        name="features.merchant_risk",
    )


def customer_profile_contract() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "customer_id": Column(str, nullable=False, unique=True),
            "feature_ts": Column(UTC_TS, nullable=False),
            "home_country": Column(str, Check.str_matches(r"^[A-Z]{2}$"), nullable=False),
            "segment": Column(str, nullable=False),
            "birth_year": Column("Int64", Check.in_range(1900, 2020), nullable=False),
            "signup_epoch": Column(float, Check.gt(0), nullable=False),
        },
        strict=False,
        name="features.customer_profile",
    )

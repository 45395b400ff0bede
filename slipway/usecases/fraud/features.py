"""Fraud feature tables as pure Spark functions (DataFrame in, DataFrame out).

Timing is the whole game here, so each table states when its rows become known:

* ``customer_behaviour``: one row per transaction, keyed by its id, with the customer's window
  features *before* it: the customer's transactions that arrived before it with an event time in
  ``[t - W, t)``, as declared in ``CUSTOMER_WINDOWS`` (built by ``slipway.windows.backfill``; the
  online aggregator computes the same values per event). The point-in-time join picks exactly
  the transaction's own row, so it can never see the transaction itself or anything after it.
  Request-time features (amount versus the customer's average, novelty of country and device,
  time since the last transaction) combine it with the transaction; see ``request_features``.
* ``merchant_risk``: one row per merchant and day ``D``, stamped at ``D 00:00 UTC``, computed only
  from transactions before ``D`` and from chargebacks *reported* before ``D``. The fraud rate
  counts only matured transactions (older than the label maturity window), so a young
  transaction without a chargeback yet is not mistaken for a legitimate one.
* ``customer_profile``: master data stamped at signup, valid from then on.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from slipway.usecase import WindowFeatureSet
from slipway.windows.backfill import window_backfill

MICROS_PER_SECOND = 1_000_000

# amount_eur carries 4 decimals (silver rounds it so). Summed as a decimal, a sum is exact, so
# it does not depend on the order the engine adds the rows in: a partial aggregate per Spark
# partition, or a sliding window that started at another day, gives the same bits. As doubles,
# a re-built day could differ from the first build in the 4th decimal after rounding.
EXACT_AMOUNT = "decimal(18,4)"


def _exact_amount() -> Column:
    return F.col("amount_eur").cast(EXACT_AMOUNT)


def _in_dates(col: str, start: dt.date, end: dt.date) -> Column:
    return (F.col(col) >= F.lit(start.isoformat()).cast("date")) & (
        F.col(col) <= F.lit(end.isoformat()).cast("date")
    )


def customer_behaviour(
    windows: WindowFeatureSet, inputs: dict[str, DataFrame], start: dt.date, end: dt.date
) -> DataFrame:
    """Per-transaction customer state before it, from the declared window features.

    ``inputs[windows.source]`` must cover ``[start - horizon, end]`` so the windows of the first
    days are complete.
    """
    return window_backfill(windows, inputs[windows.source], start, end)


def merchant_risk(
    inputs: dict[str, DataFrame], start: dt.date, end: dt.date, maturity_days: int
) -> DataFrame:
    """Per merchant and day: 30-day volume and the fraud rate over matured transactions only.

    ``inputs["gold.enriched_transactions"]`` must cover ``[start - 30 - maturity days, end]``;
    ``inputs["silver.chargebacks"]`` every chargeback reported before ``end``.
    """
    spark = inputs["gold.enriched_transactions"].sparkSession
    tx = inputs["gold.enriched_transactions"].select(
        "transaction_id", "merchant_id", "date", "amount_eur"
    )
    cb = inputs["silver.chargebacks"].select(
        "transaction_id", F.to_date("reported_at").alias("reported_date")
    )
    daily = tx.groupBy("merchant_id", "date").agg(
        F.count(F.lit(1)).alias("n"), F.sum(_exact_amount()).alias("amount")
    )
    frauds = (
        tx.join(cb, "transaction_id", "inner")
        .groupBy("merchant_id", "date", "reported_date")
        .agg(F.count(F.lit(1)).alias("n_fraud"))
    )
    n_days = (end - start).days + 1
    days = spark.range(n_days).select(
        F.date_add(F.lit(start.isoformat()).cast("date"), F.col("id").cast("int")).alias("day")
    )
    lookback = 30 + maturity_days
    volume = (
        days.join(
            daily,
            (daily["date"] < days["day"]) & (daily["date"] >= F.date_sub(days["day"], lookback)),
        )
        .groupBy("merchant_id", "day")
        .agg(
            F.sum(
                F.when(F.col("date") >= F.date_sub(F.col("day"), 30), F.col("n")).otherwise(0)
            ).alias("merchant_txn_count_30d"),
            F.sum(
                F.when(F.col("date") >= F.date_sub(F.col("day"), 30), F.col("amount")).otherwise(
                    F.lit(0).cast(EXACT_AMOUNT)
                )
            ).alias("_amount_30d"),
            F.sum(
                F.when(
                    F.col("date") < F.date_sub(F.col("day"), maturity_days), F.col("n")
                ).otherwise(0)
            ).alias("merchant_matured_txn_count"),
        )
    )
    fraud = (
        days.join(
            frauds,
            (frauds["date"] < F.date_sub(days["day"], maturity_days))
            & (frauds["date"] >= F.date_sub(days["day"], lookback))
            & (frauds["reported_date"] < days["day"]),
        )
        .groupBy("merchant_id", "day")
        .agg(F.sum("n_fraud").alias("merchant_matured_fraud_count"))
    )
    return volume.join(fraud, ["merchant_id", "day"], "left").select(
        F.col("day").alias("date"),
        F.col("merchant_id"),
        F.to_timestamp(F.col("day")).alias("feature_ts"),
        F.col("merchant_txn_count_30d").cast("bigint"),
        F.round(
            F.when(
                F.col("merchant_txn_count_30d") > 0,
                F.col("_amount_30d") / F.col("merchant_txn_count_30d"),
            ),
            4,
        )
        .cast("double")
        .alias("merchant_avg_amount_30d"),
        F.col("merchant_matured_txn_count").cast("bigint"),
        F.coalesce(F.col("merchant_matured_fraud_count"), F.lit(0))
        .cast("bigint")
        .alias("merchant_matured_fraud_count"),
        F.when(
            F.col("merchant_matured_txn_count") > 0,
            F.round(
                F.coalesce(F.col("merchant_matured_fraud_count"), F.lit(0))
                / F.col("merchant_matured_txn_count"),
                6,
            ),
        ).alias("merchant_fraud_rate_30d"),
    )


def customer_profile(
    inputs: dict[str, DataFrame], start: dt.date | None = None, end: dt.date | None = None
) -> DataFrame:
    """Customer master data, valid from signup on."""
    customers = inputs["silver.customers"]
    return customers.select(
        F.col("customer_id"),
        F.to_timestamp(F.col("signup_date")).alias("feature_ts"),
        F.col("home_country"),
        F.col("segment"),
        F.col("birth_year").cast("bigint").alias("birth_year"),
        (
            F.unix_micros(F.to_timestamp(F.col("signup_date"))) / F.lit(float(MICROS_PER_SECOND))
        ).alias("signup_epoch"),
    )

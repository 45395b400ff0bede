"""Run one of Slipway's Spark transformations on JVM Spark (local mode) in this process.

Used by the parity tests in a subprocess: classic and Connect sessions must not share a process
(pyspark.sql.functions dispatches on an environment variable). Inputs and outputs are parquet so
both engines read exactly the same bytes.

    python -m tests.support.jvm_runner SPEC.json

where SPEC.json is ``[{"transform": NAME, "out": OUT.parquet, "inputs": {ARG: IN.parquet}}, ...]``:
one JVM start for every case (the start dominates the cost).
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import pyarrow.parquet as pq

START, END = dt.date(2026, 8, 1), dt.date(2026, 8, 31)


def transform(name: str, inputs: dict, start: dt.date = START, end: dt.date = END):
    """The transformation ``name`` applied to Spark DataFrames (shared by both engines)."""
    from slipway.ingest.parse import silver_candidates
    from slipway.usecases.fraud import CHARGEBACKS, CUSTOMER_WINDOWS, TRANSACTIONS, features

    if name == "silver_transactions":
        return silver_candidates(inputs["bronze"], TRANSACTIONS)
    if name == "silver_chargebacks":
        return silver_candidates(inputs["bronze"], CHARGEBACKS)
    if name == "customer_behaviour":
        return features.customer_behaviour(CUSTOMER_WINDOWS, inputs, start, end)
    if name == "merchant_risk":
        return features.merchant_risk(inputs, start, end, maturity_days=7)
    if name == "customer_profile":
        return features.customer_profile(inputs)
    raise KeyError(name)


def main(argv: list[str]) -> int:
    from slipway.spark import get_spark

    with open(argv[0]) as spec:
        cases = json.load(spec)
    spark = get_spark("local[2]")
    for case in cases:
        inputs = {key: spark.read.parquet(path) for key, path in case["inputs"].items()}
        pq.write_table(transform(case["transform"], inputs).toArrow(), case["out"])
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

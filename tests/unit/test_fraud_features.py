"""Fraud feature builders on Sail: window values, arrival order, and no leakage from the future."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from slipway.usecases.fraud import CUSTOMER_WINDOWS
from slipway.usecases.fraud.features import customer_behaviour, customer_profile, merchant_risk

D1 = dt.date(2026, 8, 1)
SECOND = pd.Timedelta(seconds=1)


def _ts(day: int, hh: int, mm: int = 0) -> pd.Timestamp:
    return pd.Timestamp(2026, 8, day, hh, mm, tz="UTC")


def _tx_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (id, customer, merchant, event_time, amount, country, device[, received_at])."""
    rows = [r if len(r) == 8 else (*r, r[3] + SECOND) for r in rows]  # on time: 1 s later
    frame = pd.DataFrame(
        rows,
        columns=[
            "transaction_id",
            "customer_id",
            "merchant_id",
            "event_time",
            "amount_eur",
            "country",
            "device_id",
            "received_at",
        ],
    )
    frame["date"] = frame["event_time"].dt.date
    return frame


def _behaviour(spark, rows, start=D1, end=dt.date(2026, 8, 31)) -> pd.DataFrame:
    df = spark.createDataFrame(_tx_frame(rows))
    out = (
        customer_behaviour(CUSTOMER_WINDOWS, {"gold.enriched_transactions": df}, start, end)
        .toArrow()
        .to_pandas()
    )
    return out.sort_values(["event_time", "transaction_id"]).reset_index(drop=True)


BASE = [
    ("t1", "C1", "M1", _ts(1, 10), 10.0, "DE", "D1"),
    ("t2", "C1", "M2", _ts(1, 10, 30), 20.0, "FR", "D1"),
    ("t3", "C1", "M1", _ts(1, 12), 40.0, "DE", "D2"),
    ("t4", "C1", "M3", _ts(3, 9), 5.0, "DE", "D1"),
    ("u1", "C2", "M1", _ts(1, 11), 99.0, "NL", "D9"),
]


def test_customer_windows_before_each_transaction(spark) -> None:
    out = _behaviour(spark, BASE)
    c1 = out[out.customer_id == "C1"].set_index("transaction_id")
    # The first transaction has empty windows: nothing before it.
    assert c1.loc["t1", "txn_count_30d"] == 0 and c1.loc["t1", "amount_sum_24h"] == 0.0
    assert pd.isna(c1.loc["t1", "amount_avg_30d"]) and pd.isna(c1.loc["t1", "last_txn_epoch"])
    assert list(c1.loc["t1", "countries_30d"]) == []
    # t2 sees t1 only, never itself.
    assert c1.loc["t2", "txn_count_1h"] == 1 and c1.loc["t2", "amount_sum_1h"] == 10.0
    # Windows are relative to the transaction's own time: [12:00 - 1h, 12:00) holds nothing.
    assert c1.loc["t3", "txn_count_1h"] == 0 and c1.loc["t3", "txn_count_24h"] == 2
    assert c1.loc["t3", "amount_sum_24h"] == 30.0
    assert (
        c1.loc["t3", "distinct_merchants_24h"] == 2 and c1.loc["t3", "distinct_countries_24h"] == 2
    )
    assert c1.loc["t4", "txn_count_24h"] == 0 and c1.loc["t4", "txn_count_7d"] == 3
    assert list(c1.loc["t4", "countries_30d"]) == ["DE", "FR"]
    assert list(c1.loc["t4", "devices_30d"]) == ["D1", "D2"]
    assert c1.loc["t4", "amount_avg_30d"] == pytest.approx(70.0 / 3)
    assert c1.loc["t4", "amount_max_30d"] == 40.0
    assert c1.loc["t2", "last_txn_epoch"] == _ts(1, 10).timestamp()
    assert c1.loc["t4", "last_txn_epoch"] == _ts(1, 12).timestamp()
    assert list(c1.loc["t1", ["event_time", "received_at"]]) == [_ts(1, 10), _ts(1, 10) + SECOND]


def test_a_late_transaction_counts_only_after_it_arrived(spark) -> None:
    """``late`` happened at 10:15 but reached the processor at 13:00: t3 (12:00) was decided
    before it existed for us, so t3 must not count it; t4 (day 3) does; ``late`` itself sees what
    arrived before it with an earlier event time."""
    late = ("late", "C1", "M9", _ts(1, 10, 15), 500.0, "US", "D5", _ts(1, 13))
    out = _behaviour(spark, [*BASE, late]).set_index("transaction_id")
    base = _behaviour(spark, BASE).set_index("transaction_id")
    for col in ("txn_count_24h", "amount_sum_24h", "distinct_countries_24h", "amount_max_30d"):
        assert out.loc["t3", col] == base.loc["t3", col], col
    assert out.loc["t2", "txn_count_1h"] == base.loc["t2", "txn_count_1h"] == 1
    assert out.loc["late", "txn_count_24h"] == 1  # t1 (10:00); t2, t3 are later in event time
    assert out.loc["late", "last_txn_epoch"] == _ts(1, 10).timestamp()
    assert out.loc["t4", "txn_count_7d"] == 4 and out.loc["t4", "amount_max_30d"] == 500.0
    assert list(out.loc["t4", "countries_30d"]) == ["DE", "FR", "US"]


def _same(a, b) -> bool:
    if isinstance(a, list | np.ndarray) or isinstance(b, list | np.ndarray):
        return list(a) == list(b)
    return (pd.isna(a) and pd.isna(b)) or a == b


def test_no_leakage_a_transaction_never_sees_itself_or_the_future(spark) -> None:
    before = _behaviour(spark, BASE).set_index("transaction_id").loc["t2"]
    changed = [list(r) for r in BASE]
    changed[1][4] = 5000.0  # t2 itself
    changed[1][5] = "US"
    changed[2][4] = 7000.0  # t3, later
    changed.append(("t9", "C1", "M9", _ts(1, 10, 45), 1.0, "BR", "D7"))  # a later transaction
    # ...and one that happened before t2 but arrived after it.
    changed.append(("t8", "C1", "M8", _ts(1, 10, 20), 3.0, "NG", "D8", _ts(1, 11)))
    after = _behaviour(spark, [tuple(r) for r in changed]).set_index("transaction_id").loc["t2"]
    for col in CUSTOMER_WINDOWS.feature_names:
        assert _same(after[col], before[col]), col
    assert list(after["countries_30d"]) == ["DE"]


def test_rows_are_restricted_to_the_requested_days_but_windows_look_back(spark) -> None:
    out = _behaviour(spark, BASE, start=dt.date(2026, 8, 3), end=dt.date(2026, 8, 3))
    assert list(out.transaction_id) == ["t4"]
    assert out.iloc[0]["txn_count_7d"] == 3  # the lookback rows were used, not emitted


def _merchant(spark, tx_rows, chargebacks, start, end, maturity=7) -> pd.DataFrame:
    tx = spark.createDataFrame(_tx_frame(tx_rows))
    cb = spark.createDataFrame(pd.DataFrame(chargebacks, columns=["transaction_id", "reported_at"]))
    out = (
        merchant_risk(
            {"gold.enriched_transactions": tx, "silver.chargebacks": cb}, start, end, maturity
        )
        .toArrow()
        .to_pandas()
    )
    return out.set_index(["merchant_id", "date"]).sort_index()


def test_merchant_fraud_rate_uses_matured_transactions_and_reported_labels_only(spark) -> None:
    tx = [(f"m{i}", "C1", "M1", _ts(1, 8, i), 10.0, "DE", "D1") for i in range(4)]
    tx += [("late", "C1", "M1", _ts(6, 8), 10.0, "DE", "D1")]
    chargebacks = [("m0", _ts(5, 12)), ("m1", _ts(10, 12)), ("late", _ts(7, 9))]
    out = _merchant(spark, tx, chargebacks, dt.date(2026, 8, 8), dt.date(2026, 8, 11))
    day = lambda d: dt.date(2026, 8, d)  # noqa: E731
    # Day 8: day-1 transactions are not yet matured (1 >= 8 - 7), so no rate at all.
    assert out.loc[("M1", day(8)), "merchant_matured_txn_count"] == 0
    assert pd.isna(out.loc[("M1", day(8)), "merchant_fraud_rate_30d"])
    assert out.loc[("M1", day(8)), "merchant_txn_count_30d"] == 5
    # Day 9: the four day-1 transactions matured; only m0's chargeback was reported before day 9.
    assert out.loc[("M1", day(9)), "merchant_matured_txn_count"] == 4
    assert out.loc[("M1", day(9)), "merchant_fraud_rate_30d"] == pytest.approx(0.25)
    # Day 10: m1's chargeback is reported ON day 10, so it is still unknown at 00:00 of day 10.
    assert out.loc[("M1", day(10)), "merchant_fraud_rate_30d"] == pytest.approx(0.25)
    assert out.loc[("M1", day(11)), "merchant_fraud_rate_30d"] == pytest.approx(0.5)
    # 'late' (day 6) is reported on day 7 but is not matured before day 14: never counted here.
    assert out.loc[("M1", day(11)), "merchant_matured_fraud_count"] == 2
    assert out.loc[("M1", day(9)), "feature_ts"] == pd.Timestamp(2026, 8, 9, tz="UTC")


def test_merchant_rows_do_not_change_when_later_labels_arrive(spark) -> None:
    tx = [(f"m{i}", "C1", "M1", _ts(1, 8, i), 10.0, "DE", "D1") for i in range(4)]
    base = _merchant(spark, tx, [("m0", _ts(5, 12))], dt.date(2026, 8, 9), dt.date(2026, 8, 9))
    more = _merchant(
        spark,
        tx,
        [("m0", _ts(5, 12)), ("m2", _ts(9, 0)), ("m3", _ts(20, 0))],
        dt.date(2026, 8, 9),
        dt.date(2026, 8, 9),
    )
    pd.testing.assert_frame_equal(base, more)


def test_customer_profile_is_valid_from_signup(spark) -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["C1"],
            "signup_date": [dt.date(2025, 3, 1)],
            "home_country": ["DE"],
            "segment": ["retail"],
            "birth_year": [1980],
        }
    )
    out = (
        customer_profile({"silver.customers": spark.createDataFrame(customers)})
        .toArrow()
        .to_pandas()
    )
    assert out.iloc[0]["feature_ts"] == pd.Timestamp(2025, 3, 1, tz="UTC")
    assert out.iloc[0]["signup_epoch"] == pytest.approx(
        pd.Timestamp(2025, 3, 1, tz="UTC").timestamp()
    )


def test_the_feature_contract_catches_a_broken_row(spark, lakehouse) -> None:
    import pyarrow as pa

    from slipway.features.build import check_feature_table
    from slipway.usecases.fraud import CUSTOMER_BEHAVIOUR

    out = _behaviour(spark, BASE)
    table = pa.Table.from_pandas(out, preserve_index=False)
    lakehouse.write(
        "features.customer_behaviour",
        table,
        replace_dates=(D1, dt.date(2026, 8, 31)),
        partition_by=["date"],
    )
    assert check_feature_table(lakehouse, CUSTOMER_BEHAVIOUR, D1, dt.date(2026, 8, 31)).passed
    broken = out.copy()
    broken.loc[0, "txn_count_1h"] = 99  # more in one hour than in the whole day: a feature bug
    broken.loc[1, "amount_avg_30d"] = -5.0
    # A leak: the transaction's own time as its "last earlier transaction".
    broken.loc[2, "last_txn_epoch"] = broken.loc[2, "event_time"].timestamp()
    lakehouse.write(
        "features.customer_behaviour",
        pa.Table.from_pandas(broken, preserve_index=False),
        replace_dates=(D1, dt.date(2026, 8, 31)),
    )
    result = check_feature_table(lakehouse, CUSTOMER_BEHAVIOUR, D1, dt.date(2026, 8, 31))
    assert not result.passed
    checks = set(result.failures["check"].astype(str))
    assert "count_1h_within_24h" in checks and "greater_than(0)" in checks
    assert "last_before_event" in checks

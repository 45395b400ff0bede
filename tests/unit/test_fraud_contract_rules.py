"""The fraud contract's rows-wide rules give the answers of their per-row date form.

The rules compare UTC day starts as timestamps (``contracts._utc_day``); the reference is the
form they replaced, a Python date per row. Both run over times on either side of midnight, in
other zones, null times and null dates.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from slipway.usecases.fraud import contracts

UTC_US = pd.DatetimeTZDtype("us", "UTC")


def _per_row_event_day(df: pd.DataFrame) -> pd.Series:
    return df["event_time"].dt.tz_convert("UTC").dt.date == pd.to_datetime(df["date"]).dt.date


def _per_row_received_day(df: pd.DataFrame) -> pd.Series:
    day = df["received_at"].dt.tz_convert("UTC").dt.date
    return df["received_at"].isna() | (day == pd.to_datetime(df["date"]).dt.date)


def _frame() -> pd.DataFrame:
    day = dt.date(2026, 8, 1)
    stamps = [
        "2026-08-01T00:00:00Z",
        "2026-07-31T23:59:59.999999Z",
        "2026-08-01T23:59:59.999999Z",
        "2026-08-02T00:00:00Z",
        "2026-08-01T01:30:00+02:00",  # 2026-07-31 23:30 UTC
        "2026-08-01T22:30:00-02:00",  # 2026-08-02 00:30 UTC
        None,
        "2026-08-01T12:00:00Z",
    ]
    times = pd.to_datetime(pd.Series(stamps), utc=True, format="ISO8601").astype(UTC_US)
    dates = [day] * (len(stamps) - 1) + [None]
    return pd.DataFrame({"date": dates, "event_time": times, "received_at": times})


@pytest.mark.parametrize(
    ("rule", "reference"),
    [
        (contracts._event_in_partition_day, _per_row_event_day),
        (contracts._received_in_partition_day, _per_row_received_day),
    ],
)
def test_day_rules_answer_as_the_per_row_dates_did(rule, reference) -> None:
    frame = _frame()
    ours, theirs = rule(frame), reference(frame)
    assert ours.tolist() == theirs.tolist()
    assert ours.tolist()[:6] == [True, False, True, False, False, False]

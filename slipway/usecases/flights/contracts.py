"""Pandera contracts for the flights use case's silver tables.

Rules are named so that a quarantined row says which promise it broke. The outcome columns are
nullable (a cancelled flight has none) but must be coherent: no arrival without a departure, and
a delay that matches the times it is computed from within a day's wrap. Weather readings carry
physical bounds; the 2013 data holds one wind speed of 1,048 mph, which lands in quarantine.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.pandas import Check, Column

from slipway.usecases.flights.landing import ORIGINS, TIMEZONE

UTC_TS = pd.DatetimeTZDtype("us", "UTC")
MAX_DELAY_MINUTES = 24 * 60 * 2  # two days: beyond that the record is wrong, not the flight late


def _local_day_is_partition(column: str):
    def check(df: pd.DataFrame) -> pd.Series:
        local = df[column].dt.tz_convert(TIMEZONE).dt.date
        return df[column].isna() | (local == pd.to_datetime(df["date"]).dt.date)

    return check


def _hhmm() -> Check:
    # 2400 is midnight at the end of the day, as the source writes it
    return Check(
        lambda s: s.isna() | ((s // 100).between(0, 24) & (s % 100).between(0, 59)),
        name="hhmm_time",
    )


def _arrival_needs_departure(df: pd.DataFrame) -> pd.Series:
    return df["dep_time"].notna() | (df["arr_time"].isna() & df["arr_delay"].isna())


def _departure_delay_known(df: pd.DataFrame) -> pd.Series:
    return df["dep_time"].isna() == df["dep_delay"].isna()


def flights_contract() -> pa.DataFrameSchema:
    """Silver flights: one row per scheduled flight of the partition's local day."""
    delay = [Check.in_range(-MAX_DELAY_MINUTES, MAX_DELAY_MINUTES)]
    return pa.DataFrameSchema(
        {
            "flight_id": Column(
                str, Check.str_matches(r"^\d{8}-[A-Z0-9]{2}\d+-[A-Z]{3}$"), unique=True
            ),
            "scheduled_departure": Column(UTC_TS, nullable=False),
            "carrier": Column(str, Check.str_matches(r"^[A-Z0-9]{2}$"), nullable=False),
            "flight": Column("Int64", Check.in_range(1, 9999), nullable=False),
            "tailnum": Column(str, Check.str_matches(r"^[A-Z0-9]{2,6}$"), nullable=True),
            "origin": Column(str, Check.isin(list(ORIGINS)), nullable=False),
            "dest": Column(str, Check.str_matches(r"^[A-Z]{3}$"), nullable=False),
            "distance": Column(float, Check.in_range(10, 6000), nullable=False),
            "sched_arr_time": Column("Int64", _hhmm(), nullable=False),
            "dep_time": Column("Int64", _hhmm(), nullable=True),
            "dep_delay": Column(float, delay, nullable=True),
            "arr_time": Column("Int64", _hhmm(), nullable=True),
            "arr_delay": Column(float, delay, nullable=True),
            "air_time": Column(float, Check.in_range(1, 1000), nullable=True),
        },
        checks=[
            Check(
                _local_day_is_partition("scheduled_departure"),
                name="scheduled_departure_in_partition_local_day",
            ),
            Check(_arrival_needs_departure, name="no_arrival_without_departure"),
            Check(_departure_delay_known, name="departure_delay_iff_departed"),
            Check(lambda df: df["origin"] != df["dest"], name="origin_is_not_destination"),
        ],
        strict=False,
        coerce=False,
        name="silver.flights",
    )


def weather_contract() -> pa.DataFrameSchema:
    """Silver weather: one observation per origin and hour, within physical bounds."""
    return pa.DataFrameSchema(
        {
            "observation_id": Column(str, Check.str_length(1, 64), nullable=False, unique=True),
            "origin": Column(str, Check.isin(list(ORIGINS)), nullable=False),
            "observed_at": Column(UTC_TS, nullable=False),
            "temp": Column(float, Check.in_range(-40, 120), nullable=True),
            "dewp": Column(float, Check.in_range(-60, 100), nullable=True),
            "humid": Column(float, Check.in_range(0, 100), nullable=True),
            "wind_dir": Column(float, Check.in_range(0, 360), nullable=True),
            "wind_speed": Column(float, Check.in_range(0, 150), nullable=True),
            "wind_gust": Column(float, Check.in_range(0, 200), nullable=True),
            "precip": Column(float, Check.in_range(0, 10), nullable=True),
            "pressure": Column(float, Check.in_range(900, 1100), nullable=True),
            "visib": Column(float, Check.in_range(0, 100), nullable=True),
        },
        checks=[
            Check(
                _local_day_is_partition("observed_at"), name="observed_at_in_partition_local_day"
            ),
            Check(
                lambda df: df["dewp"].isna() | df["temp"].isna() | (df["dewp"] <= df["temp"] + 1),
                name="dew_point_not_above_temperature",
            ),
        ],
        unique=["origin", "observed_at"],
        strict=False,
        coerce=False,
        name="silver.weather",
    )


def planes_contract() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "tailnum": Column(str, Check.str_matches(r"^[A-Z0-9]{2,6}$"), unique=True),
            "year": Column("Int64", Check.in_range(1940, 2014), nullable=True),
            "type": Column(str, Check.str_length(1, 64), nullable=False),
            "manufacturer": Column(str, Check.str_length(1, 64), nullable=False),
            "model": Column(str, Check.str_length(1, 64), nullable=False),
            "engines": Column("Int64", Check.in_range(1, 8), nullable=False),
            "seats": Column("Int64", Check.in_range(1, 1000), nullable=False),
            "engine": Column(str, Check.str_length(1, 64), nullable=False),
        },
        strict=False,
        name="silver.planes",
    )


def airports_contract() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "faa": Column(str, Check.str_matches(r"^[A-Z0-9]{3,4}$"), unique=True),
            "name": Column(str, Check.str_length(1, 200), nullable=False),
            "lat": Column(float, Check.in_range(-90, 90), nullable=False),
            "lon": Column(float, Check.in_range(-180, 180), nullable=False),
            "alt": Column(float, Check.in_range(-1500, 15000), nullable=False),
            "tzone": Column(str, nullable=True),
        },
        strict=False,
        name="silver.airports",
    )


def airlines_contract() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "carrier": Column(str, Check.str_matches(r"^[A-Z0-9]{2}$"), unique=True),
            "name": Column(str, Check.str_length(1, 200), nullable=False),
        },
        strict=False,
        name="silver.airlines",
    )

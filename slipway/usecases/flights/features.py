"""Flights feature tables as pure Spark functions (DataFrame in, DataFrame out).

When each row becomes known is the whole point, so each table says it:

* ``trailing_delays`` (per route, carrier or origin airport and local day ``D``, stamped at
  ``D 00:00`` New York time): volumes and delay rates over the days ``[D - maturity - N,
  D - maturity - 1]``. A flight's outcome lands with the next morning's file, and the label
  matures ``maturity_days`` after the scheduled departure, so at the start of ``D`` exactly
  those days are known; the day before ``D`` (whose last flights are still in the air at
  midnight) never is.
* ``origin_weather``: the hourly observation at each origin, stamped at the hour observed. The
  point-in-time join gives a flight the latest observation at or before its scheduled departure.
* ``plane_profile``: the plane registry as of its snapshot, stamped at the snapshot's day.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from slipway.usecases.flights.landing import TIMEZONE

EXAMPLES = "gold.flight_examples"
WEATHER = "silver.weather"
PLANES = "silver.planes"
WEATHER_COLUMNS = (
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
)


def _day(value: dt.date) -> Column:
    return F.lit(value.isoformat()).cast("date")


def _local_midnight(day: Column) -> Column:
    """``day`` 00:00 in New York, as a UTC instant (the session zone is UTC)."""
    return F.to_utc_timestamp(F.to_timestamp(day), TIMEZONE)


def trailing_delays(
    inputs: dict[str, DataFrame],
    start: dt.date,
    end: dt.date,
    *,
    group: str,
    prefix: str,
    days: int,
    short_days: int,
    maturity_days: int,
    late_minutes: float,
) -> DataFrame:
    """Per ``group`` value and day in ``[start, end]``: how its matured flights went.

    ``inputs[EXAMPLES]`` must cover ``[start - days - maturity_days, end]``. Columns (with
    ``prefix``): ``_flights_<days>d`` (scheduled), ``_cancel_rate_<days>d`` (no arrival),
    ``_delay_rate_<days>d`` and ``_delay_rate_<short_days>d`` (share of arrived flights more than
    ``late_minutes`` late), ``_mean_arr_delay_<days>d``. A value with no matured flight in the
    window has no row (missing, not zero).
    """
    flights = inputs[EXAMPLES]
    spark = flights.sparkSession
    daily = flights.groupBy(group, "date").agg(
        F.count(F.lit(1)).alias("n"),
        F.count("arr_delay").alias("n_arrived"),
        F.sum(F.when(F.col("arr_delay") > late_minutes, 1).otherwise(0)).alias("n_late"),
        F.sum("arr_delay").alias("sum_delay"),
    )
    n_days = (end - start).days + 1
    spine = spark.range(n_days).select(
        F.date_add(_day(start), F.col("id").cast("int")).alias("day")
    )
    # matured: scheduled at least maturity_days before the day starts, i.e. date < day - maturity
    newest = F.date_sub(F.col("day"), maturity_days + 1)
    joined = spine.join(
        daily,
        (daily["date"] <= F.date_sub(spine["day"], maturity_days + 1))
        & (daily["date"] > F.date_sub(spine["day"], maturity_days + 1 + days)),
    )
    short = F.col("date") > F.date_sub(newest, short_days)
    agg = joined.groupBy(group, "day").agg(
        F.sum("n").alias("n"),
        F.sum("n_arrived").alias("n_arrived"),
        F.sum("n_late").alias("n_late"),
        F.sum("sum_delay").alias("sum_delay"),
        F.sum(F.when(short, F.col("n_arrived")).otherwise(0)).alias("n_arrived_short"),
        F.sum(F.when(short, F.col("n_late")).otherwise(0)).alias("n_late_short"),
    )

    def rate(num: str, den: str) -> Column:
        return F.when(F.col(den) > 0, F.round(F.col(num) / F.col(den), 6)).cast("double")

    return agg.select(
        F.col("day").alias("date"),
        F.col(group),
        _local_midnight(F.col("day")).alias("feature_ts"),
        F.col("n").cast("bigint").alias(f"{prefix}_flights_{days}d"),
        F.round(1 - F.col("n_arrived") / F.col("n"), 6)
        .cast("double")
        .alias(f"{prefix}_cancel_rate_{days}d"),
        rate("n_late", "n_arrived").alias(f"{prefix}_delay_rate_{days}d"),
        rate("n_late_short", "n_arrived_short").alias(f"{prefix}_delay_rate_{short_days}d"),
        rate("sum_delay", "n_arrived").alias(f"{prefix}_mean_arr_delay_{days}d"),
    )


def origin_weather(inputs: dict[str, DataFrame], start: dt.date, end: dt.date) -> DataFrame:
    """The hourly observations of ``[start, end]`` at each origin, stamped at their hour."""
    weather = inputs[WEATHER].where((F.col("date") >= _day(start)) & (F.col("date") <= _day(end)))
    return weather.select(
        "date",
        "origin",
        "observed_at",
        *[F.col(c).cast("double").alias(f"wx_{c}") for c in WEATHER_COLUMNS],
    )


def plane_profile(
    inputs: dict[str, DataFrame], start: dt.date | None = None, end: dt.date | None = None
) -> DataFrame:
    """Each plane's registry entry, valid from the snapshot it came with."""
    planes = inputs[PLANES]
    return planes.select(
        F.col("tailnum"),
        F.to_timestamp(F.col("snapshot_date")).alias("feature_ts"),
        F.col("year").cast("bigint").alias("plane_year"),
        F.col("seats").cast("bigint").alias("plane_seats"),
        F.col("engines").cast("bigint").alias("plane_engines"),
    )

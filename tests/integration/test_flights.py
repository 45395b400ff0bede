"""The flights use case on two weeks of real 2013 data, through the platform's own steps.

Landing adapter -> bronze/silver (contracts, quarantine) -> dbt (the use case's selection) ->
Spark feature tables -> Feast's point-in-time join. What must hold: nothing landed is lost, the
real data's one impossible reading is quarantined by name, and no feature a flight is given was
unknown at its scheduled departure.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from slipway.usecases.flights import FLIGHTS, LATE_MINUTES, MATURITY_DAYS, TRAILING_DAYS
from slipway.usecases.flights.landing import TIMEZONE
from tests.support.flights import FlightsSlice, build_slice, feature_store

START, DAYS = dt.date(2013, 2, 1), 14  # the blizzard of 8-9 February and the 12th's bad reading
CARRIERS = ("UA", "B6", "EV")


@pytest.fixture(scope="module")
def flights_slice(spark, tmp_path_factory: pytest.TempPathFactory) -> FlightsSlice:
    root = tmp_path_factory.mktemp("flights")
    return build_slice(spark, root, START, DAYS, carriers=CARRIERS)


def test_every_landed_row_is_in_silver_or_quarantine(flights_slice: FlightsSlice) -> None:
    for stream, totals in flights_slice.silver.items():
        assert totals["rows_landed"] > 0, stream
        assert totals["rows_landed"] == (
            totals["rows_silver"] + totals["rows_quarantined"] + totals["duplicates_dropped"]
        ), stream
    quarantined = flights_slice.lakehouse.read("quarantine.weather").to_pandas()
    lines = quarantined[quarantined["source_line"] > 0]
    # the one impossible observation of the slice: 1,048 mph at EWR on 12 February 2013
    assert lines[["record_key", "column"]].values.tolist() == [
        ["EWR-2013-02-12T08:00:00Z", "wind_speed"]
    ]
    assert flights_slice.silver["flights"]["rows_quarantined"] == 0


def test_examples_carry_the_local_schedule_and_the_outcome(flights_slice: FlightsSlice) -> None:
    examples = flights_slice.lakehouse.read("gold.flight_examples").to_pandas()
    silver = flights_slice.lakehouse.read("silver.flights").to_pandas()
    assert sorted(examples["flight_id"]) == sorted(silver["flight_id"])
    local = pd.to_datetime(examples["scheduled_departure"], utc=True).dt.tz_convert(TIMEZONE)
    assert (local.dt.hour == examples["sched_dep_hour"]).all()
    assert (local.dt.date == examples["date"]).all()
    assert (local.dt.dayofweek + 1 == examples["day_of_week"]).all()
    assert (examples["route"] == examples["origin"] + "-" + examples["dest"]).all()
    rule = FLIGHTS.label.rule
    assert rule is not None and rule.exclude is not None
    excluded = rule.exclude(examples)
    # the blizzard: most of 8-9 February's flights never flew
    by_day = excluded.groupby(examples["date"]).mean()
    assert by_day[dt.date(2013, 2, 9)] > 0.5 > by_day[dt.date(2013, 2, 4)]


def _expected_trailing(examples: pd.DataFrame, group: str, day: dt.date) -> pd.DataFrame:
    newest = day - dt.timedelta(days=MATURITY_DAYS + 1)
    window = examples[
        (examples["date"] <= newest)
        & (examples["date"] > newest - dt.timedelta(days=TRAILING_DAYS))
    ]
    arrived = window[window["arr_delay"].notna()]
    return pd.DataFrame(
        {
            "flights": window.groupby(group).size(),
            "delay_rate": (arrived["arr_delay"] > LATE_MINUTES).groupby(arrived[group]).mean(),
        }
    )


@pytest.mark.parametrize("group", ["route", "carrier", "origin"])
def test_trailing_delays_count_only_matured_days(flights_slice: FlightsSlice, group: str) -> None:
    examples = flights_slice.lakehouse.read("gold.flight_examples").to_pandas()
    table = flights_slice.lakehouse.read(f"features.{group}_delays").to_pandas()
    assert not table.empty
    for day, rows in table.groupby("date"):
        expected = _expected_trailing(examples, group, day)
        got = rows.set_index(group)
        assert sorted(got.index) == sorted(expected.index), day
        flights = got[f"{group}_flights_{TRAILING_DAYS}d"].astype(int)
        assert (flights == expected.loc[got.index, "flights"]).all(), day
        np.testing.assert_allclose(
            got[f"{group}_delay_rate_{TRAILING_DAYS}d"].astype(float),
            expected.loc[got.index, "delay_rate"].astype(float),
            atol=1e-6,
        )
    # stamped at local midnight: the day before is never in, the first days have nothing yet
    assert table["date"].min() == START + dt.timedelta(days=MATURITY_DAYS + 1)


def test_trailing_delays_do_not_change_when_the_future_does(
    spark, flights_slice: FlightsSlice
) -> None:
    """Rewrite every outcome from the day before ``day`` on: ``day``'s rows stay the same."""
    from pyspark.sql import functions as F

    from slipway.usecases.flights.features import EXAMPLES

    day = START + dt.timedelta(days=7)
    gold = spark.read.format("delta").load(flights_slice.lakehouse.uri(EXAMPLES))
    cut = F.col("date") >= F.lit((day - dt.timedelta(days=1)).isoformat()).cast("date")
    future = gold.withColumn("arr_delay", F.when(cut, F.lit(600.0)).otherwise(F.col("arr_delay")))
    table = FLIGHTS.feature_table("route_delays")
    as_is = table.build({EXAMPLES: gold}, day, day).toPandas()
    changed = table.build({EXAMPLES: future}, day, day).toPandas()
    assert len(as_is) > 20
    pd.testing.assert_frame_equal(
        as_is.sort_values("route", ignore_index=True),
        changed.sort_values("route", ignore_index=True),
    )
    # ...and shows two days later, once the rewritten days have matured
    later = day + dt.timedelta(days=2)
    before = table.build({EXAMPLES: gold}, later, later).toPandas()["route_delay_rate_7d"]
    after = table.build({EXAMPLES: future}, later, later).toPandas()["route_delay_rate_7d"]
    assert after.mean() > before.mean() + 0.1


def test_point_in_time_join_gives_what_was_known_at_departure(
    flights_slice: FlightsSlice,
) -> None:
    store = feature_store(flights_slice.root, flights_slice.lakehouse)
    examples = flights_slice.lakehouse.read("gold.flight_examples").to_pandas()
    examples = examples.sample(n=600, random_state=3).reset_index(drop=True)
    entities = examples[["flight_id", "route", "carrier", "origin", "tailnum"]].assign(
        event_timestamp=pd.to_datetime(examples["scheduled_departure"], utc=True)
    )
    assert FLIGHTS.model is not None
    joined = store.get_historical_features(
        entity_df=entities,
        features=store.get_feature_service(FLIGHTS.model.feature_service),
        full_feature_names=False,
    ).to_df()
    assert sorted(joined["flight_id"]) == sorted(entities["flight_id"])
    joined = joined.set_index("flight_id").loc[entities["flight_id"]].reset_index()

    weather = flights_slice.lakehouse.read("features.origin_weather").to_pandas()
    weather["observed_at"] = pd.to_datetime(weather["observed_at"], utc=True)
    expected = pd.merge_asof(
        entities.sort_values("event_timestamp"),
        weather.sort_values("observed_at")[["origin", "observed_at", "wx_temp"]],
        left_on="event_timestamp",
        right_on="observed_at",
        by="origin",
        direction="backward",
        tolerance=pd.Timedelta(hours=3),
    ).set_index("flight_id")
    got = joined.set_index("flight_id")["wx_temp"]
    np.testing.assert_allclose(
        got.astype(float).to_numpy(),
        expected.loc[got.index, "wx_temp"].astype(float).to_numpy(),
        equal_nan=True,
    )
    assert (expected["observed_at"].dropna() <= expected["event_timestamp"].max()).all()

    daily = flights_slice.lakehouse.read("features.carrier_delays").to_pandas()
    local_day = entities["event_timestamp"].dt.tz_convert(TIMEZONE).dt.date
    lookup = daily.set_index(["carrier", "date"])["carrier_delay_rate_28d"]
    want = [lookup.get((c, d), np.nan) for c, d in zip(entities["carrier"], local_day, strict=True)]
    np.testing.assert_allclose(
        joined["carrier_delay_rate_28d"].astype(float).to_numpy(), np.array(want, dtype=float)
    )

"""The flights declaration on its own: registry, landing adapter, silver contracts, label rule."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from pandera.errors import SchemaErrors

from slipway.ingest.landing import list_days, list_files, read_manifest
from slipway.usecases import deployed_usecases, get_usecase
from slipway.usecases.flights import FLIGHTS, LATE_MINUTES, contracts
from slipway.usecases.flights.sample import write_sample

UTC = pd.DatetimeTZDtype("us", "UTC")


def test_registered_by_entry_point_beside_fraud() -> None:
    assert get_usecase("flights") is FLIGHTS
    assert {"fraud", "flights"} <= {u.name for u in deployed_usecases()}
    assert FLIGHTS.label.kind == "rule"
    assert FLIGHTS.primary.name == "flights"
    # the label's columns are outcomes: never a model input
    assert FLIGHTS.model is not None
    assert not set(FLIGHTS.label.rule.columns) & set(FLIGHTS.model.features)  # type: ignore[union-attr]
    assert FLIGHTS.examples is not None
    assert not set(FLIGHTS.examples.entity_columns) & set(FLIGHTS.examples.request_columns)
    # every drift rule names a monitored feature (or the score); features constant within a day
    # (daily rates, hourly weather) are judged over multi-day windows
    rules = FLIGHTS.monitoring.feature_drift
    assert set(rules) <= {*FLIGHTS.monitoring.monitored_features, "score"}
    for name in ("route_delay_rate_28d", "carrier_delay_rate_7d", "wx_temp", "wx_visib"):
        assert rules[name].window_days > 1, name


def test_label_rule_late_positive_and_cancelled_excluded() -> None:
    rule = FLIGHTS.label.rule
    assert rule is not None and rule.exclude is not None
    frame = pd.DataFrame(
        {
            "dep_time": [517.0, 533.0, None, 600.0],
            "arr_delay": [LATE_MINUTES + 1, LATE_MINUTES, None, None],  # last: diverted
        }
    )
    assert rule.positive(frame).tolist() == [True, False, False, False]
    assert rule.exclude(frame).tolist() == [False, False, True, True]


def test_adapter_lands_days_the_ingestion_reads(tmp_path: Path) -> None:
    days = write_sample(tmp_path, "2013-02-08", 2, origins=["LGA"], parts=2)
    assert days == [dt.date(2013, 2, 8), dt.date(2013, 2, 9)]
    for day in days:
        for stream in FLIGHTS.streams:
            files = list_files(tmp_path, stream.name, day, stream.file_pattern)
            manifest = read_manifest(tmp_path, stream.name, day)
            assert manifest is not None and {f.name for f in files} == set(manifest.files)
            for f in files:
                lines = [json.loads(x) for x in f.path.read_text().splitlines()]
                assert len(lines) == manifest.files[f.name].rows
                assert all(set(line) == set(stream.field_names) for line in lines)
    flights = [
        json.loads(line)
        for f in list_files(tmp_path, "flights", dt.date(2013, 2, 8))
        for line in f.path.read_text().splitlines()
    ]
    assert {r["origin"] for r in flights} == {"LGA"} and len(flights) > 100
    # local time without an offset: the stream's field declares the zone
    assert all("+" not in r["scheduled_departure"] for r in flights)
    field = FLIGHTS.primary.fields[FLIGHTS.primary.field_names.index("scheduled_departure")]
    assert field.timezone == "America/New_York"
    # the blizzard of 8-9 February 2013: cancelled flights land without outcomes
    assert any(r["dep_time"] is None and r["arr_delay"] is None for r in flights)
    for name in ("planes", "airports", "airlines"):
        assert (tmp_path / "reference" / name / f"{name}_2013-02-08.jsonl").is_file()
    # a re-run writes the same bytes (the manifest's time comes from the day, not the clock)
    manifest = (tmp_path / "flights" / "2013-02-08" / "_manifest.json").read_bytes()
    write_sample(tmp_path, "2013-02-08", 2, origins=["LGA"], parts=2)
    assert (tmp_path / "flights" / "2013-02-08" / "_manifest.json").read_bytes() == manifest
    assert list_days(tmp_path, "weather") == days


def test_adapter_refuses_days_outside_2013(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"2013-01-01\.\.2013-12-31"):
        write_sample(tmp_path, "2013-12-30", 3)


def _flights(**changes) -> pd.DataFrame:
    row = {
        "date": dt.date(2013, 1, 1),
        "flight_id": "20130101-UA1545-EWR",
        "scheduled_departure": pd.Timestamp("2013-01-01 10:15", tz="UTC"),  # 05:15 in New York
        "carrier": "UA",
        "flight": 1545,
        "tailnum": "N14228",
        "origin": "EWR",
        "dest": "IAH",
        "distance": 1400.0,
        "sched_arr_time": 819,
        "dep_time": 517,
        "dep_delay": 2.0,
        "arr_time": 830,
        "arr_delay": 11.0,
        "air_time": 227.0,
    }
    frame = pd.DataFrame([{**row, **changes}])
    for c in ("flight", "sched_arr_time", "dep_time", "arr_time"):
        frame[c] = frame[c].astype("Int64")
    for c in ("distance", "dep_delay", "arr_delay", "air_time"):
        frame[c] = frame[c].astype(float)
    frame["scheduled_departure"] = frame["scheduled_departure"].astype(UTC)
    return frame


def _broken_rules(schema, frame: pd.DataFrame) -> set[str]:
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as err:
        return set(err.failure_cases["check"].astype(str))
    return set()


def test_flights_contract_accepts_clean_and_cancelled_flights() -> None:
    schema = contracts.flights_contract()
    assert _broken_rules(schema, _flights()) == set()
    cancelled = _flights(
        dep_time=None, dep_delay=None, arr_time=None, arr_delay=None, air_time=None
    )
    assert _broken_rules(schema, cancelled) == set()


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        # 23:30 in New York on 31 December is 04:30 UTC on 1 January: not this local day
        (
            {"scheduled_departure": pd.Timestamp("2013-01-01 04:30", tz="UTC")},
            "scheduled_departure_in_partition_local_day",
        ),
        ({"dep_time": None, "dep_delay": None}, "no_arrival_without_departure"),
        ({"dep_delay": None}, "departure_delay_iff_departed"),
        ({"dest": "EWR"}, "origin_is_not_destination"),
        ({"origin": "BOS"}, "isin(['EWR', 'JFK', 'LGA'])"),
        ({"arr_time": 1275}, "hhmm_time"),
    ],
)
def test_flights_contract_names_the_broken_rule(changes: dict, rule: str) -> None:
    assert rule in _broken_rules(contracts.flights_contract(), _flights(**changes))


def test_weather_contract_rejects_an_impossible_wind_speed() -> None:
    frame = pd.DataFrame(
        {
            "date": [dt.date(2013, 2, 12)] * 2,
            "observation_id": ["EWR-2013-02-12T08:00:00Z", "EWR-2013-02-12T09:00:00Z"],
            "origin": ["EWR", "EWR"],
            "observed_at": pd.to_datetime(["2013-02-12 08:00", "2013-02-12 09:00"], utc=True),
            "temp": [39.0, 39.9],
            "dewp": [28.0, 28.9],
            "humid": [64.0, 64.1],
            "wind_dir": [260.0, 270.0],
            "wind_speed": [1048.36, 12.7],  # the 2013 data's one reading of 1,048 mph
            "wind_gust": [None, None],
            "precip": [0.0, 0.0],
            "pressure": [1008.3, 1008.0],
            "visib": [10.0, 10.0],
        }
    )
    frame["observed_at"] = frame["observed_at"].astype(UTC)
    frame["wind_gust"] = frame["wind_gust"].astype(float)
    try:
        contracts.weather_contract().validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
        assert cases["column"].tolist() == ["wind_speed"] and cases["index"].tolist() == [0]
    else:
        pytest.fail("a wind speed of 1,048 mph passed the contract")

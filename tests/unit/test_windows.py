"""Window features declared once: the reference, the embedded and Redis aggregators and the Spark
backfill all give, for every event, what the definition says, late and redelivered events too.

The oracle here is written from the definition alone (the docstring of ``slipway.windows``), not
from the reference code: for event e, the entity's events x with ``(arrival_x, id_x) <
(arrival_e, id_e)`` and ``t_e - W <= t_x < t_e``. The feature set is deliberately not the fraud
one (meters and their readings), so nothing fraud-specific leaks into the generic machinery.
"""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from slipway.usecase import WindowAggregation, WindowFeatureSet
from slipway.windows import InvalidWindowEvent, open_aggregator
from slipway.windows.aggregator import WindowStoreUnavailable
from slipway.windows.semantics import EventCodec, empty_features, features_for

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 1, tzinfo=UTC)
MIN = dt.timedelta(minutes=1)

METERS = WindowFeatureSet(
    name="meter_load",
    entity="meter",
    event_id="reading_id",
    event_time="read_at",
    arrival="logged_at",
    source="silver.readings",
    aggregations=(
        WindowAggregation("readings_10m", "count", window=10 * MIN),
        WindowAggregation("readings_2h", "count", window=120 * MIN),
        WindowAggregation("kwh_10m", "sum", "kwh", 10 * MIN, decimals=3),
        WindowAggregation("kwh_2h", "sum", "kwh", 120 * MIN, decimals=3),
        WindowAggregation("kwh_mean_2h", "mean", "kwh", 120 * MIN, decimals=3),
        WindowAggregation("kwh_peak_2h", "max", "kwh", 120 * MIN, decimals=3),
        WindowAggregation("sites_30m", "distinct_count", "site", 30 * MIN),
        WindowAggregation("phases_2h", "recent_set", "phase", 120 * MIN),
        WindowAggregation("last_read_epoch", "last", "read_at"),
        WindowAggregation("last_phase", "last", "phase", 60 * MIN),
    ),
    allowed_lateness=dt.timedelta(hours=6),  # the whole simulated span: nothing pruned
)


# -- a small world: bursts, ties, nulls, late arrivals -------------------------------------------
def readings(n: int = 400, meters: int = 5, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        read_at = T0 + dt.timedelta(seconds=rng.randrange(0, 6 * 3600))
        if i % 17 == 0 and out:  # the same instant as an earlier reading (ties are excluded)
            read_at = out[-1]["read_at"]
        delay = dt.timedelta(milliseconds=rng.randrange(1, 900))
        if rng.random() < 0.08:  # late: minutes to hours after the reading
            delay = dt.timedelta(seconds=rng.randrange(60, 2 * 3600))
        out.append(
            {
                "reading_id": f"r{i:04d}",
                "meter": f"m{rng.randrange(meters)}",
                "read_at": read_at,
                "logged_at": read_at + delay,
                "kwh": None if rng.random() < 0.05 else round(rng.uniform(0, 40), 3),
                "site": rng.choice(["north", "south", "east"]),
                "phase": None if rng.random() < 0.05 else rng.choice(["L1", "L2", "L3"]),
            }
        )
    # Two readings logged in the same microsecond: the id breaks the tie.
    out[5]["logged_at"] = out[6]["logged_at"]
    out[5]["meter"] = out[6]["meter"]
    return sorted(out, key=lambda r: (r["logged_at"], r["reading_id"]))


def oracle(events: list[dict[str, Any]], e: dict[str, Any]) -> dict[str, Any]:
    """The definition, spelled out per aggregation."""
    before = [
        x
        for x in events
        if x["meter"] == e["meter"]
        and (x["logged_at"], x["reading_id"]) < (e["logged_at"], e["reading_id"])
        and x["read_at"] < e["read_at"]
    ]

    def within(minutes: int | None) -> list[dict[str, Any]]:
        width = dt.timedelta(minutes=minutes) if minutes else dt.timedelta(minutes=120)
        return [x for x in before if x["read_at"] >= e["read_at"] - width]

    def kwh(xs):
        return [round(x["kwh"] * 1000) for x in xs if x["kwh"] is not None]

    k2 = kwh(within(120))
    phased = [x for x in within(60) if x["phase"] is not None]
    latest = max(
        before, key=lambda x: (x["read_at"], x["logged_at"], x["reading_id"]), default=None
    )
    last_phase = max(
        phased, key=lambda x: (x["read_at"], x["logged_at"], x["reading_id"]), default=None
    )
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    return {
        "readings_10m": len(within(10)),
        "readings_2h": len(within(120)),
        "kwh_10m": sum(kwh(within(10))) / 1000,
        "kwh_2h": sum(k2) / 1000,
        "kwh_mean_2h": (sum(k2) / len(k2)) / 1000 if k2 else None,
        "kwh_peak_2h": max(k2) / 1000 if k2 else None,
        "sites_30m": len({x["site"] for x in within(30)}),
        "phases_2h": sorted({x["phase"] for x in within(120) if x["phase"] is not None}),
        "last_read_epoch": ((latest["read_at"] - epoch) // dt.timedelta(microseconds=1)) / 1e6
        if latest
        else None,
        "last_phase": last_phase["phase"] if last_phase else None,
    }


def assert_same(got: dict[str, Any], want: dict[str, Any], where: str) -> None:
    assert set(got) == set(want), where
    for name, value in want.items():
        other = got[name]
        if isinstance(value, float) and isinstance(other, float):
            assert math.isclose(other, value, rel_tol=1e-12, abs_tol=0.0), (
                where,
                name,
                other,
                value,
            )
        else:
            assert other == value, (where, name, other, value)


EVENTS = readings()
EXPECTED = {e["reading_id"]: oracle(EVENTS, e) for e in EVENTS}


def test_the_world_has_what_the_semantics_are_about() -> None:
    late = [e for e in EVENTS if e["logged_at"] - e["read_at"] > dt.timedelta(minutes=1)]
    assert len(late) > 15
    # Late readings change answers: some event has a same-meter earlier reading not yet logged.
    assert any(
        x["meter"] == e["meter"] and x["read_at"] < e["read_at"] and x["logged_at"] > e["logged_at"]
        for e in EVENTS
        for x in late
    )
    assert any(v["readings_2h"] == 0 for v in EXPECTED.values())  # empty windows too


def test_reference_equals_the_definition_for_every_event() -> None:
    codec = EventCodec(METERS)
    encoded = [codec.encode(e) for e in EVENTS]
    for e, ev in zip(EVENTS, encoded, strict=True):
        assert_same(features_for(METERS, encoded, ev), EXPECTED[e["reading_id"]], e["reading_id"])


def test_empty_history_defaults() -> None:
    assert empty_features(METERS) == {
        "readings_10m": 0,
        "readings_2h": 0,
        "kwh_10m": 0.0,
        "kwh_2h": 0.0,
        "kwh_mean_2h": None,
        "kwh_peak_2h": None,
        "sites_30m": 0,
        "phases_2h": [],
        "last_read_epoch": None,
        "last_phase": None,
    }


def test_declaration_errors_are_named() -> None:
    with pytest.raises(ValueError, match="count"):
        WindowAggregation("n", "count", "kwh", MIN)
    with pytest.raises(ValueError, match="unique"):
        WindowFeatureSet(
            "s", "k", "id", "t", "a", (WindowAggregation("n", "count", window=MIN),) * 2, "src"
        )
    with pytest.raises(ValueError, match="same decimals"):
        WindowFeatureSet(
            "s",
            "k",
            "id",
            "t",
            "a",
            (
                WindowAggregation("x", "sum", "kwh", MIN, decimals=3),
                WindowAggregation("y", "max", "kwh", MIN, decimals=2),
            ),
            "src",
        )


# -- the two online implementations ------------------------------------------------------------
@pytest.fixture(params=["embedded", "redis"])
def aggregator_factory(request, tmp_path: Path) -> Iterator[Any]:
    """Opens aggregators on one shared state (a SQLite file, or a unique Redis namespace)."""
    opened = []
    if request.param == "redis":
        url = "redis://" + request.getfixturevalue("redis_url") + "/0"
        namespace = f"slipway:test:{uuid.uuid4().hex}"

        def make(fs: WindowFeatureSet = METERS):
            agg = open_aggregator(fs, url, namespace=namespace)
            opened.append(agg)
            return agg
    else:
        path = tmp_path / "state.sqlite"

        def make(fs: WindowFeatureSet = METERS):
            agg = open_aggregator(fs, None, path=path)
            opened.append(agg)
            return agg

    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for agg in opened:
        if request.param == "redis":
            agg.delete_state()
        agg.close()


def test_every_event_in_arrival_order_gets_the_definition(aggregator_factory) -> None:
    agg = aggregator_factory()
    results = [agg.apply(e) for e in EVENTS[:150]] + agg.apply_many(EVENTS[150:])
    for e, r in zip(EVENTS, results, strict=True):
        assert r.event_id == e["reading_id"] and not r.duplicate and r.complete
        assert_same(r.features, EXPECTED[r.event_id], r.event_id)


def test_redelivery_returns_the_same_features_and_changes_nothing(aggregator_factory) -> None:
    agg = aggregator_factory()
    first = {r.event_id: r for r in agg.apply_many(EVENTS[:200])}
    again = [*agg.apply_many(EVENTS[50:120]), agg.apply(EVENTS[10])]
    assert all(r.duplicate for r in again)
    for r in again:
        assert r.features == first[r.event_id].features
    # The state did not change: the rest of the day still gets exactly the definition.
    for r in agg.apply_many(EVENTS[200:]):
        assert not r.duplicate
        assert_same(r.features, EXPECTED[r.event_id], r.event_id)
    assert agg.seed(EVENTS[:20]) == 0  # seeding what is held adds nothing


def test_answers_are_filtered_on_arrival_not_on_what_the_state_holds(aggregator_factory) -> None:
    """Seed order does not matter, and an event answered after later arrivals are already in
    the state (a redelivery, or two consumers finishing out of order) ignores them: seed every
    reading in reverse arrival order, then ask again for each, last first."""
    agg = aggregator_factory()
    assert agg.seed(reversed(EVENTS)) == len(EVENTS)
    results = [agg.apply(e) for e in reversed(EVENTS)]
    assert all(r.duplicate for r in results)
    for r in results:
        assert_same(r.features, EXPECTED[r.event_id], r.event_id)


def test_state_is_pruned_beyond_horizon_plus_lateness(aggregator_factory) -> None:
    agg = aggregator_factory()
    day = dt.timedelta(days=1)
    old = {**EVENTS[0], "reading_id": "old", "meter": "mx", "read_at": T0, "logged_at": T0}
    new_t = T0 + day
    new = {**old, "reading_id": "new", "read_at": new_t, "logged_at": new_t}
    agg.apply(old)
    agg.apply(new)
    # 'old' is older than horizon (2h) + lateness (6h) before the newest event: gone.
    too_late = {**old, "reading_id": "too_late", "read_at": T0 + dt.timedelta(hours=1)}
    too_late["logged_at"] = new_t + MIN
    r = agg.apply(too_late)
    assert not r.complete and r.features["readings_2h"] == 0
    # Within the allowed lateness nothing it needs was pruned.
    ok_t = new_t - dt.timedelta(hours=2)
    ok = {**old, "reading_id": "ok", "read_at": ok_t, "logged_at": new_t + 2 * MIN}
    assert agg.apply(ok).complete
    # The pruned event's redelivery does not come back into the state.
    assert not agg.apply(old).complete


def test_bad_events_are_rejected_with_the_reason(aggregator_factory) -> None:
    agg = aggregator_factory()
    with pytest.raises(InvalidWindowEvent, match="logged_at"):
        agg.apply({k: v for k, v in EVENTS[0].items() if k != "logged_at"})
    with pytest.raises(InvalidWindowEvent, match="read_at"):
        agg.apply({**EVENTS[0], "read_at": "not a time"})


def _apply_share(kind: str, target: str, namespace: str, events: list[dict]) -> list[tuple]:
    if kind == "redis":
        agg = open_aggregator(METERS, target, namespace=namespace)
    else:
        agg = open_aggregator(METERS, None, path=Path(target))
    out = [(r.event_id, r.duplicate) for r in (agg.apply(e) for e in events)]
    agg.close()
    return out


def test_two_processes_interleaving_one_meter_lose_no_update(
    aggregator_factory, tmp_path: Path
) -> None:
    """Two processes apply alternate readings of the same meter at once, each event redelivered
    to the other process too. Afterwards the state holds every reading exactly once: a reading
    that queries it sees them all."""
    kind = aggregator_factory.kind
    agg = aggregator_factory()
    base = T0 + dt.timedelta(days=3)
    burst = [
        {
            "reading_id": f"b{i:04d}",
            "meter": "hot",
            "read_at": base + dt.timedelta(milliseconds=i),
            "logged_at": base + dt.timedelta(milliseconds=i),
            "kwh": 0.001 * (i + 1),
            "site": "north",
            "phase": "L1",
        }
        for i in range(600)
    ]
    if kind == "redis":
        target, namespace = agg.client.connection_pool.connection_kwargs, agg.prefix
        url = "redis://{host}:{port}/{db}".format(**target)
        namespace = agg.prefix.rsplit(":", 2)[0]
        target = url
    else:
        target, namespace = str(agg.path), ""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        jobs = [
            pool.apply_async(_apply_share, (kind, target, namespace, burst[0::2] + burst[1::2])),
            pool.apply_async(_apply_share, (kind, target, namespace, burst[1::2] + burst[0::2])),
        ]
        outcomes = [j.get(timeout=120) for j in jobs]
    applied = [eid for out in outcomes for eid, dup in out if not dup]
    assert sorted(applied) == sorted(e["reading_id"] for e in burst)  # each exactly once
    probe = {**burst[-1], "reading_id": "probe", "read_at": base + dt.timedelta(seconds=5)}
    probe["logged_at"] = probe["read_at"]
    got = agg.apply(probe).features
    assert got["readings_10m"] == 600
    assert got["kwh_10m"] == sum(range(1, 601)) / 1000


def test_redis_outage_is_reported_as_unavailable(tmp_path: Path) -> None:
    agg = open_aggregator(METERS, "redis://127.0.0.1:1/0")
    with pytest.raises(WindowStoreUnavailable, match="Redis"):
        agg.apply(EVENTS[0])


def test_embedded_state_of_another_declaration_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    open_aggregator(METERS, None, path=path).close()
    changed = WindowFeatureSet(
        **{**METERS.__dict__, "aggregations": METERS.aggregations[:2]}  # no inputs any more
    )
    with pytest.raises(ValueError, match="another declaration"):
        open_aggregator(changed, None, path=path)


# -- the Spark backfill ------------------------------------------------------------------------
def _backfill(spark, events: list[dict[str, Any]], fs: WindowFeatureSet = METERS) -> pd.DataFrame:
    from slipway.windows.backfill import window_backfill

    frame = pd.DataFrame(events)
    frame["kwh"] = frame["kwh"].astype("float64")
    for col in ("read_at", "logged_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[us, UTC]")
    out = window_backfill(fs, spark.createDataFrame(frame)).toArrow().to_pylist()
    return {r["reading_id"]: r for r in out}


def test_backfill_equals_the_definition_for_every_event(spark) -> None:
    rows = _backfill(spark, EVENTS)
    assert set(rows) == set(EXPECTED)
    for eid, want in EXPECTED.items():
        got = {k: rows[eid][k] for k in want}
        assert_same(got, want, eid)
    assert rows[EVENTS[0]["reading_id"]]["date"] == EVENTS[0]["read_at"].date()


def test_backfill_fast_path_alone_would_be_wrong_for_late_events(spark) -> None:
    """The check that the exact path matters: ordering by event time only (the fast path)
    counts late readings before they arrived for some events."""
    wrong = 0
    for e in EVENTS:
        naive = sum(
            1
            for x in EVENTS
            if x["meter"] == e["meter"] and e["read_at"] - 120 * MIN <= x["read_at"] < e["read_at"]
        )
        wrong += naive != EXPECTED[e["reading_id"]]["readings_2h"]
    assert wrong > 5


def test_seeding_loads_the_days_a_live_day_can_reach_once(lakehouse, tmp_path: Path) -> None:
    import pyarrow as pa

    from slipway.windows.seeding import history_days, seed_until

    days = [T0 + dt.timedelta(days=d, hours=1) for d in range(4)]
    rows = [
        {**EVENTS[0], "reading_id": f"s{i}", "read_at": t, "logged_at": t, "date": t.date()}
        for i, t in enumerate(days)
    ]
    lakehouse.write("silver.readings", pa.Table.from_pylist(rows), partition_by=["date"])
    live_day = days[3].date()
    # 2h horizon + 6h lateness reach back one day: only the day before the live day.
    assert history_days(METERS, live_day) == (days[2].date(), days[2].date())
    agg = open_aggregator(METERS, None, path=tmp_path / "seed.sqlite")
    report = seed_until(agg, lakehouse, live_day, progress=lambda _: None)
    assert (report.rows, report.added) == (1, 1)
    assert seed_until(agg, lakehouse, live_day, progress=lambda _: None).added == 0
    probe = {**rows[3], "reading_id": "probe"}
    probe["read_at"] = probe["logged_at"] = days[2] + dt.timedelta(minutes=30)
    assert agg.apply(probe).features["readings_2h"] == 1
    agg.close()

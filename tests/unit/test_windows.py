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
    latest = max(  # window=None: the set's horizon (2 h)
        within(120), key=lambda x: (x["read_at"], x["logged_at"], x["reading_id"]), default=None
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

        def make(fs: WindowFeatureSet = METERS, incremental: bool = True, shared: bool = True):
            space = namespace if shared else f"{namespace}:{len(opened)}"
            agg = open_aggregator(fs, url, namespace=space, incremental=incremental)
            opened.append(agg)
            return agg
    else:
        path = tmp_path / "state.sqlite"

        def make(fs: WindowFeatureSet = METERS, incremental: bool = True, shared: bool = True):
            where = path if shared else tmp_path / f"state{len(opened)}.sqlite"
            agg = open_aggregator(fs, None, path=where, incremental=incremental)
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


# -- the running aggregates (slipway.windows.running) ----------------------------------------
def reading(rid: str, meter: str, read_at: dt.datetime, delay_s: float = 0.0, **values) -> dict:
    row = {"reading_id": rid, "meter": meter, "read_at": read_at, "kwh": 1.0, "site": "north"}
    row.update({"phase": "L1", "logged_at": read_at + dt.timedelta(seconds=delay_s), **values})
    return row


def assert_definition(results, events: list[dict[str, Any]]) -> None:
    by_id = {e["reading_id"]: e for e in events}
    for r in results:
        assert_same(r.features, oracle(events, by_id[r.event_id]), r.event_id)


def test_running_aggregates_equal_the_exact_path_for_every_event(aggregator_factory) -> None:
    """Two states fed the same readings: one answers in-order events from its running
    aggregates, the other always re-reduces. Same features for every event; the fast path
    answered the in-order ones and only those."""
    fast, exact = (
        aggregator_factory(shared=False),
        aggregator_factory(incremental=False, shared=False),
    )
    got = [fast.apply(e) for e in EVENTS[:200]] + fast.apply_many(EVENTS[200:])
    want = exact.apply_many(EVENTS)
    assert not any(r.incremental for r in want)
    for g, w in zip(got, want, strict=True):
        assert g.features == w.features, g.event_id
    assert_definition(got, EVENTS)
    # An event is answered incrementally exactly when it is newer, in event time and arrival,
    # than every earlier reading of its meter.
    seen: dict[str, tuple] = {}
    for e, r in zip(EVENTS, got, strict=True):
        newest = seen.get(e["meter"])
        assert r.incremental == (newest is None or e["read_at"] > newest), e["reading_id"]
        seen[e["meter"]] = max(filter(None, (newest, e["read_at"])))
    assert sum(r.incremental for r in got) > len(got) * 0.8


def test_window_edges_ties_and_late_events_on_the_running_state(aggregator_factory) -> None:
    """One meter, built around the edges: a reading exactly W before the event counts, one
    microsecond earlier does not, one at the event's own time does not; a late reading is
    answered exactly and then counted by the in-order readings after it."""
    agg = aggregator_factory()
    us = dt.timedelta(microseconds=1)
    t = T0 + dt.timedelta(hours=1)
    events = [
        reading("e0", "edge", t - 10 * MIN - us, kwh=2.0, site="a"),
        reading("e1", "edge", t - 10 * MIN, kwh=3.0, site="b"),
        reading("e2", "edge", t, kwh=5.0, site="c"),  # its 10-minute window: e1 only
        reading("e3", "edge", t, delay_s=1, kwh=7.0, site="d"),  # a tie on event time
        reading("e4", "edge", t + us, delay_s=1, kwh=1.0, site="a"),
        # late: read before e4, logged after it (within the allowed lateness)
        reading("late", "edge", t - 5 * MIN, delay_s=2 * 3600, kwh=11.0, site="z"),
        reading("e5", "edge", t + 2 * 3600 * 1_000_000 * us, delay_s=2 * 3600 + 1, kwh=0.5),
        reading("e6", "edge", t + 2 * 3600 * 1_000_000 * us + us, delay_s=2 * 3600 + 1),
    ]
    events.sort(key=lambda e: (e["logged_at"], e["reading_id"]))
    results = {r.event_id: r for r in (agg.apply(e) for e in events)}
    assert_definition(results.values(), events)
    f = {k: r.features for k, r in results.items()}
    assert f["e2"]["readings_10m"] == 1 and f["e2"]["kwh_10m"] == 3.0  # e0 is 1 µs too early
    assert f["e3"]["readings_10m"] == 1  # e2 shares its instant: not before it
    assert f["e4"]["readings_10m"] == 2  # e2, e3; e1 is now 1 µs too old
    assert f["e4"]["sites_30m"] == 4
    assert f["late"]["readings_10m"] == 2 and f["late"]["kwh_10m"] == 5.0  # e0 and e1
    # e5 is exactly 2 h after e2/e3: they are in its 2-hour window, e0, e1 and late are not
    assert f["e5"]["readings_2h"] == 3 and f["e5"]["kwh_peak_2h"] == 7.0
    assert f["e6"]["readings_2h"] == 2  # e4 and e5: e2/e3 are now 1 µs too old
    assert [results[k].incremental for k in ("e0", "e1", "e2", "e3", "e4", "late", "e5")] == [
        True,
        True,
        True,
        False,  # a tie on the newest event time takes the exact path
        True,
        False,  # late
        True,
    ]


def test_max_and_distinct_values_leave_the_window_with_their_last_event(aggregator_factory) -> None:
    """A peak that leaves the 2-hour window gives way to the largest remaining reading (not the
    next one applied); a site whose last reading leaves the 30-minute window stops counting."""
    agg = aggregator_factory()
    base = T0 + dt.timedelta(days=1)
    plan = [  # minute, kwh, site
        (0, 40.0, "north"),
        (10, 25.0, "south"),
        (20, 25.0, "south"),  # the same value twice: removing one copy keeps the other
        (30, 5.0, "east"),
        (60, 20.0, "east"),
        (125, 1.0, "east"),  # the peak (at 0) has left: 25, held twice
        (131, 2.0, "east"),  # one 25 (at 10) has left, the other (at 20) not: still 25
        (141, 3.0, "east"),  # both 25s left: 20 (at 60)
        (181, 4.0, "east"),  # 60 left: the largest of the readings at 125..141
        (400, 5.0, "east"),  # everything left: empty windows
    ]
    events = [
        reading(f"p{i:02d}", "peak", base + m * MIN, kwh=kwh, site=site)
        for i, (m, kwh, site) in enumerate(plan)
    ]
    results = [agg.apply(e) for e in events]
    assert all(r.incremental for r in results)
    assert_definition(results, events)
    peaks = [r.features["kwh_peak_2h"] for r in results]
    assert peaks == [None, 40.0, 40.0, 40.0, 40.0, 25.0, 25.0, 20.0, 3.0, None]
    sites = [r.features["sites_30m"] for r in results]
    assert sites == [0, 1, 2, 2, 1, 0, 1, 1, 0, 0]  # north and south leave together at 60
    phases = [r.features["phases_2h"] for r in results]
    assert phases[-1] == [] and phases[5] == ["L1"]


def test_pruning_under_the_running_state_keeps_every_answer_exact(aggregator_factory) -> None:
    """A day of readings (the state keeps 2 h + 6 h of lateness and prunes hourly), some late
    within the lateness: every event still gets the definition, and the state stays small."""
    rng = random.Random(3)
    events = []
    for i in range(500):
        read_at = T0 + dt.timedelta(days=2, seconds=i * 170 + rng.randrange(0, 60))
        delay = rng.randrange(60, 3 * 3600) if rng.random() < 0.1 else rng.random()
        events.append(reading(f"d{i:03d}", f"m{i % 2}", read_at, delay, kwh=rng.uniform(0, 9)))
        events[-1]["kwh"] = round(events[-1]["kwh"], 3)
    events.sort(key=lambda e: (e["logged_at"], e["reading_id"]))
    agg = aggregator_factory()
    results = agg.apply_many(events[:250]) + [agg.apply(e) for e in events[250:]]
    assert all(r.complete for r in results)
    assert_definition(results, events)
    assert 0.6 < sum(r.incremental for r in results) / len(results) < 1
    if aggregator_factory.kind == "embedded":
        # 500 readings over ~24 h; the state holds the last ~9-10 h of them
        assert agg.state_size() < 250


def test_a_state_another_writer_changed_is_rebuilt_not_trusted(aggregator_factory) -> None:
    """Two aggregators on one state alternate the readings of one meter (two consumers without
    entity partitioning): each sees the other's writes; every answer is the definition."""
    first, second = aggregator_factory(), aggregator_factory()
    events = [e for e in EVENTS if e["meter"] == EVENTS[0]["meter"]]
    results = [(first if i % 2 else second).apply(e) for i, e in enumerate(events)]
    assert_definition(results, events)


def test_redis_running_state_lost_on_its_own_is_rebuilt_from_the_events(redis_url) -> None:
    agg = open_aggregator(
        METERS, f"redis://{redis_url}/0", namespace=f"slipway:test:{uuid.uuid4().hex}"
    )
    try:
        half = len(EVENTS) // 2
        agg.apply_many(EVENTS[:half])
        for meter in {e["meter"] for e in EVENTS}:
            _events, ik, *maps = agg.keys(meter)
            agg.client.hdel(ik, "\x1es")  # the packed running state, nothing else
            agg.client.delete(*maps)
        results = agg.apply_many(EVENTS[half:])
        assert_definition(results, EVENTS)
    finally:
        agg.delete_state()
        agg.close()


def test_running_structure_against_brute_force_in_any_insertion_order() -> None:
    """The invariant itself: after inserts in random order and advances of the lower bounds,
    every running aggregate equals a direct reduction of the events at or above its bound."""
    from slipway.windows.running import EntityWindows, MaxBag, WindowPlan

    plan = WindowPlan.of(METERS)
    codec = EventCodec(METERS)
    rng = random.Random(11)
    encoded = [codec.encode(e) for e in EVENTS if e["meter"] == "m1"]
    for trial in range(5):
        rng.shuffle(encoded)
        state = EntityWindows(plan, encoded[:10])
        for step, event in enumerate(encoded[10:]):
            state.insert(event)
            if step % 3 == trial % 3:
                j = rng.randrange(len(plan.widths))
                state.advance(j, event.t_us - rng.randrange(0, plan.widths[j] * 2))
            for j, lo in enumerate(state.lo):
                held = [x for x in state.events if lo is None or x.t_us >= lo]
                assert state.count[j] == len(held)
                for k, (w, slot) in enumerate(plan.sums):
                    if w == j:
                        vals = [x.values[slot] for x in held if x.values[slot] is not None]
                        assert (state.sum[k], state.n[k]) == (sum(vals), len(vals))
                for k, (w, slot) in enumerate(plan.maxes):
                    if w == j:
                        vals = [x.values[slot] for x in held if x.values[slot] is not None]
                        assert state.maxes[k].top == max(vals, default=None)
                for k, (w, slot) in enumerate(plan.maps):
                    if w == j:
                        vals = {x.values[slot] for x in held if x.values[slot] is not None}
                        assert set(state.maps[k]) == vals
    bag = MaxBag()
    for v in (3, 9, 9, 1):
        bag.add(v)
    bag.remove(9)
    assert bag.top == 9
    bag.remove(9)
    assert bag.top == 3


def test_redis_scripts_missing_on_the_server_are_loaded_and_the_call_sent_again(
    redis_url,
) -> None:
    """After a Redis restart or SCRIPT FLUSH the server knows neither script: the first call
    (single or batched) gets NOSCRIPT for every reply, applies nothing, loads, and is resent:
    every event is applied once and gets the definition."""
    from slipway.windows.redis_aggregator import batch_lua_script, lua_script

    agg = open_aggregator(
        METERS, f"redis://{redis_url}/0", namespace=f"slipway:test:{uuid.uuid4().hex}"
    )
    try:
        fresh = f"\n-- {uuid.uuid4().hex}: a script this server has never seen"
        agg.script = agg.client.register_script(lua_script(METERS) + fresh)
        agg.batch_script = agg.client.register_script(batch_lua_script(METERS) + fresh)
        assert agg.client.script_exists(agg.script.sha, agg.batch_script.sha) == [False, False]
        results = [agg.apply(EVENTS[0]), *agg.apply_many(EVENTS[1:])]
        assert_definition(results, EVENTS)
        assert not any(r.duplicate for r in results)
        assert agg.client.script_exists(agg.script.sha, agg.batch_script.sha) == [True, True]
    finally:
        agg.delete_state()
        agg.close()


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


def test_an_embedded_file_of_the_earlier_rowid_layout_still_gives_the_definition(
    tmp_path: Path,
) -> None:
    """Files made before the clustered layout (a rowid table, an entity index) are opened as
    they are, not rewritten, and answer every event as the definition says."""
    import sqlite3

    from slipway.windows.embedded import state_fingerprint

    path = tmp_path / "old.sqlite"
    columns = "".join(f", v{i}" for i in range(len(METERS.inputs)))
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        c.execute(
            "CREATE TABLE events (entity TEXT NOT NULL, event_id TEXT PRIMARY KEY,"
            f" t_us INTEGER NOT NULL, a_us INTEGER NOT NULL{columns})"
        )
        c.execute("CREATE INDEX events_by_entity ON events (entity, t_us)")
        c.execute("CREATE TABLE entities (entity TEXT PRIMARY KEY, pruned_below INTEGER NOT NULL)")
        c.execute("CREATE TABLE versions (entity TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        c.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (state_fingerprint(METERS),))
    agg = open_aggregator(METERS, None, path=path)
    try:
        results = [agg.apply(e) for e in EVENTS[:100]] + agg.apply_many(EVENTS[100:])
        assert_definition(results, EVENTS)
        assert agg.apply(EVENTS[3]).duplicate
    finally:
        agg.close()
    with sqlite3.connect(path) as c:
        (sql,) = c.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
    assert "WITHOUT ROWID" not in sql  # still the old layout


def test_a_new_embedded_file_is_clustered_by_entity(tmp_path: Path) -> None:
    import sqlite3

    open_aggregator(METERS, None, path=tmp_path / "new.sqlite").close()
    with sqlite3.connect(tmp_path / "new.sqlite") as c:
        (sql,) = c.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
    assert "WITHOUT ROWID" in sql and "PRIMARY KEY (entity, t_us, event_id)" in sql


def test_timestamps_encode_to_the_same_microseconds_whatever_their_type() -> None:
    """The scorer hands datetimes, replays hand pandas Timestamps (nanoseconds, other units,
    other zones, naive = UTC), tests hand ISO text: one microsecond count, floored."""
    from slipway.windows.semantics import EPOCH, ONE_MICROSECOND, micros

    rng = random.Random(3)
    for _ in range(2_000):
        nanos = rng.randrange(0, 4 * 10**18)
        ts = pd.Timestamp(nanos, tz="UTC")
        want = nanos // 1000
        exact = ts.to_pydatetime(warn=False)
        assert (exact - EPOCH) // ONE_MICROSECOND == want
        for value in (
            ts,
            ts.tz_convert("America/St_Johns"),
            ts.tz_localize(None),
            exact,
            exact.replace(tzinfo=None),
            exact.astimezone(dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
            exact.isoformat(),
            ts.as_unit("us"),
        ):
            assert micros(value) == want, (value, micros(value), want)
    codec = EventCodec(METERS)
    for e in EVENTS[:50]:
        as_pandas = {
            **e,
            "read_at": pd.Timestamp(e["read_at"]),
            "logged_at": pd.Timestamp(e["logged_at"]),
        }
        assert codec.encode(as_pandas) == codec.encode(e)


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

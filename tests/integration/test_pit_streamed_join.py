"""The streamed point-in-time join equals the one-shot join and a plain reference, on generated data.

Real Feast, real Delta, the Delta offline store. The data is generated so that every rule of
the as-of join meets a chunk edge somewhere: many feature rows share an event time (ties broken
by the created time, then by the last written row), entity rows sit exactly on feature times and
exactly on the TTL edge (kept) or one microsecond past it (dropped), keys repeat across many
files and partitions, some entity keys have no feature rows at all, and runs of entity rows with
the same event time are cut by the chunk bounds. The reference is written from the rules alone
(a loop over the rows), not from the store's code.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float64, Int64, String
from feast.value_type import ValueType

from slipway.featurestore import DeltaSource
from slipway.lakehouse.tables import Lakehouse
from tests.integration.test_feast_delta_offline_store import write_yaml

UTC = dt.UTC
TS = pa.timestamp("us", tz="UTC")
START = dt.datetime(2024, 3, 1, tzinfo=UTC)
TTL = dt.timedelta(hours=6)
US = dt.timedelta(microseconds=1)
N_CUSTOMERS = 30
WRITES = 4  # separate appends: files whose rows interleave in time


def _feature_writes(rng: np.random.Generator) -> list[pd.DataFrame]:
    """WRITES batches of feature rows on a 10-minute grid (so event times collide often)."""
    writes = []
    serial = 0
    for w in range(WRITES):
        n = 600
        ts = [START + dt.timedelta(minutes=10 * int(m)) for m in rng.integers(0, 6 * 24 * 4, n)]
        # Created times repeat within a write (a full tie: the last written row wins) but never
        # across writes, whose relative order is the log's; only the first write has nulls.
        created = [
            None
            if w == 0 and rng.random() < 0.2
            else t + dt.timedelta(minutes=int(rng.integers(0, 3)), microseconds=w)
            for t in ts
        ]
        writes.append(
            pd.DataFrame(
                {
                    "customer_id": rng.integers(0, N_CUSTOMERS, n).astype("int64"),
                    "ts": ts,
                    "created_ts": created,
                    "spend": np.arange(serial, serial + n, dtype="float64"),  # row identity
                    "tags": [[f"t{int(v) % 5}"] * int(v % 3) for v in range(serial, serial + n)],
                }
            )
        )
        serial += n
    return writes


def _entity_rows(rng: np.random.Generator, features: pd.DataFrame) -> pd.DataFrame:
    """Entity rows on feature times, on TTL edges, at random times, and for unknown keys."""
    picks = features.sample(n=250, random_state=int(rng.integers(1 << 30)))
    keys = list(picks["customer_id"])
    times = list(picks["ts"])
    # Each key's last feature time, TTL later (kept) and one microsecond more (dropped): with no
    # later row, the edge itself decides.
    edge = features.loc[features.groupby("customer_id")["ts"].idxmax()]
    keys += list(edge["customer_id"]) * 2
    times += [t + TTL for t in edge["ts"]] + [t + TTL + US for t in edge["ts"]]
    n_random = 400
    keys += list(rng.integers(0, N_CUSTOMERS + 3, n_random))  # 3 keys never written
    times += [START + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 60 * 24 * 4, n_random)]
    frame = pd.DataFrame(
        {
            "customer_id": np.asarray(keys, dtype="int64"),
            "event_timestamp": pd.to_datetime(times, utc=True),
        }
    )
    frame["amount"] = np.arange(len(frame), dtype="float64") + 1.0
    # Time order, as a training set is; equal times stay in one run that chunks will cut.
    return frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def _reference(entity: pd.DataFrame, features: pd.DataFrame) -> list[float | None]:
    """Per entity row the ``spend`` (row identity) the as-of rules pick, by a plain loop."""
    by_key: dict[int, list[tuple[dt.datetime, float, int, float]]] = {}
    for order, row in enumerate(features.itertuples(index=False)):
        created = -np.inf if pd.isna(row.created_ts) else row.created_ts.timestamp()
        by_key.setdefault(int(row.customer_id), []).append(
            (row.ts.to_pydatetime(), created, order, row.spend)
        )
    out: list[float | None] = []
    for row in entity.itertuples(index=False):
        at = row.event_timestamp.to_pydatetime()
        candidates = [c for c in by_key.get(int(row.customer_id), []) if c[0] <= at]
        if not candidates:
            out.append(None)
            continue
        best = max(candidates, key=lambda c: (c[0], c[1], c[2]))
        out.append(best[3] if best[0] >= at - TTL else None)
    return out


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[FeatureStore, pd.DataFrame, list[float | None]]:
    tmp: Path = tmp_path_factory.mktemp("pit_streamed")
    rng = np.random.default_rng(20240301)
    writes = _feature_writes(rng)
    lakehouse = Lakehouse(tmp / "lakehouse")
    for frame in writes:
        table = pa.table(
            {
                "customer_id": pa.array(frame["customer_id"], pa.int64()),
                "ts": pa.array(list(frame["ts"]), TS),
                "created_ts": pa.array(
                    [None if pd.isna(c) else c for c in frame["created_ts"]], TS
                ),
                "spend": pa.array(frame["spend"], pa.float64()),
                "tags": pa.array(list(frame["tags"]), pa.list_(pa.string())),
                "date": pa.array([t.date() for t in frame["ts"]], pa.date32()),
            }
        )
        lakehouse.write("features.gen_stats", table, partition_by=["date"], mode="append")
    features = pd.concat(writes, ignore_index=True)

    customer = Entity(name="gen_customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    source = DeltaSource(
        name="gen_stats",
        table="features.gen_stats",
        timestamp_field="ts",
        created_timestamp_column="created_ts",
        date_partition_column="date",
    )
    view = FeatureView(
        name="gen_fv",
        entities=[customer],
        ttl=TTL,
        source=source,
        schema=[
            Field(name="customer_id", dtype=Int64),
            Field(name="spend", dtype=Float64),
            Field(name="tags", dtype=Array(String)),
        ],
    )
    request = RequestSource(name="gen_request", schema=[Field(name="amount", dtype=Float64)])

    @on_demand_feature_view(
        sources=[view, request],
        schema=[Field(name="amount_plus_spend", dtype=Float64)],
        mode="pandas",
    )
    def gen_ratio(inputs: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"amount_plus_spend": inputs["amount"] + inputs["spend"]})

    path = tmp / "repo"
    write_yaml(
        path,
        f"gen_{uuid.uuid4().hex[:8]}",
        f"{tmp}/registry.db",
        f"{tmp}/lakehouse",
        f"{{type: sqlite, path: {tmp}/online.db}}",
    )
    store = FeatureStore(repo_path=str(path))
    store.apply([customer, source, view, request, gen_ratio])
    entity = _entity_rows(rng, features)
    return store, entity, _reference(entity, features)


FEATURES = ["gen_fv:spend", "gen_fv:tags", "gen_ratio:amount_plus_spend"]


def test_one_shot_join_follows_the_as_of_rules(world: tuple) -> None:
    store, entity, expected = world
    whole = store.get_historical_features(entity, FEATURES).to_arrow()
    assert whole.num_rows == len(entity)
    assert whole["amount"].to_pylist() == list(entity["amount"])  # the entity frame's order
    assert whole["spend"].to_pylist() == expected
    hits = sum(v is not None for v in expected)
    # The generated data exercises every branch: hits, TTL drops on the edge, unknown keys.
    assert 0.3 * len(entity) < hits < len(entity)
    assert whole["amount_plus_spend"].to_pylist() == [
        None if s is None else a + s for a, s in zip(entity["amount"], expected, strict=True)
    ]
    tags = whole["tags"].to_pylist()
    assert all((t is None) == (s is None) for t, s in zip(tags, expected, strict=True))


def test_generated_rows_meet_the_ttl_edge_and_ties(world: tuple) -> None:
    # Guards the generator: the data must hold what the other tests claim to cover.
    _, entity, expected = world
    keys = zip(entity["customer_id"], entity["event_timestamp"], strict=True)
    got = dict(zip(keys, expected, strict=True))
    kept_then_dropped = [
        (k, t) for (k, t), v in got.items() if v is not None and got.get((k, t + US), 0) is None
    ]
    assert kept_then_dropped, "no entity row pair straddles the TTL edge"
    times = entity["event_timestamp"]
    assert (times.diff() == pd.Timedelta(0)).sum() > 20, "too few runs of equal entity times"
    assert any(times[i] == times[i - 1] for i in range(7, len(entity), 7)), "no chunk cuts a run"


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 333, 1000, 100_000])
def test_streamed_chunks_equal_the_one_shot_join(world: tuple, chunk_rows: int) -> None:
    store, entity, _ = world
    job = store.get_historical_features(entity, FEATURES)
    whole = job.to_arrow()
    parts = list(job.iter_arrow(chunk_rows))
    assert [p.num_rows for p in parts[:-1]] == [chunk_rows] * (len(parts) - 1)
    assert pa.concat_tables(parts).equals(whole)


def test_stopping_a_stream_early_stops_its_worker(world: tuple) -> None:
    store, entity, _ = world
    job = store.get_historical_features(entity, FEATURES)
    stream = job.iter_arrow(50)
    first = next(stream)
    assert first.num_rows == 50
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "pit-prefetch"]


def test_an_error_while_joining_reaches_the_consumer(world: tuple) -> None:
    store, entity, _ = world
    bad = entity.assign(customer_id=[f"c{v}x" for v in entity["customer_id"]])
    job = store.get_historical_features(bad, FEATURES)
    with pytest.raises(ValueError, match="cannot be joined"):
        list(job.iter_arrow(100))
    assert not [t for t in threading.enumerate() if t.name == "pit-prefetch"]


def test_entity_rows_with_no_feature_rows_in_reach_get_nulls(world: tuple) -> None:
    """Entity rows long before every feature row: no feature row is in reach (none loaded at
    all), and each row still comes back, with missing features (a day scored before its view
    has data, as a new use case's first days are)."""
    store, entity, _ = world
    early = entity.head(20).copy()
    early["event_timestamp"] = pd.Timestamp("2001-01-01", tz="UTC")
    for chunk_rows in (1, 100_000):
        job = store.get_historical_features(early, FEATURES)
        parts = list(job.iter_arrow(chunk_rows=chunk_rows))
        assert sum(p.num_rows for p in parts) == len(early)
        whole = job.to_arrow()
        assert whole.num_rows == len(early)
        assert whole["spend"].to_pylist() == [None] * len(early)
        assert whole["amount_plus_spend"].to_pylist() == [None] * len(early)

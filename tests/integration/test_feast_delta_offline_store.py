"""Feast + DeltaOfflineStore on a tiny generic feature repo: real Feast, real Delta, no mocks.

Each test builds its own lakehouse and feature repo under ``tmp_path`` and drives Feast's public
API (``apply``, ``get_historical_features``, ``materialize``, ``get_online_features``), so what is
checked is the behaviour a user of the platform sees.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float64, Int64, String
from feast.value_type import ValueType

from slipway.featurestore import DeltaSource, pinned_versions
from slipway.featurestore.delta_source import delta_type_to_feast_value_type
from slipway.lakehouse.tables import Lakehouse

UTC = dt.UTC
TS = pa.timestamp("us", tz="UTC")


def T(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    """A UTC instant in January 2024 (day 0 is 31 December 2023)."""
    return dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(
        days=day - 1, hours=hour, minutes=minute, seconds=second
    )


# -- toy data -----------------------------------------------------------------------------------
CUSTOMER_ROWS: list[dict[str, Any]] = [
    # customer 1: a tie at T(2) broken by created_ts (spend 21 wins), a later row at T(4)
    {
        "customer_id": 1,
        "ts": T(1),
        "created_ts": T(1, 1),
        "spend": 10.0,
        "n_txn": 1,
        "categories": ["a"],
    },
    {
        "customer_id": 1,
        "ts": T(2),
        "created_ts": T(2, 1),
        "spend": 20.0,
        "n_txn": 2,
        "categories": ["a", "b"],
    },
    {
        "customer_id": 1,
        "ts": T(2),
        "created_ts": T(2, 5),
        "spend": 21.0,
        "n_txn": 2,
        "categories": ["b"],
    },
    {
        "customer_id": 1,
        "ts": T(4),
        "created_ts": T(4, 1),
        "spend": 40.0,
        "n_txn": 4,
        "categories": [],
    },
    # customer 2: one row; TTL (2 days) ends exactly at T(3, 12)
    {
        "customer_id": 2,
        "ts": T(1, 12),
        "created_ts": T(1, 13),
        "spend": 100.0,
        "n_txn": 1,
        "categories": None,
    },
    # customer 3: data starts at T(3)
    {
        "customer_id": 3,
        "ts": T(3),
        "created_ts": T(3, 1),
        "spend": 300.0,
        "n_txn": 3,
        "categories": ["z", "y"],
    },
]

MERCHANT_ROWS: list[dict[str, Any]] = [
    {"merchant_id": "m1", "event_time": T(1), "raw_risk": 0.1},
    {"merchant_id": "m1", "event_time": T(3), "raw_risk": 0.3},
    {"merchant_id": "m2", "event_time": T(2), "raw_risk": 0.9},
]


def customer_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array([r["customer_id"] for r in rows], pa.int64()),
            "ts": pa.array([r["ts"] for r in rows], TS),
            "created_ts": pa.array([r["created_ts"] for r in rows], TS),
            "spend": pa.array([r["spend"] for r in rows], pa.float64()),
            "n_txn": pa.array([r["n_txn"] for r in rows], pa.int64()),
            "categories": pa.array([r["categories"] for r in rows], pa.list_(pa.string())),
            "date": pa.array([r["ts"].date() for r in rows], pa.date32()),
        }
    )


def merchant_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "merchant_id": pa.array([r["merchant_id"] for r in rows], pa.string()),
            "event_time": pa.array([r["event_time"] for r in rows], TS),
            "raw_risk": pa.array([r["raw_risk"] for r in rows], pa.float64()),
            "date": pa.array([r["event_time"].date() for r in rows], pa.date32()),
        }
    )


# -- the feature repo ---------------------------------------------------------------------------
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.STRING)
customer_source = DeltaSource(
    table="features.customer_stats",
    timestamp_field="ts",
    created_timestamp_column="created_ts",
    date_partition_column="date",
    description="per-customer aggregates",
    tags={"layer": "features"},
    owner="ml@example.com",
)
merchant_source = DeltaSource(
    name="merchant_stats",
    table="features.merchant_stats",
    timestamp_field="event_time",
    field_mapping={"raw_risk": "risk"},
)
customer_fv = FeatureView(
    name="customer_fv",
    entities=[customer],
    ttl=dt.timedelta(days=2),
    source=customer_source,
    schema=[
        Field(name="customer_id", dtype=Int64),
        Field(name="spend", dtype=Float64),
        Field(name="n_txn", dtype=Int64),
        Field(name="categories", dtype=Array(String)),
    ],
)
merchant_fv = FeatureView(
    name="merchant_fv",
    entities=[merchant],
    ttl=dt.timedelta(days=1),
    source=merchant_source,
    schema=[Field(name="merchant_id", dtype=String), Field(name="risk", dtype=Float64)],
)
request = RequestSource(name="txn_request", schema=[Field(name="amount", dtype=Float64)])


@on_demand_feature_view(
    sources=[customer_fv, request],
    schema=[Field(name="amount_over_spend", dtype=Float64)],
    mode="pandas",
)
def amount_ratio(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["amount_over_spend"] = inputs["amount"] / inputs["spend"]
    return out


scoring = FeatureService(name="scoring", features=[customer_fv, merchant_fv, amount_ratio])
REPO_OBJECTS = [
    customer,
    merchant,
    customer_source,
    merchant_source,
    customer_fv,
    merchant_fv,
    amount_ratio,
    scoring,
]


@dataclass
class Repo:
    store: FeatureStore
    lakehouse: Lakehouse
    path: Path
    project: str


def write_yaml(
    path: Path, project: str, registry: str, lakehouse_root: str, online: str, extra: str = ""
) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "feature_store.yaml").write_text(
        textwrap.dedent(
            f"""\
            project: {project}
            registry: {registry}
            provider: local
            offline_store:
              type: slipway.featurestore.delta_offline_store.DeltaOfflineStore
              lakehouse_root: {lakehouse_root}
            online_store: {online}
            entity_key_serialization_version: 3
            """
        )
        + extra
    )


def make_repo(tmp: Path, online: str | None = None, extra: str = "") -> Repo:
    project = f"toy_{uuid.uuid4().hex[:10]}"
    lakehouse = Lakehouse(tmp / "lakehouse")
    lakehouse.write("features.customer_stats", customer_table(CUSTOMER_ROWS), partition_by=["date"])
    lakehouse.write("features.merchant_stats", merchant_table(MERCHANT_ROWS))
    path = tmp / "repo"
    online = online or f"{{type: sqlite, path: {tmp}/online.db}}"
    write_yaml(path, project, f"{tmp}/registry.db", f"{tmp}/lakehouse", online, extra)
    store = FeatureStore(repo_path=str(path))
    store.apply(REPO_OBJECTS)
    return Repo(store=store, lakehouse=lakehouse, path=path, project=project)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)


def nan_to_none(values: Any) -> list[Any]:
    return [None if (isinstance(v, float) and np.isnan(v)) else v for v in values]


def as_lists(values: Any) -> list[Any]:
    return [None if v is None else list(v) for v in values]


# -- registry -----------------------------------------------------------------------------------
def test_delta_source_round_trips_through_proto_and_registry(repo: Repo) -> None:
    again = DeltaSource.from_proto(customer_source.to_proto())
    assert again == customer_source
    assert again.table == "features.customer_stats"
    assert again.date_partition_column == "date"

    fresh = FeatureStore(repo_path=str(repo.path))  # a new process would read exactly this
    stored = fresh.get_data_source("merchant_stats")
    assert isinstance(stored, DeltaSource)
    assert stored == merchant_source
    assert stored.field_mapping == {"raw_risk": "risk"}
    fv = fresh.get_feature_view("customer_fv")
    assert isinstance(fv.batch_source, DeltaSource)
    assert fv.batch_source.created_timestamp_column == "created_ts"


def test_schema_inference_and_validation_from_the_delta_schema(repo: Repo) -> None:
    names_types = dict(customer_source.get_table_column_names_and_types(repo.store.config))
    assert names_types["categories"] == "list<item: string>"  # delta-rs says list<element: ...>
    assert delta_type_to_feast_value_type(names_types["categories"]) == ValueType.STRING_LIST
    assert delta_type_to_feast_value_type("list<element: string>") == ValueType.STRING_LIST
    assert delta_type_to_feast_value_type("large_string") == ValueType.STRING  # not JSON

    # A feature view without a schema gets its features inferred from the Delta table.
    inferred = FeatureView(name="inferred_fv", entities=[customer], source=customer_source)
    repo.store.apply([customer, customer_source, inferred])
    features = {f.name: f.dtype for f in repo.store.get_feature_view("inferred_fv").features}
    assert features["categories"] == Array(String)
    assert features["spend"] == Float64
    assert "ts" not in features and "created_ts" not in features

    customer_source.validate(repo.store.config)
    bad = DeltaSource(table="features.customer_stats", timestamp_field="no_such_column")
    with pytest.raises(ValueError, match="no_such_column"):
        bad.validate(repo.store.config)
    with pytest.raises(ValueError, match="not found"):
        DeltaSource(table="features.missing", timestamp_field="ts").validate(repo.store.config)


# -- historical retrieval -----------------------------------------------------------------------
ENTITY_ROWS = [
    # (customer_id, event_timestamp, expected spend, expected categories, why)
    (1, T(1), 10.0, ["a"], "feature ts == entity ts is included"),
    (1, T(1, 23), 10.0, ["a"], "latest row before"),
    (1, T(2), 21.0, ["b"], "event-time tie: the later created row wins"),
    (1, T(3, 23, 59, 59), 21.0, ["b"], "the T(4) row is in the future: never used"),
    (1, T(4), 40.0, [], "new row at exactly the entity time"),
    (2, T(3, 12), 100.0, None, "exactly at the TTL edge: kept"),
    (2, T(3, 12, 0, 1), None, None, "one second past the TTL: null"),
    (99, T(3), None, None, "unknown key: null"),
    (3, T(2), None, None, "before the customer's first row: null"),
    (1, T(2), 21.0, ["b"], "duplicate entity row: its own output row"),
    (1, T(0), None, None, "before all data"),
]


def entity_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "event_timestamp": [r[1] for r in rows],
            "row_label": [f"row{i}" for i in range(len(rows))],
            "amount": [float(i + 1) for i in range(len(rows))],
        }
    )


def test_point_in_time_ttl_and_one_row_per_entity_row(repo: Repo) -> None:
    # Entity rows deliberately unsorted; the output keeps the entity frame's order.
    order = [4, 0, 7, 2, 9, 1, 10, 5, 3, 8, 6]
    rows = [ENTITY_ROWS[i] for i in order]
    entity_df = entity_frame(rows)
    out = repo.store.get_historical_features(
        entity_df=entity_df,
        features=["customer_fv:spend", "customer_fv:categories", "customer_fv:n_txn"],
    ).to_df()

    assert len(out) == len(entity_df)
    assert list(out["row_label"]) == list(entity_df["row_label"])  # extra columns carried
    assert list(out["amount"]) == list(entity_df["amount"])
    assert nan_to_none(out["spend"]) == [r[2] for r in rows], [r[4] for r in rows]
    assert as_lists(out["categories"]) == [r[3] for r in rows]
    assert str(out["event_timestamp"].dt.tz) == "UTC"


def test_entity_timestamps_naive_or_other_zones_are_taken_as_utc(repo: Repo) -> None:
    naive_times = [T(2).replace(tzinfo=None), T(3, 23, 59).replace(tzinfo=None)]
    naive = pd.DataFrame({"customer_id": [1, 1], "event_timestamp": pd.to_datetime(naive_times)})
    assert naive["event_timestamp"].dt.tz is None
    out = repo.store.get_historical_features(naive, ["customer_fv:spend"]).to_df()
    assert list(out["spend"]) == [21.0, 21.0]
    tokyo = pd.DataFrame(
        {"customer_id": [1], "event_timestamp": [pd.Timestamp(T(4)).tz_convert("Asia/Tokyo")]}
    )
    out = repo.store.get_historical_features(tokyo, ["customer_fv:spend"]).to_df()
    assert list(out["spend"]) == [40.0]


def test_feature_service_with_on_demand_view_and_two_join_keys(repo: Repo) -> None:
    entity_df = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 3],
            "merchant_id": ["m1", "m2", "m1", "m3"],
            "event_timestamp": [T(1, 12), T(3, 12), T(3, 6), T(3, 6)],
            "amount": [50.0, 21.0, 50.0, 30.0],
        }
    )
    out = repo.store.get_historical_features(entity_df, scoring).to_df()
    assert len(out) == 4
    assert list(out["spend"]) == [10.0, 21.0, 100.0, 300.0]
    # merchant TTL is 1 day; m2's T(2) row is 1.5 days old at T(3, 12); m3 is unknown
    assert nan_to_none(out["risk"]) == [0.1, None, 0.3, None]
    assert list(out["amount_over_spend"]) == [5.0, 1.0, 0.5, 0.1]

    full = repo.store.get_historical_features(
        entity_df,
        ["customer_fv:spend", "merchant_fv:risk", "amount_ratio:amount_over_spend"],
        full_feature_names=True,
    ).to_df()
    assert {"customer_fv__spend", "merchant_fv__risk", "amount_ratio__amount_over_spend"} <= set(
        full.columns
    )
    assert "spend" not in full.columns and "risk" not in full.columns
    assert list(full["customer_fv__spend"]) == list(out["spend"])
    assert nan_to_none(full["merchant_fv__risk"]) == nan_to_none(out["risk"])
    assert list(full["amount_ratio__amount_over_spend"]) == list(out["amount_over_spend"])


def test_retrieval_without_entity_df_gives_latest_row_per_entity(repo: Repo) -> None:
    out = repo.store.get_historical_features(
        features=["customer_fv:spend"], start_date=T(1), end_date=T(3, 13)
    ).to_df()
    got = dict(zip(out["customer_id"], nan_to_none(out["spend"]), strict=True))
    assert got == {1: 21.0, 2: None, 3: 300.0}  # customer 2's row is outside the 2-day TTL


# -- Delta versions -----------------------------------------------------------------------------
def test_partition_replace_is_read_through_the_log_and_versions_can_be_pinned(repo: Repo) -> None:
    lh = repo.lakehouse
    v0 = lh.version("features.customer_stats")
    assert v0 == 0
    entity_df = pd.DataFrame({"customer_id": [1, 1], "event_timestamp": [T(2, 12), T(1, 12)]})
    before = repo.store.get_historical_features(entity_df, ["customer_fv:spend"]).to_df()
    assert list(before["spend"]) == [21.0, 10.0]

    # Replace the whole 2 January partition: one row, different values.
    replacement = [
        {
            "customer_id": 1,
            "ts": T(2, 6),
            "created_ts": T(2, 7),
            "spend": 222.0,
            "n_txn": 9,
            "categories": ["new"],
        }
    ]
    result = lh.write(
        "features.customer_stats",
        customer_table(replacement),
        replace_dates=("2024-01-02", "2024-01-02"),
    )
    assert result.version == 1
    with pinned_versions() as latest_log:
        job = repo.store.get_historical_features(
            pd.DataFrame(
                {"customer_id": [1, 1, 1], "event_timestamp": [T(2, 3), T(2, 12), T(1, 12)]}
            ),
            ["customer_fv:spend"],
        )
    # The replaced rows (20.0, 21.0) are gone; T(2, 3) now falls back to the T(1) row.
    assert list(job.to_df()["spend"]) == [10.0, 222.0, 10.0]
    assert latest_log.versions == {"features.customer_stats": 1}
    assert job.versions == {"features.customer_stats": 1}

    with pinned_versions({"features.customer_stats": 0}) as log:
        old = repo.store.get_historical_features(entity_df, ["customer_fv:spend"]).to_df()
        both = repo.store.get_historical_features(
            entity_df.assign(merchant_id="m1"), ["customer_fv:spend", "merchant_fv:risk"]
        )
    assert list(old["spend"]) == [21.0, 10.0]
    assert log.versions == {"features.customer_stats": 0, "features.merchant_stats": 0}
    # Created inside the block, run after it: still version 0 (latest would give 222.0).
    assert list(both.to_df()["spend"]) == [21.0, 10.0]


def test_versions_are_resolved_when_feast_is_called_not_when_the_job_runs(repo: Repo) -> None:
    entity_df = pd.DataFrame({"customer_id": [3], "event_timestamp": [T(3, 12)]})
    job = repo.store.get_historical_features(entity_df, ["customer_fv:spend"])
    new = [
        {
            "customer_id": 3,
            "ts": T(3, 6),
            "created_ts": T(3, 7),
            "spend": 333.0,
            "n_txn": 1,
            "categories": [],
        }
    ]
    repo.lakehouse.write("features.customer_stats", customer_table(new))  # version 1
    assert list(job.to_df()["spend"]) == [300.0]  # the job was fixed at version 0
    again = repo.store.get_historical_features(entity_df, ["customer_fv:spend"])
    assert list(again.to_df()["spend"]) == [333.0]


def test_pinned_versions_apply_to_materialization(repo: Repo) -> None:
    new = [
        {
            "customer_id": 3,
            "ts": T(3, 6),
            "created_ts": T(3, 7),
            "spend": 333.0,
            "n_txn": 1,
            "categories": [],
        }
    ]
    repo.lakehouse.write("features.customer_stats", customer_table(new))  # version 1
    with pinned_versions({"features.customer_stats": 0}) as log:
        repo.store.materialize(T(0), T(5), feature_views=["customer_fv"])
    assert log.versions == {"features.customer_stats": 0}
    online = repo.store.get_online_features(["customer_fv:spend"], [{"customer_id": 3}]).to_dict()
    assert online["spend"] == [300.0]


def test_missing_table_is_an_error_not_an_empty_result(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    ghost = FeatureView(
        name="ghost_fv",
        entities=[customer],
        source=DeltaSource(table="features.ghost", timestamp_field="ts"),
        schema=[Field(name="customer_id", dtype=Int64), Field(name="x", dtype=Float64)],
    )
    repo.store.apply([customer, ghost])
    entity_df = pd.DataFrame({"customer_id": [1], "event_timestamp": [T(2)]})
    with pytest.raises(LookupError, match=r"features\.ghost"):
        repo.store.get_historical_features(entity_df, ["ghost_fv:x"])
    with (
        pytest.raises(LookupError, match="pinned to version 7"),
        pinned_versions({"features.customer_stats": 7}),
    ):
        repo.store.get_historical_features(entity_df, ["customer_fv:spend"])


# -- materialization and online parity ----------------------------------------------------------
@pytest.mark.parametrize("pull_latest", [False, True], ids=["pull_all", "pull_latest"])
def test_materialize_into_sqlite_then_incrementally(tmp_path: Path, pull_latest: bool) -> None:
    extra = "materialization_config:\n  pull_latest_features: true\n" if pull_latest else ""
    repo = make_repo(tmp_path, extra=extra)
    store = repo.store
    store.materialize(T(0), T(2, 12))
    online = store.get_online_features(
        ["customer_fv:spend", "customer_fv:categories", "merchant_fv:risk"],
        [
            {"customer_id": 1, "merchant_id": "m1"},
            {"customer_id": 2, "merchant_id": "m2"},
            {"customer_id": 3, "merchant_id": "m9"},
        ],
    ).to_dict()
    assert online["spend"] == [21.0, 100.0, None]  # customer 3's first row is after the window
    assert online["categories"] == [["b"], None, None]
    assert online["risk"] == [0.1, 0.9, None]

    later = [
        {
            "customer_id": 1,
            "ts": T(5),
            "created_ts": T(5, 1),
            "spend": 50.0,
            "n_txn": 5,
            "categories": ["c"],
        }
    ]
    repo.lakehouse.write("features.customer_stats", customer_table(later))
    store.materialize_incremental(end_date=T(6))
    online = store.get_online_features(
        ["customer_fv:spend", "customer_fv:categories", "customer_fv:n_txn"],
        [{"customer_id": 1}, {"customer_id": 3}],
    ).to_dict()
    assert online["spend"] == [50.0, 300.0]
    assert online["categories"] == [["c"], ["z", "y"]]
    assert online["n_txn"] == [5, 3]


def test_online_features_equal_offline_features_at_the_same_time(repo: Repo) -> None:
    at = T(3, 12)
    store = repo.store
    store.materialize(T(0), at)
    keys = [(1, "m1"), (3, "m1"), (1, "m2"), (3, "m2")]
    amounts = [8.0, 30.0, 4.0, 600.0]
    entity_df = pd.DataFrame(
        {
            "customer_id": [k[0] for k in keys],
            "merchant_id": [k[1] for k in keys],
            "event_timestamp": [at] * len(keys),
            "amount": amounts,
        }
    )
    features = [
        "customer_fv:spend",
        "customer_fv:n_txn",
        "customer_fv:categories",
        "merchant_fv:risk",
        "amount_ratio:amount_over_spend",
    ]
    offline = store.get_historical_features(entity_df, features).to_df()
    online = store.get_online_features(
        features,
        [
            {"customer_id": c, "merchant_id": m, "amount": a}
            for (c, m), a in zip(keys, amounts, strict=True)
        ],
    ).to_dict()
    # m2's only row (T(2)) is outside its 1-day TTL offline; the online store keeps the last
    # materialized value, so parity is checked where both sides are inside the TTL.
    for name in ("spend", "n_txn", "amount_over_spend"):
        assert online[name] == list(offline[name]), name
    assert online["categories"] == as_lists(offline["categories"])
    assert online["risk"][:2] == list(offline["risk"][:2]) == [0.3, 0.3]
    assert nan_to_none(offline["risk"][2:]) == [None, None]


def test_list_features_survive_offline_and_online(repo: Repo) -> None:
    entity_df = pd.DataFrame(
        {"customer_id": [1, 1, 2, 3], "event_timestamp": [T(1, 1), T(4, 1), T(2), T(3, 1)]}
    )
    job = repo.store.get_historical_features(entity_df, ["customer_fv:categories"])
    arrow = job.to_arrow()
    assert pa.types.is_list(arrow.schema.field("categories").type)
    assert arrow["categories"].to_pylist() == [["a"], [], None, ["z", "y"]]
    repo.store.materialize(T(0), T(4, 1))
    online = repo.store.get_online_features(
        ["customer_fv:categories"], [{"customer_id": i} for i in (1, 2, 3)]
    ).to_dict()
    assert online["categories"] == [[], None, ["z", "y"]]


# -- Redis --------------------------------------------------------------------------------------
def _redis_client() -> Any:
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
        client.ping()
        return client
    except Exception:
        return None


@pytest.mark.redis
def test_materialize_into_redis(tmp_path: Path) -> None:
    client = _redis_client()
    if client is None:
        pytest.skip("no Redis server answering PING on 127.0.0.1:6379")
    repo = make_repo(tmp_path, online='{type: redis, connection_string: "127.0.0.1:6379"}')
    project_bytes = repo.project.encode()
    try:
        repo.store.materialize(T(0), T(4, 6))
        online = repo.store.get_online_features(
            ["customer_fv:spend", "customer_fv:categories", "merchant_fv:risk"],
            [{"customer_id": 1, "merchant_id": "m1"}, {"customer_id": 2, "merchant_id": "m2"}],
        ).to_dict()
        assert online["spend"] == [40.0, 100.0]
        assert online["categories"] == [[], None]
        assert online["risk"] == [0.3, 0.9]
        assert any(key.endswith(project_bytes) for key in client.scan_iter(count=1000))
    finally:
        repo.store.teardown()
        for key in client.scan_iter(count=1000):
            if key.endswith(project_bytes):
                client.delete(key)
    assert not any(key.endswith(project_bytes) for key in client.scan_iter(count=1000))


# -- the feast CLI ------------------------------------------------------------------------------
def test_feast_cli_apply_and_materialize_with_lakehouse_root_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the default use case's lakehouse under SLIPWAY_LAKEHOUSE_ROOT: <root>/fraud
    deployment_root = tmp_path / "lh_from_env"
    lakehouse = Lakehouse(deployment_root / "fraud")
    lakehouse.write("features.customer_stats", customer_table(CUSTOMER_ROWS), partition_by=["date"])
    repo_dir = tmp_path / "cli_repo"
    repo_dir.mkdir()
    (repo_dir / "feature_store.yaml").write_text(
        textwrap.dedent(
            f"""\
            project: cli_{uuid.uuid4().hex[:8]}
            registry: {tmp_path}/cli_registry.db
            provider: local
            offline_store:
              type: slipway.featurestore.delta_offline_store.DeltaOfflineStore
            online_store: {{type: sqlite, path: {tmp_path}/cli_online.db}}
            entity_key_serialization_version: 3
            """
        )
    )
    (repo_dir / "definitions.py").write_text(
        textwrap.dedent(
            """\
            from datetime import timedelta
            from feast import Entity, FeatureView, Field
            from feast.types import Array, Float64, Int64, String
            from feast.value_type import ValueType
            from slipway.featurestore import DeltaSource

            customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
            source = DeltaSource(
                table="features.customer_stats", timestamp_field="ts", created_timestamp_column="created_ts"
            )
            customer_fv = FeatureView(
                name="customer_fv",
                entities=[customer],
                ttl=timedelta(days=2),
                source=source,
                schema=[Field(name="spend", dtype=Float64), Field(name="categories", dtype=Array(String))],
            )
            """
        )
    )
    env = {**os.environ, "SLIPWAY_LAKEHOUSE_ROOT": str(deployment_root), "SLIPWAY_USECASE": "fraud"}
    feast_cli = str(Path(sys.executable).parent / "feast")
    for args in (["apply"], ["materialize", T(0).isoformat(), T(2, 12).isoformat()]):
        done = subprocess.run(
            [feast_cli, *args], cwd=repo_dir, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"feast {args[0]} failed:\n{done.stdout}\n{done.stderr}"

    monkeypatch.setenv("SLIPWAY_LAKEHOUSE_ROOT", str(deployment_root))
    store = FeatureStore(repo_path=str(repo_dir))
    assert store.config.offline_store.lakehouse_root is None
    online = store.get_online_features(
        ["customer_fv:spend", "customer_fv:categories"], [{"customer_id": 1}]
    ).to_dict()
    assert online["spend"] == [21.0] and online["categories"] == [["b"]]


def test_feast_cli_apply_rejects_a_source_with_a_missing_column(tmp_path: Path) -> None:
    lakehouse = Lakehouse(tmp_path / "lh")
    lakehouse.write("features.customer_stats", customer_table(CUSTOMER_ROWS))
    repo_dir = tmp_path / "bad_repo"
    # A relative lakehouse_root is relative to the feature repo, not the working directory.
    write_yaml(repo_dir, "bad_repo", "registry.db", "../lh", "{type: sqlite, path: online.db}")
    (repo_dir / "definitions.py").write_text(
        textwrap.dedent(
            """\
            from feast import Entity, FeatureView, Field
            from feast.types import Float64
            from slipway.featurestore import DeltaSource

            customer = Entity(name="customer", join_keys=["customer_id"])
            bad_fv = FeatureView(
                name="bad_fv",
                entities=[customer],
                source=DeltaSource(table="features.customer_stats", timestamp_field="when"),
                schema=[Field(name="spend", dtype=Float64)],
            )
            """
        )
    )
    feast_cli = str(Path(sys.executable).parent / "feast")
    done = subprocess.run(
        [feast_cli, "apply"], cwd=repo_dir, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "'when' is not a column of 'features.customer_stats'" in done.stdout + done.stderr


# -- streamed (chunked) retrieval -----------------------------------------------------------------
def chunked(job: Any, chunk_rows: int) -> pa.Table:
    parts = list(job.iter_arrow(chunk_rows))
    assert all(p.num_rows <= chunk_rows for p in parts)
    return pa.concat_tables(parts)


def scoring_entities() -> pd.DataFrame:
    """ENTITY_ROWS with a merchant and an amount each, in time order as a training set is."""
    merchants = ["m1", "m2", "m3"]
    df = entity_frame(ENTITY_ROWS)
    df["merchant_id"] = [merchants[i % 3] for i in range(len(df))]
    return df.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("shuffled", [False, True], ids=["time-ordered", "shuffled"])
def test_streamed_chunks_equal_the_whole_result_for_every_chunk_size(
    repo: Repo, shuffled: bool
) -> None:
    entity_df = scoring_entities()
    if shuffled:  # any order is allowed; only the memory bound relies on time order
        entity_df = entity_df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    job = repo.store.get_historical_features(entity_df, scoring)
    whole = job.to_arrow()
    assert whole.num_rows == len(entity_df)
    assert whole["row_label"].to_pylist() == list(entity_df["row_label"])
    expected = {f"row{i}": r[2] for i, r in enumerate(ENTITY_ROWS)}
    assert whole["spend"].to_pylist() == [expected[label] for label in entity_df["row_label"]]
    assert "amount_over_spend" in whole.column_names and "risk" in whole.column_names
    for chunk_rows in (1, 2, 3, 4, len(entity_df), 10 * len(entity_df)):
        assert chunked(job, chunk_rows).equals(whole), chunk_rows
    frame = job.to_df()  # Feast's own API on the same job agrees
    assert list(frame["row_label"]) == whole["row_label"].to_pylist()
    assert nan_to_none(frame["amount_over_spend"]) == whole["amount_over_spend"].to_pylist()


def test_ttl_and_ties_hold_across_chunk_edges(repo: Repo) -> None:
    # One entity row per chunk: customer 2's only row (T(1, 12)) is read in the first chunk and
    # must still be there three chunks later, exactly at the TTL edge, and gone one second on;
    # customer 1's rows at T(2) (a created-time tie) and T(4) fall exactly on entity times.
    rows = [
        (2, T(1, 12)),
        (1, T(2)),
        (2, T(2)),
        (1, T(3)),
        (2, T(3, 12)),
        (2, T(3, 12, 0, 1)),
        (1, T(4)),
        (1, T(6, 0, 0, 1)),  # T(4) + 2 days + 1 s: past customer 1's TTL
    ]
    entity_df = pd.DataFrame(
        {"customer_id": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows]}
    )
    job = repo.store.get_historical_features(
        entity_df, ["customer_fv:spend", "customer_fv:categories"]
    )
    expected_spend = [100.0, 21.0, 100.0, 21.0, 100.0, None, 40.0, None]
    expected_categories = [None, ["b"], None, ["b"], None, None, [], None]
    for chunk_rows in (1, 2, 3, len(rows)):
        out = chunked(job, chunk_rows)
        assert out["spend"].to_pylist() == expected_spend, chunk_rows
        assert out["categories"].to_pylist() == expected_categories, chunk_rows
        assert out["event_timestamp"].to_pylist() == [r[1] for r in rows]


def test_streamed_join_on_a_key_unique_per_row(tmp_path: Path) -> None:
    # The other table shape: one feature row per event, keyed by the event's own id, with the
    # state stamped just before it. Each entity row must get exactly its own row, in any chunk.
    lakehouse = Lakehouse(tmp_path / "lakehouse")
    n = 50
    times = [T(1) + dt.timedelta(hours=3 * i) for i in range(n)]
    lakehouse.write(
        "features.event_state",
        pa.table(
            {
                "event_id": pa.array([f"e{i:03d}" for i in range(n)]),
                "ts": pa.array([t - dt.timedelta(microseconds=1) for t in times], TS),
                "state": pa.array([float(i) for i in range(n)]),
                "date": pa.array([t.date() for t in times], pa.date32()),
            }
        ),
        partition_by=["date"],
    )
    event = Entity(name="event", join_keys=["event_id"], value_type=ValueType.STRING)
    source = DeltaSource(
        name="event_state",
        table="features.event_state",
        timestamp_field="ts",
        date_partition_column="date",
    )
    view = FeatureView(
        name="event_fv",
        entities=[event],
        ttl=dt.timedelta(days=30),
        source=source,
        schema=[Field(name="event_id", dtype=String), Field(name="state", dtype=Float64)],
    )
    path = tmp_path / "repo"
    write_yaml(
        path,
        f"ev_{uuid.uuid4().hex[:8]}",
        f"{tmp_path}/registry.db",
        f"{tmp_path}/lakehouse",
        f"{{type: sqlite, path: {tmp_path}/online.db}}",
    )
    store = FeatureStore(repo_path=str(path))
    store.apply([event, source, view])
    entity_df = pd.DataFrame(
        {"event_id": [*(f"e{i:03d}" for i in range(n)), "e999"], "event_timestamp": [*times, T(9)]}
    )
    job = store.get_historical_features(entity_df, ["event_fv:state"])
    for chunk_rows in (1, 7, n + 1):
        out = chunked(job, chunk_rows)
        assert out["state"].to_pylist() == [float(i) for i in range(n)] + [None], chunk_rows

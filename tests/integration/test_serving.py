"""Online scoring, end to end on the session's real world: HTTP, validation, reloads, parity.

The key claim is that online scoring is batch scoring done one transaction at a time: for the
same transactions and the same feature state, the online path returns the scores (and the model
inputs) that batch scoring stored in ``scoring.predictions``/``scoring.inputs``. The online store
is rebuilt on a private copy of the world to hold the state as of the end of day D-1, and each
customer's first transaction of day D is scored, which is exactly when the online state equals
the point-in-time state the batch path used.

The session ``pipeline`` world is read-only; tests that change data work on a copy.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from slipway.lakehouse import Lakehouse
from slipway.registry.store import ModelRegistry
from slipway.serving.app import create_app
from slipway.serving.features import make_reader
from slipway.serving.request import fraud_parser, spark_round
from slipway.serving.scorer import OnlineScorer
from slipway.usecases.fraud import MODEL
from slipway.usecases.fraud.landing import TRANSACTION_FIELDS
from tests.support.pipeline import PipelineData, env_for, slipway_env
from tests.support.pipeline import copy_world as copy_built_world
from tests.support.servers import free_port, terminate

ROOT = Path(__file__).resolve().parents[2]
LANDED = [f.name for f in TRANSACTION_FIELDS]
UTC = dt.UTC


# -- helpers ------------------------------------------------------------------------------------
def landed(row: dict[str, Any]) -> dict[str, Any]:
    """A silver transaction row as the upstream lands it (JSON types, ISO UTC time)."""
    out = {k: row[k] for k in LANDED}
    out["event_time"] = pd.Timestamp(row["event_time"]).isoformat()
    out["received_at"] = pd.Timestamp(row["received_at"]).isoformat()
    out["amount"] = float(row["amount"])
    return out


def day_transactions(lakehouse: Lakehouse, day: dt.date) -> pd.DataFrame:
    return lakehouse.read("silver.transactions", dates=(day, day)).to_pandas()


def copy_world(pipeline: PipelineData, target: Path) -> Path:
    copy_built_world(pipeline.data_dir, target, ignore=("landing",))
    return target


def same(a: Any, b: Any) -> bool:
    """Equality for feature values: None/NaN alike, sequences element-wise, floats to 1e-9."""
    a_null = a is None or (isinstance(a, float) and math.isnan(a))
    b_null = b is None or (isinstance(b, float) and math.isnan(b))
    if a_null or b_null:
        return a_null and b_null
    if isinstance(a, list | tuple | np.ndarray) or isinstance(b, list | tuple | np.ndarray):
        return list(a) == list(b)
    if isinstance(a, int | float | np.number) and isinstance(b, int | float | np.number):
        return abs(float(a) - float(b)) <= 1e-9
    return a == b


@pytest.fixture(scope="module")
def client(pipeline: PipelineData) -> Iterator[TestClient]:
    """The HTTP app on the session world (read-only: scoring writes nothing)."""
    with slipway_env(pipeline.data_dir), TestClient(create_app(OnlineScorer.from_env)) as c:
        yield c


@pytest.fixture(scope="module")
def sample(pipeline: PipelineData) -> list[dict[str, Any]]:
    tx = day_transactions(Lakehouse(pipeline.lakehouse_root), pipeline.end)
    return [landed(r) for r in tx.head(20).to_dict("records")]


# -- request parsing: silver's rules, silver's arithmetic ---------------------------------------
def test_request_fields_match_silver(pipeline: PipelineData) -> None:
    """Normalisation and amount_eur exactly as silver computed them, for a whole day."""
    tx = day_transactions(Lakehouse(pipeline.lakehouse_root), pipeline.end)
    parser = fraud_parser()
    for row in tx.to_dict("records"):
        record = landed(row)
        record["customer_id"] = f"  {record['customer_id'].lower()} "
        record["channel"] = record["channel"].upper()
        prepared = parser.parse(record)
        assert prepared.values["customer_id"] == row["customer_id"]
        assert prepared.values["channel"] == row["channel"]
        assert prepared.request["amount_eur"] == row["amount_eur"], row["transaction_id"]
        event = pd.Timestamp(row["event_time"])
        assert prepared.request["event_epoch"] == event.value // 1000 / 1e6
    # Sail rounds half away from zero after scaling; Python's round() would say 1873.714.
    assert spark_round(1601.465 * 1.17, 4) == 1873.7141


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"customer_id": None}, "customer_id", "not_null"),
        ({"amount": -5.0}, "amount", "greater_than"),
        ({"amount": "lots"}, "amount", "parses_as_double"),
        ({"currency": "XYZ"}, "currency", "isin"),
        ({"channel": "fax"}, "channel", "isin"),
        ({"event_time": "yesterday at noon"}, "event_time", "parses_as_timestamp"),
        ({"merchant_category": "55"}, "merchant_category", "str_matches"),
        ({"amount": 30_000.0, "currency": "EUR"}, "amount_eur", "amount_eur_at_most_25000"),
    ],
)
def test_malformed_transaction_is_422_naming_field_and_rule(
    client: TestClient, sample: list[dict[str, Any]], change: dict, field: str, rule: str
) -> None:
    body = {**sample[0], **change}
    response = client.post("/score", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert {"field": field, "rule": rule} in [
        {"field": e["field"], "rule": e["rule"]} for e in errors
    ]
    assert field in response.json()["detail"]


def test_missing_field_bad_json_and_bad_batch(
    client: TestClient, sample: list[dict[str, Any]]
) -> None:
    body = {k: v for k, v in sample[0].items() if k != "device_id"}
    response = client.post("/score", json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "device_id",
        "rule": "required_field_present",
        "message": "required field absent",
    }
    response = client.post(
        "/score", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "not valid JSON" in response.json()["detail"]
    assert client.post("/score", json=[sample[0]]).status_code == 400
    bad = [sample[0], {**sample[1], "amount": -1.0}, sample[2]]
    response = client.post("/score/batch", json=bad)
    assert response.status_code == 422
    assert response.json()["index"] == 1
    assert response.json()["errors"][0]["field"] == "amount"


# -- HTTP service on the session world ----------------------------------------------------------
def test_http_score_batch_health_and_model(
    client: TestClient, pipeline: PipelineData, sample: list[dict[str, Any]]
) -> None:
    registry = ModelRegistry(Lakehouse(pipeline.lakehouse_root))
    record = registry.get(MODEL.name, registry.alias(MODEL.name, "champion"))

    one = client.post("/score", json=sample[0])
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["transaction_id"] == sample[0]["transaction_id"]
    assert 0.0 <= body["score"] <= 1.0
    assert body["model_version"] == record.version and body["model_name"] == MODEL.name
    assert body["threshold"] == record.metrics["threshold_at_precision"]
    assert body["flagged"] == (body["score"] >= body["threshold"])
    assert {"features", "model", "total"} <= set(body["timing_ms"])

    batch = client.post("/score/batch", json={"transactions": sample[:5]})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["transaction_id"] for r in results] == [t["transaction_id"] for t in sample[:5]]
    assert results[0]["score"] == body["score"]  # batch and single score the same
    assert client.post("/score/batch", json=[]).json()["count"] == 0

    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_version"] == record.version
    assert health["feature_service"] == MODEL.feature_service
    assert health["online_store"] == "sqlite" and health["features_ready"]

    model = client.get("/model").json()
    assert model["version"] == record.version
    assert model["model_sha256"] == record.model_sha256
    assert model["metrics"]["threshold_at_precision"] == record.metrics["threshold_at_precision"]


def test_unknown_customer_and_merchant_are_scored_with_defaults_flagged(
    client: TestClient, sample: list[dict[str, Any]]
) -> None:
    body = {**sample[0], "customer_id": "C99999999", "merchant_id": "M99999999"}
    response = client.post("/score", params={"features": "true"}, json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert 0.0 <= out["score"] <= 1.0
    missing = {m["feature"]: m for m in out["missing_features"]}
    for name, default in MODEL.missing_defaults.items():
        assert missing[name]["used"] == default
        assert "customer_behaviour" in missing[name]["reason"]
    for name in ("amount_avg_30d", "merchant_fraud_rate_30d", "segment", "account_age_days"):
        assert missing[name]["used"] is None, name
    assert "merchant_risk" in missing["merchant_fraud_rate_30d"]["reason"]
    # Features the request itself supplies are never reported missing.
    assert not {"amount_eur", "channel", "merchant_category", "hour_of_day"} & set(missing)
    assert out["features"]["is_new_device"] == 1.0  # everything is new for an unknown customer


@pytest.mark.parametrize("feature_path", ["direct", "feast"])
def test_online_store_failure_degrades_to_missing_features(
    pipeline: PipelineData, sample: list[dict[str, Any]], feature_path: str
) -> None:
    """Nothing listens on 127.0.0.1:1: every stored feature is missing, with the reason."""
    broken = {"SLIPWAY_FEAST_ONLINE": "redis://127.0.0.1:1/0"}
    with slipway_env(pipeline.data_dir, broken):
        scorer = OnlineScorer.from_env(feature_path=feature_path)
    scorer.warm_up()  # fails (redis-py retries for ~5 s) and opens the breaker
    assert "warm-up" in (scorer.health()["online_store_degraded"] or "")
    scorer.guard.reset()  # let the first request try the store itself
    started = time.monotonic()
    result = scorer.score(sample[0])
    assert time.monotonic() - started < 3.0  # the read deadline, not redis-py's retries
    assert 0.0 <= result.score <= 1.0
    assert result.warnings and "online store" in result.warnings[0]
    missing = {m.feature: m.reason for m in result.missing_features}
    assert {"txn_count_24h", "merchant_fraud_rate_30d", "segment"} <= set(missing)
    assert all("online store" in reason for reason in missing.values()), missing
    # Within the cooldown the store is not asked again: the next call is fast and says so.
    started = time.monotonic()
    again = scorer.score(sample[1])
    assert time.monotonic() - started < 1.0
    assert "skipping the store" in again.warnings[0]


def test_no_champion_is_503(tmp_path: Path, sample: list[dict[str, Any]]) -> None:
    empty = tmp_path / "empty"
    with slipway_env(empty):
        scorer = OnlineScorer.from_env()
    with TestClient(create_app(lambda: scorer)) as c:
        response = c.post("/score", json=sample[0])
        assert response.status_code == 503
        assert "no champion" in response.json()["detail"]
        assert c.get("/model").status_code == 503
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "no_champion"
        # Validation still comes first: a bad transaction is the caller's problem either way.
        assert c.post("/score", json={**sample[0], "amount": -1}).status_code == 422


def test_champion_reload_follows_promote_and_rollback(
    pipeline: PipelineData, tmp_path: Path, sample: list[dict[str, Any]]
) -> None:
    world = copy_world(pipeline, tmp_path / "world")
    lakehouse = Lakehouse(world / "lakehouse")
    registry = ModelRegistry(lakehouse)
    v1 = registry.alias(MODEL.name, "champion")
    original = registry.get(MODEL.name, v1)
    import lightgbm as lgb

    shorter = lgb.Booster(model_str=registry.load_text(MODEL.name, v1)).model_to_string(
        num_iteration=25
    )
    v2 = registry.register(
        MODEL.name,
        shorter,
        metrics={**original.metrics, "threshold_at_precision": 0.123},
        params=original.params,
        features=original.features,
        device="cpu",
        training_set=original.training_set,
        upstream_versions=original.upstream_versions,
        run_id="test-serving",
    ).version
    with slipway_env(world):
        scorer = OnlineScorer.from_env(reload_every=0.0)
    with TestClient(create_app(lambda: scorer)) as c:
        first = c.post("/score", json=sample[0]).json()
        assert first["model_version"] == v1
        registry.promote(MODEL.name, v2, reason="test: promote the short model")
        second = c.post("/score", json=sample[0]).json()
        assert second["model_version"] == v2 and second["threshold"] == 0.123
        assert second["score"] != first["score"]
        assert c.get("/health").json()["model_version"] == v2
        assert registry.rollback(MODEL.name, reason="test: roll back") == v1
        third = c.post("/score", json=sample[0]).json()
        assert third["model_version"] == v1 and third["score"] == first["score"]


def test_reload_checks_are_rate_limited(pipeline: PipelineData, tmp_path: Path) -> None:
    world = copy_world(pipeline, tmp_path / "world")
    registry = ModelRegistry(Lakehouse(world / "lakehouse"))
    with slipway_env(world):
        scorer = OnlineScorer.from_env(reload_every=3600.0)
    scorer.warm_up()
    v1 = scorer.champions.current().version
    registry.set_alias(MODEL.name, "champion", None, reason="test: clear")
    assert scorer.champions.current().version == v1  # not re-checked within the hour
    assert scorer.champions.refresh(force=True)
    with pytest.raises(Exception, match="no champion"):
        scorer.champions.current()


def test_real_uvicorn_serves_and_stops(
    pipeline: PipelineData, sample: list[dict[str, Any]]
) -> None:
    port = free_port()
    env = {**os.environ, **env_for(pipeline.data_dir)}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "slipway.serving.app:app"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:] if proc.stdout else ""
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "uvicorn did not answer /health in 90 s"
            time.sleep(0.25)
        response = httpx.post(f"{base}/score", json=sample[0], timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] >= 1
        assert httpx.post(f"{base}/score", json={"amount": 1}, timeout=30).status_code == 422
    finally:
        terminate(proc)
    assert proc.returncode is not None


# -- parity with batch scoring ------------------------------------------------------------------
@dataclass
class DayWorld:
    data_dir: Path
    day: dt.date
    transactions: pd.DataFrame  # each customer's first transaction of ``day``
    records: list[dict[str, Any]]


def reset_online_store(store) -> list:
    """Empty the online store through Feast's OnlineStore API (drop, then recreate tables)."""
    views = store.list_feature_views()
    online = store._get_provider().online_store
    online.teardown(store.config, views, [])
    online.update(store.config, [], views, [], store.list_entities(), partial=False)
    return views


def materialize_until(store, day: dt.date) -> None:
    """Online state as of the first instant of ``day``.

    Customer state: rows up to the end of ``day - 1`` only. Merchant risk (stamped at the start
    of each day, known all day) and customer profiles (valid from signup): up to ``day``'s end.
    """
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    start_of_day = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
    end_of_day = start_of_day + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    store.materialize(epoch, start_of_day - dt.timedelta(microseconds=1), ["customer_behaviour"])
    store.materialize(epoch, end_of_day, ["merchant_risk", "customer_profile"])


@pytest.fixture(scope="module")
def day_world(pipeline: PipelineData, tmp_path_factory: pytest.TempPathFactory) -> DayWorld:
    """A copy of the world whose online store holds the state as of the start of the last day."""
    world = copy_world(pipeline, tmp_path_factory.mktemp("serving") / "world")
    day = pipeline.end
    with slipway_env(world):
        from slipway.featurestore.store import open_store

        store = open_store()
        reset_online_store(store)
        materialize_until(store, day)
    tx = day_transactions(Lakehouse(world / "lakehouse"), day)
    tx = tx.sort_values(["event_time", "transaction_id"]).drop_duplicates("customer_id")
    tx = tx.reset_index(drop=True)
    return DayWorld(world, day, tx, [landed(r) for r in tx.to_dict("records")])


@pytest.mark.parametrize("feature_path", ["direct", "feast"])
def test_online_scores_equal_batch_scores(day_world: DayWorld, feature_path: str) -> None:
    lakehouse = Lakehouse(day_world.data_dir / "lakehouse")
    day = day_world.day
    with slipway_env(day_world.data_dir):
        scorer = OnlineScorer.from_env(feature_path=feature_path)
        results = scorer.score_many(day_world.records, include_features=True)
    assert len(results) == len(day_world.records) > 100

    predictions = lakehouse.read("scoring.predictions", dates=(day, day)).to_pandas()
    champion = predictions[predictions["role"] == "champion"].set_index("transaction_id")
    inputs = lakehouse.read("scoring.inputs", dates=(day, day)).to_pandas()
    inputs = inputs.set_index("transaction_id")

    online = pd.DataFrame(
        {
            "transaction_id": [r.transaction_id for r in results],
            "score": [r.score for r in results],
            "model_version": [r.model_version for r in results],
            "flagged": [r.flagged for r in results],
        }
    ).set_index("transaction_id")
    batch = champion.loc[online.index]
    assert (online["model_version"] == batch["model_version"]).all()
    np.testing.assert_allclose(online["score"], batch["score"], rtol=0, atol=1e-9)
    assert (online["flagged"] == batch["flagged"]).all()

    mismatches = []
    for result in results:
        stored = inputs.loc[result.transaction_id]
        for name in MODEL.features:
            if not same(result.features[name], stored[name]):
                mismatches.append(
                    (result.transaction_id, name, result.features[name], stored[name])
                )
    assert not mismatches, mismatches[:10]


def test_direct_reader_returns_what_get_online_features_returns(day_world: DayWorld) -> None:
    """The lean path (online_read + the same function) equals Feast's own call, value for value,
    for every feature of the service, including the arrays and ints the model does not read."""
    parser = fraud_parser()
    rows = []
    for record in day_world.records[:150]:
        p = parser.parse(record)
        rows.append(
            {
                **p.request,
                "customer_id": p.values["customer_id"],
                "merchant_id": p.values["merchant_id"],
            }
        )
    rows.append({**rows[0], "customer_id": "C99999999"})  # unknown customer
    rows.append({**rows[1], "merchant_id": "M99999999"})  # unknown merchant
    rows.append(dict(rows[2]))  # a repeated entity
    with slipway_env(day_world.data_dir):
        from slipway.featurestore.store import open_store

        store = open_store()
        feast = make_reader("feast", store, MODEL.feature_service).read(rows)
        direct = make_reader("direct", store, MODEL.feature_service).read(rows)
    assert list(direct.values) == list(feast.values)
    assert len(direct.values) > len(MODEL.features)  # not only model features
    diffs = [
        (name, i, a, b)
        for name in feast.values
        for i, (a, b) in enumerate(zip(feast.values[name], direct.values[name], strict=True))
        if not same(a, b) or type(a) is not type(b)
    ]
    assert not diffs, diffs[:10]
    assert direct.reasons[-3] and direct.reasons[-3] == feast.reasons[-3]


def test_direct_reader_applies_the_ttl_feast_online_ignores(day_world: DayWorld) -> None:
    """A customer silent for longer than customer_behaviour's 30-day TTL: batch (point-in-time)
    sees no state, Feast's online call would serve the stale state; the direct path agrees with
    batch and says why."""
    late = {**day_world.records[0], "transaction_id": "tx_late"}
    late["event_time"] = (pd.Timestamp(late["event_time"]) + pd.Timedelta(days=45)).isoformat()
    with slipway_env(day_world.data_dir):
        direct = OnlineScorer.from_env(feature_path="direct").score(late, include_features=True)
        feast = OnlineScorer.from_env(feature_path="feast").score(late, include_features=True)
    missing = {m.feature: m.reason for m in direct.missing_features}
    assert "expired" in missing["txn_count_30d"] and "TTL" in missing["txn_count_30d"]
    assert "expired" in missing["merchant_fraud_rate_30d"]  # merchant_risk's TTL is 2 days
    assert feast.features["txn_count_30d"] is not None  # stale, yet served by Feast
    assert direct.features["txn_count_30d"] is None


def test_redis_online_store_gives_the_same_features(
    day_world: DayWorld, redis_url: str, tmp_path: Path
) -> None:
    """The production online store (Redis) through both paths equals SQLite, value for value."""
    project = f"slipway_test_{uuid.uuid4().hex[:8]}"
    extra = {
        "SLIPWAY_FEAST_ONLINE": f"redis://{redis_url}/0",
        "SLIPWAY_FEAST_PROJECT": project,
        "SLIPWAY_FEAST_REGISTRY": str(tmp_path / "registry.db"),
    }
    import redis

    from slipway.featurestore.store import apply_repo, open_store

    host, port = redis_url.split(":")
    client = redis.Redis(host=host, port=int(port), db=0)
    parser = fraud_parser()
    rows = []
    for record in day_world.records[:100]:
        p = parser.parse(record)
        rows.append(
            {
                **p.request,
                "customer_id": p.values["customer_id"],
                "merchant_id": p.values["merchant_id"],
            }
        )
    try:
        with slipway_env(day_world.data_dir, extra):
            store = open_store()
            apply_repo(store)
            materialize_until(store, day_world.day)
            on_redis = make_reader("direct", store, MODEL.feature_service).read(rows)
            feast_redis = make_reader("feast", store, MODEL.feature_service).read(rows)
            assert store.config.online_store.type == "redis"
        with slipway_env(day_world.data_dir):
            on_sqlite = make_reader("direct", open_store(), MODEL.feature_service).read(rows)
    finally:
        keys = list(client.scan_iter(match=f"*{project}"))
        if keys:
            client.delete(*keys)
    assert list(client.scan_iter(match=f"*{project}")) == []
    for name in on_sqlite.values:
        for a, b, c in zip(
            on_sqlite.values[name], on_redis.values[name], feast_redis.values[name], strict=True
        ):
            assert same(a, b) and same(b, c), (name, a, b, c)

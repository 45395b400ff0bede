"""Online scoring, end to end on the session's real world: HTTP, validation, reloads, parity.

The key claim is that online scoring is batch scoring done one transaction at a time: every
transaction of a whole day, replayed in arrival order through ``OnlineScorer`` (window features
from the aggregator seeded with the days before, slow features from the online store as
materialized for the day), gets exactly the features batch scoring stored in ``scoring.inputs``
(and the offline row of ``features.customer_behaviour``) and the score it stored in
``scoring.predictions``: first transactions of the day, bursts, late arrivals and redeliveries
alike, on the embedded aggregator and on Redis.

The session ``pipeline`` world is read-only (scoring records events in the window state, which
lives in a per-module directory here); tests that change data work on a copy.
"""

from __future__ import annotations

import datetime as dt
import json
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
from slipway.serving.request import spark_round
from slipway.serving.schema import ScoreOut, score_body
from slipway.serving.scorer import OnlineScorer
from slipway.usecases.fraud import CUSTOMER_WINDOWS, MODEL
from slipway.usecases.fraud.landing import TRANSACTION_FIELDS
from slipway.usecases.fraud.request import fraud_parser
from tests.support.pipeline import PipelineData, env_for, slipway_env
from tests.support.pipeline import copy_world as copy_built_world
from tests.support.records import landed_transaction
from tests.support.servers import free_port, terminate

ROOT = Path(__file__).resolve().parents[2]
# With no API keys the app answers only requests that arrive on a loopback address.
LOOPBACK = "http://127.0.0.1"
LANDED = [f.name for f in TRANSACTION_FIELDS]
UTC = dt.UTC


# -- helpers ------------------------------------------------------------------------------------
landed = landed_transaction


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


@pytest.fixture(scope="module", autouse=True)
def private_window_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Scoring records events in the window state: keep it out of the read-only session world."""
    folder = tmp_path_factory.mktemp("windows")
    previous = os.environ.get("SLIPWAY_WINDOWS_DIR")
    os.environ["SLIPWAY_WINDOWS_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("SLIPWAY_WINDOWS_DIR", None)
    else:
        os.environ["SLIPWAY_WINDOWS_DIR"] = previous


@pytest.fixture(scope="module")
def client(pipeline: PipelineData) -> Iterator[TestClient]:
    """The HTTP app on the session world (read-only: scoring writes nothing)."""
    with (
        slipway_env(pipeline.data_dir),
        TestClient(create_app(OnlineScorer.from_env), base_url=LOOPBACK) as c,
    ):
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

    assert client.get("/health").json() == {"status": "up"}  # open to probes: nothing more
    health = client.get("/health/details").json()
    assert health["status"] == "ok" and health["model_version"] == record.version
    assert health["feature_service"] == MODEL.feature_service
    assert health["online_store"] == "sqlite" and health["features_ready"]

    model = client.get("/model").json()
    assert model["version"] == record.version
    assert model["model_sha256"] == record.model_sha256
    assert model["metrics"]["threshold_at_precision"] == record.metrics["threshold_at_precision"]


def test_score_body_is_what_the_response_model_gives(
    client: TestClient, pipeline: PipelineData, sample: list[dict[str, Any]]
) -> None:
    """/score encodes ScoreOut's fields directly; they must equal FastAPI's response-model pass
    (validate ``as_dict``, dump its set fields), with and without features, missing features
    (an unknown customer) included."""
    unknown = {**sample[1], "customer_id": f"C9{uuid.uuid4().int % 10**9:09d}"}  # no state
    with slipway_env(pipeline.data_dir):
        scorer = OnlineScorer.from_env()
        results = scorer.score_many([sample[0], unknown], include_features=True)
    assert results[1].missing_features  # the case that has them
    for result in results:
        for features in (False, True):
            expected = ScoreOut.model_validate(result.as_dict(features)).model_dump(
                mode="json", exclude_unset=True
            )
            assert json.loads(json.dumps(score_body(result, features))) == expected
    for record, query in ((sample[2], ""), (unknown, "?features=true")):
        answer = client.post(f"/score{query}", json={**record, "transaction_id": uuid.uuid4().hex})
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert body == ScoreOut.model_validate(body).model_dump(mode="json", exclude_unset=True)
        assert ("features" in body) == bool(query) and "window_features" not in body


def test_unknown_customer_and_merchant_are_scored_with_defaults_flagged(
    client: TestClient, sample: list[dict[str, Any]]
) -> None:
    body = {**sample[0], "customer_id": "C99999999", "merchant_id": "M99999999"}
    response = client.post("/score", params={"features": "true"}, json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert 0.0 <= out["score"] <= 1.0
    missing = {m["feature"]: m for m in out["missing_features"]}
    # A customer without history has empty windows: counts and sums are 0, not missing.
    for name in MODEL.missing_defaults:
        assert out["features"][name] == 0 and name not in missing, name
    for name in ("amount_avg_30d", "merchant_fraud_rate_30d", "segment", "account_age_days"):
        assert missing[name]["used"] is None, name
    assert "no earlier event in the window" in missing["amount_avg_30d"]["reason"]
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
    assert {"merchant_fraud_rate_30d", "segment"} <= set(missing)
    stored = {n: r for n, r in missing.items() if n not in CUSTOMER_WINDOWS.feature_names}
    assert all("online store" in reason for reason in stored.values()), stored
    # Window features do not live in Feast's online store: the aggregator still answers.
    assert not {"txn_count_24h", "amount_sum_1h"} & set(missing)
    # Within the cooldown the store is not asked again: the next call is fast and says so.
    started = time.monotonic()
    again = scorer.score(sample[1])
    assert time.monotonic() - started < 1.0
    assert "skipping the store" in again.warnings[0]


def test_window_store_outage_gives_declared_defaults_flagged(
    pipeline: PipelineData, sample: list[dict[str, Any]]
) -> None:
    """Redis (the production window store) unreachable: every window feature is scored with its
    declared default or as missing, each flagged with the reason; nothing raises, and within the
    cooldown the store is not asked again."""
    with slipway_env(pipeline.data_dir, {"SLIPWAY_WINDOWS_URL": "redis://127.0.0.1:1/0"}):
        scorer = OnlineScorer.from_env()
    started = time.monotonic()
    result = scorer.score(sample[0], include_features=True)
    assert time.monotonic() - started < 3.0
    assert 0.0 <= result.score <= 1.0
    missing = {m.feature: m for m in result.missing_features}
    for name in CUSTOMER_WINDOWS.feature_names:
        if name in MODEL.features:
            assert "window state unavailable" in missing[name].reason, name
            assert missing[name].used == MODEL.missing_defaults.get(name), name
    assert any("not recorded in the window state" in w for w in result.warnings)
    assert "merchant_fraud_rate_30d" not in missing  # the Feast online store still answers
    started = time.monotonic()
    again = scorer.score(sample[1])
    assert time.monotonic() - started < 1.0
    assert any("skipping the window store" in w for w in again.warnings)
    assert scorer.health()["window_store_degraded"]


def test_no_champion_is_503(tmp_path: Path, sample: list[dict[str, Any]]) -> None:
    empty = tmp_path / "empty"
    with slipway_env(empty):
        scorer = OnlineScorer.from_env()
    with TestClient(create_app(lambda: scorer), base_url=LOOPBACK) as c:
        response = c.post("/score", json=sample[0])
        assert response.status_code == 503
        assert "no champion" in response.json()["detail"]
        assert c.get("/model").status_code == 503
        health = c.get("/health")
        assert health.status_code == 503 and health.json() == {"status": "down"}
        assert c.get("/health/details").json()["status"] == "no_champion"
        # Validation still comes first: a bad transaction is the caller's problem either way.
        assert c.post("/score", json={**sample[0], "amount": -1}).status_code == 422


def test_champion_reload_follows_promote_and_rollback(
    pipeline: PipelineData, tmp_path: Path, sample: list[dict[str, Any]]
) -> None:
    world = copy_world(pipeline, tmp_path / "world")
    lakehouse = Lakehouse(world / "lakehouse" / "fraud")
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
    with TestClient(create_app(lambda: scorer), base_url=LOOPBACK) as c:
        first = c.post("/score", json=sample[0]).json()
        assert first["model_version"] == v1
        registry.promote(MODEL.name, v2, reason="test: promote the short model")
        second = c.post("/score", json=sample[0]).json()
        assert second["model_version"] == v2 and second["threshold"] == 0.123
        assert second["score"] != first["score"]
        assert c.get("/health/details").json()["model_version"] == v2
        assert registry.rollback(MODEL.name, reason="test: roll back") == v1
        third = c.post("/score", json=sample[0]).json()
        assert third["model_version"] == v1 and third["score"] == first["score"]


def test_reload_checks_are_rate_limited(pipeline: PipelineData, tmp_path: Path) -> None:
    world = copy_world(pipeline, tmp_path / "world")
    registry = ModelRegistry(Lakehouse(world / "lakehouse" / "fraud"))
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
            *(sys.executable, "-m", "slipway.serving"),  # what `make serve` runs
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


# -- parity with batch scoring, every event of a whole day ----------------------------------------
@dataclass
class DayWorld:
    data_dir: Path
    day: dt.date
    transactions: pd.DataFrame  # every transaction of ``day``, in arrival order
    records: list[dict[str, Any]]


def reset_online_store(store) -> list:
    """Empty the online store through Feast's OnlineStore API (drop, then recreate tables)."""
    views = store.list_feature_views()
    online = store._get_provider().online_store
    online.teardown(store.config, views, [])
    online.update(store.config, [], views, [], store.list_entities(), partial=False)
    return views


def materialize_until(store, day: dt.date) -> None:
    """The slow features as the online store holds them during ``day``: merchant risk (stamped at
    the start of each day, known all day) and customer profiles (valid from signup). Window
    features are not materialized: the aggregator serves them."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    start_of_day = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
    end_of_day = start_of_day + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    store.materialize(epoch, end_of_day, ["merchant_risk", "customer_profile"])


@pytest.fixture(scope="module")
def day_world(pipeline: PipelineData, tmp_path_factory: pytest.TempPathFactory) -> DayWorld:
    """A copy of the world whose online store holds the slow features of the last day."""
    world = copy_world(pipeline, tmp_path_factory.mktemp("serving") / "world")
    day = pipeline.end
    with slipway_env(world):
        from slipway.featurestore.store import open_store

        store = open_store()
        reset_online_store(store)
        materialize_until(store, day)
    tx = day_transactions(Lakehouse(world / "lakehouse" / "fraud"), day)
    tx = tx.sort_values(["received_at", "transaction_id"]).reset_index(drop=True)
    return DayWorld(world, day, tx, [landed(r) for r in tx.to_dict("records")])


def window_scorer(
    world: DayWorld, feature_path: str, windows_url: str, state: Path, feature_set=CUSTOMER_WINDOWS
) -> OnlineScorer:
    """A scorer on ``world`` whose window state (``state`` dir, or a unique Redis namespace) is
    seeded with the days before ``world.day``, as a fresh consumer would be bootstrapped."""
    from slipway.serving.features import WindowFeatureReader
    from slipway.windows import open_aggregator
    from slipway.windows.seeding import seed_until

    namespace = f"slipway:test:{uuid.uuid4().hex}"
    extra = {
        "SLIPWAY_WINDOWS_URL": windows_url,
        "SLIPWAY_WINDOWS_DIR": str(state),
        "SLIPWAY_WINDOWS_NAMESPACE": namespace,
    }
    with slipway_env(world.data_dir, extra):
        scorer = OnlineScorer.from_env(feature_path=feature_path)
    aggregator = open_aggregator(
        feature_set, windows_url or None, namespace=namespace, path=state / "state.sqlite"
    )
    report = seed_until(aggregator, Lakehouse(world.data_dir / "lakehouse" / "fraud"), world.day)
    assert report.added == report.rows > 1000
    scorer.windows = WindowFeatureReader([feature_set], lambda fs: aggregator)
    scorer._reader = None  # re-plan with this reader's provided views
    return scorer


def drop_window_state(scorer: OnlineScorer) -> None:
    for agg in scorer.windows._aggregators.values():
        if hasattr(agg, "delete_state"):
            agg.delete_state()
    scorer.windows.close()


def relative_same(a: Any, b: Any) -> bool:
    """Counts and categories exactly, floats within 1e-9 relative, None/NaN alike."""
    a_null = a is None or (isinstance(a, float) and math.isnan(a))
    b_null = b is None or (isinstance(b, float) and math.isnan(b))
    if a_null or b_null:
        return a_null and b_null
    if isinstance(a, list | tuple | np.ndarray) or isinstance(b, list | tuple | np.ndarray):
        return list(a) == list(b)
    if isinstance(a, float | np.floating) or isinstance(b, float | np.floating):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def feature_mismatches(
    world: DayWorld, results: list, window_names: tuple[str, ...]
) -> list[tuple[str, str, Any, Any]]:
    """Every (transaction, feature) where the online value differs from the offline one: model
    inputs against ``scoring.inputs``, window features against ``features.customer_behaviour``."""
    lakehouse = Lakehouse(world.data_dir / "lakehouse" / "fraud")
    inputs = lakehouse.read("scoring.inputs", dates=(world.day, world.day)).to_pandas()
    inputs = inputs.set_index("transaction_id")
    offline = lakehouse.read("features.customer_behaviour", dates=(world.day, world.day))
    rows = {r["transaction_id"]: r for r in offline.to_pylist()}
    out = []
    for result in results:
        stored = inputs.loc[result.event_id]
        for name in MODEL.features:
            if not relative_same(result.features[name], stored[name]):
                out.append((result.event_id, name, result.features[name], stored[name]))
        row = rows[result.event_id]
        served = result.window_features
        for name in window_names:
            if not relative_same(served[name], row[name]):
                out.append((result.event_id, name, served[name], row[name]))
    return out


def replay(scorer: OnlineScorer, records: list[dict[str, Any]]) -> list:
    """Each transaction on its own, in arrival order, as the stream consumer scores them."""
    results = []
    for record in records:
        result = scorer.score(record, include_features=True)
        assert not any("unavailable" in m.reason for m in result.missing_features), result
        results.append(result)
    return results


def test_the_replayed_day_is_not_only_first_transactions(day_world: DayWorld) -> None:
    tx = day_world.transactions
    assert len(tx) > 500
    repeat = tx.duplicated("customer_id").mean()
    assert repeat > 0.3, repeat  # most of the parity claim is about later transactions
    late = (tx["received_at"] - tx["event_time"]) > pd.Timedelta(seconds=1)
    assert late.sum() >= 3  # late arrivals, whose order differs from event order


@pytest.mark.parametrize(
    ("windows", "feature_path"),
    [("embedded", "direct"), ("redis", "direct"), ("embedded", "feast")],
)
def test_every_event_of_a_day_online_equals_batch(
    day_world: DayWorld, windows: str, feature_path: str, request, tmp_path: Path
) -> None:
    url = "redis://" + request.getfixturevalue("redis_url") + "/0" if windows == "redis" else ""
    scorer = window_scorer(day_world, feature_path, url, tmp_path)
    try:
        results = replay(scorer, day_world.records)
        # Redelivery: the same events again give the same features and scores, state unchanged.
        again = [scorer.score(r, include_features=True) for r in day_world.records[::50]]
    finally:
        drop_window_state(scorer)
    assert len(results) == len(day_world.records)
    assert not any(r.duplicate for r in results) and all(r.duplicate for r in again)
    first = {r.event_id: r for r in results}
    for r in again:
        assert r.features == first[r.event_id].features
        assert r.score == first[r.event_id].score

    mismatches = feature_mismatches(day_world, results, CUSTOMER_WINDOWS.feature_names)
    assert not mismatches, (len(mismatches), mismatches[:10])

    lakehouse = Lakehouse(day_world.data_dir / "lakehouse" / "fraud")
    day = day_world.day
    predictions = lakehouse.read("scoring.predictions", dates=(day, day)).to_pandas()
    champion = predictions[predictions["role"] == "champion"].set_index("transaction_id")
    online = pd.DataFrame(
        {
            "transaction_id": [r.event_id for r in results],
            "score": [r.score for r in results],
            "model_version": [r.model_version for r in results],
            "flagged": [r.flagged for r in results],
        }
    ).set_index("transaction_id")
    batch = champion.loc[online.index]
    assert len(batch) == len(champion)  # every batch-scored transaction was replayed
    assert (online["model_version"] == batch["model_version"]).all()
    np.testing.assert_allclose(online["score"], batch["score"], rtol=0, atol=1e-9)
    assert (online["flagged"] == batch["flagged"]).all()


def test_a_definition_changed_on_one_side_is_detected(day_world: DayWorld, tmp_path: Path) -> None:
    """The online side counts the last 2 hours as ``txn_count_1h`` while the backfill counts 1:
    the comparison must name that feature, and only it (the check can fail)."""
    import dataclasses

    from slipway.usecase import WindowAggregation

    changed = dataclasses.replace(
        CUSTOMER_WINDOWS,
        aggregations=tuple(
            WindowAggregation(a.name, a.op, a.input, dt.timedelta(hours=2), a.decimals)
            if a.name == "txn_count_1h"
            else a
            for a in CUSTOMER_WINDOWS.aggregations
        ),
    )
    scorer = window_scorer(day_world, "direct", "", tmp_path, feature_set=changed)
    try:
        results = replay(scorer, day_world.records[:300])
    finally:
        drop_window_state(scorer)
    mismatches = feature_mismatches(day_world, results, CUSTOMER_WINDOWS.feature_names)
    assert mismatches
    assert {name for _, name, _, _ in mismatches} == {"txn_count_1h"}


def offline_windows(world: DayWorld, n: int) -> dict[str, list[Any]]:
    """The offline window features of the first ``n`` replayed transactions, as provided input."""
    table = Lakehouse(world.data_dir / "lakehouse" / "fraud").read(
        "features.customer_behaviour", dates=(world.day, world.day)
    )
    rows = {r["transaction_id"]: r for r in table.to_pylist()}
    picked = [rows[r["transaction_id"]] for r in world.records[:n]]
    return {name: [r[name] for r in picked] for name in CUSTOMER_WINDOWS.feature_names}


PROVIDED = (CUSTOMER_WINDOWS.name,)


def test_direct_reader_returns_what_get_online_features_returns(day_world: DayWorld) -> None:
    """The lean path (online_read + the same function) equals Feast's own call on the stored
    views, value for value, for every feature of the service (window features provided, as the
    aggregator provides them), including the arrays and ints the model does not read."""
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
    windows = {k: [*v, v[0], v[1], v[2]] for k, v in offline_windows(day_world, 150).items()}
    with slipway_env(day_world.data_dir):
        from slipway.featurestore.store import open_store

        store = open_store()
        feast = make_reader("feast", store, MODEL.feature_service, provided=PROVIDED)
        direct = make_reader("direct", store, MODEL.feature_service, provided=PROVIDED)
        feast, direct = feast.read(rows, windows), direct.read(rows, windows)
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


def test_direct_reader_applies_the_ttl_feast_online_ignores(
    day_world: DayWorld, tmp_path: Path
) -> None:
    """A transaction 45 days after the world's last day: merchant_risk (2-day TTL) is stale.
    Batch (point-in-time) sees no merchant state, Feast's online call would serve the stale
    row; the direct path agrees with batch and says why. The window features need no TTL: the
    aggregator applies every window to the event's own time, so the customer's 30 days are
    empty."""
    late = {**day_world.records[0], "transaction_id": "tx_late"}
    for col in ("event_time", "received_at"):
        late[col] = (pd.Timestamp(late[col]) + pd.Timedelta(days=45)).isoformat()
    with slipway_env(day_world.data_dir, {"SLIPWAY_WINDOWS_DIR": str(tmp_path)}):
        direct = OnlineScorer.from_env(feature_path="direct").score(late, include_features=True)
        feast = OnlineScorer.from_env(feature_path="feast").score(late, include_features=True)
    missing = {m.feature: m.reason for m in direct.missing_features}
    assert (
        "expired" in missing["merchant_fraud_rate_30d"]
        and "TTL" in missing["merchant_fraud_rate_30d"]
    )
    assert feast.features["merchant_fraud_rate_30d"] is not None  # stale, yet served by Feast
    assert direct.features["merchant_fraud_rate_30d"] is None
    assert direct.features["txn_count_30d"] == feast.features["txn_count_30d"] == 0


def test_redis_online_store_gives_the_same_features(
    day_world: DayWorld, redis_url: str, tmp_path: Path
) -> None:
    """The production online store (Redis) through both paths equals SQLite, value for value
    (the direct path reads every view in one pipeline)."""
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
    windows = offline_windows(day_world, 100)
    try:
        with slipway_env(day_world.data_dir, extra):
            store = open_store()
            apply_repo(store)
            materialize_until(store, day_world.day)
            direct = make_reader("direct", store, MODEL.feature_service, provided=PROVIDED)
            # every view in one pipelined round trip (DirectFeatureReader._read_views)
            assert len(direct.plan.views) > 1
            on_redis = direct.read(rows, windows)
            feast_redis = make_reader(
                "feast", store, MODEL.feature_service, provided=PROVIDED
            ).read(rows, windows)
            assert store.config.online_store.type == "redis"
        with slipway_env(day_world.data_dir):
            on_sqlite = make_reader(
                "direct", open_store(), MODEL.feature_service, provided=PROVIDED
            ).read(rows, windows)
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


def _one_row(day_world: DayWorld) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    p = fraud_parser().parse(day_world.records[0])
    row = {**p.request, **{k: p.values[k] for k in ("customer_id", "merchant_id")}}
    return [row], offline_windows(day_world, 1)


def test_a_locked_embedded_store_is_skipped_within_the_deadline(
    day_world: DayWorld, tmp_path: Path
) -> None:
    """The direct reader reads SQLite inline, on the caller's thread, over a connection whose
    busy timeout is the deadline: while another connection holds the file's exclusive lock (a
    commit in progress) the read gives up within the deadline, not Python's 5 s default, and
    the request is answered with the stored features absent, saying why."""
    import sqlite3

    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    from slipway.serving.features import GuardedCall

    world = copy_built_world(day_world.data_dir, tmp_path / "world")
    rows, windows = _one_row(day_world)
    with slipway_env(world):
        from slipway.featurestore.store import open_store

        store = open_store()
        guard = GuardedCall(deadline_s=0.2, cooldown_s=60)
        reader = make_reader(
            "direct", store, MODEL.feature_service, provided=PROVIDED, guard=guard, keep_rows=False
        )
        before = reader.read(rows, windows)
        assert not before.errors and before.values["merchant_fraud_rate_30d"][0] is not None
        locker = sqlite3.connect(SqliteOnlineStore._get_db_path(store.config))
        try:
            locker.execute("BEGIN EXCLUSIVE")
            started = time.monotonic()
            locked = reader.read(rows, windows)
            took = time.monotonic() - started
        finally:
            locker.rollback()
            locker.close()
        assert guard._worker is None  # read inline: no helper thread was ever started
    assert locked.errors and "database is locked" in locked.errors[0], locked.errors
    assert 0.15 < took < 1.5, took
    assert locked.values["merchant_fraud_rate_30d"] == [None]
    assert "online store" in locked.reasons[0]["merchant_fraud_rate_30d"]


def test_a_silent_redis_is_skipped_within_the_deadline(day_world: DayWorld) -> None:
    """A Redis that accepts the connection and never answers (a hung server): the direct
    reader's own client times out at the deadline on the caller's thread (no retries), and the
    stored features come back absent with the reason."""
    import socket

    from slipway.serving.features import GuardedCall

    rows, windows = _one_row(day_world)
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:  # never accepts
        port = silent.getsockname()[1]
        with slipway_env(
            day_world.data_dir, {"SLIPWAY_FEAST_ONLINE": f"redis://127.0.0.1:{port}/0"}
        ):
            from slipway.featurestore.store import open_store

            store = open_store()
            guard = GuardedCall(deadline_s=0.2, cooldown_s=60)
            reader = make_reader(
                "direct", store, MODEL.feature_service, provided=PROVIDED, guard=guard
            )
            started = time.monotonic()
            out = reader.read(rows, windows)
            took = time.monotonic() - started
            assert guard._worker is None  # read inline
    assert out.errors and "Timeout" in out.errors[0], out.errors
    assert took < 1.5, took
    assert out.values["segment"] == [None] and "online store" in out.reasons[0]["segment"]


def test_kept_online_rows_follow_every_write_to_the_online_store(
    day_world: DayWorld, tmp_path: Path
) -> None:
    """The direct reader keeps the slow rows it read (a second pass reads nothing from the
    store) and drops them as soon as the online store is written: after the store is emptied
    and loaded as of ten days earlier, through the reader's own Feast store, it serves what a
    fresh reader reads, not what it kept."""
    world = copy_built_world(day_world.data_dir, tmp_path / "world")
    parser = fraud_parser()
    rows = []
    for record in day_world.records[:200]:
        p = parser.parse(record)
        rows.append({**p.request, **{k: p.values[k] for k in ("customer_id", "merchant_id")}})
    windows = offline_windows(day_world, 200)
    with slipway_env(world):
        from slipway.featurestore.store import open_store

        store = open_store()
        reader = make_reader("direct", store, MODEL.feature_service, provided=PROVIDED)
        assert reader.probe is not None  # SQLite online store: rows are kept
        first = reader.read(rows, windows)
        read_once = reader.reads
        again = reader.read(rows, windows)
        assert read_once > 0 and reader.reads == read_once  # answered from the kept rows
        assert all(
            same(a, b)
            for n in first.values
            for a, b in zip(first.values[n], again.values[n], strict=True)
        )
        reset_online_store(store)
        materialize_until(store, day_world.day - dt.timedelta(days=10))
        after = reader.read(rows, windows)
        assert reader.reads == 2 * read_once  # every entity read again
        fresh = make_reader("direct", open_store(), MODEL.feature_service, provided=PROVIDED)
        expected = fresh.read(rows, windows)
    changed = [
        name
        for name in first.values
        if not all(same(a, b) for a, b in zip(first.values[name], after.values[name], strict=True))
    ]
    assert changed, "the older load should change some slow feature"
    for name in expected.values:
        assert all(
            same(a, b) for a, b in zip(expected.values[name], after.values[name], strict=True)
        ), name
    assert after.reasons == expected.reasons and after.notes == expected.notes

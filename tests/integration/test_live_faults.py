"""Faults on the live path: a consumer killed with ``kill -9``, Redis down, a changed definition.

* A consumer process killed mid-stream (SIGKILL, so nothing is flushed or acked on the way out)
  and restarted under the same name resumes from its pending entries: every event decided, none
  twice, and the window state counts each event once (the day's served features still equal the
  offline table). On the embedded default and on the real Redis (skipped when absent).
* Two consumer processes on the two partitions of an entity-partitioned stream (one window
  state) decide a day at once with exact parity, each customer on one of them.
* Redis down (window state and served log on a Redis that does not answer): the HTTP scorer
  answers with the declared defaults, flags them, and the decision lands in the local spool,
  then in ``scoring.served`` marked degraded.
* The consistency check fails when one side's feature definition changes (the offline table
  rebuilt from a declaration with a different window), naming that feature only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from slipway.lakehouse import Lakehouse
from slipway.streaming.consistency import check_consistency
from slipway.streaming.replay import landed_lines, seed_window_state
from slipway.streaming.served import SERVED, drain_served
from slipway.streaming.streams import append_events, open_streams
from slipway.usecases import get_usecase
from tests.support.pipeline import PipelineData, copy_world, env_for, slipway_env

ROOT = Path(__file__).resolve().parents[2]


def _world(pipeline: PipelineData, target: Path) -> Path:
    return copy_world(pipeline.data_dir, target, ignore=("landing", "streams", "windows"))


def _consumer(env: dict[str, str], name: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "slipway.streaming.consumer", "--name", name, "--batch", "8", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_a_consumer_killed_mid_stream_resumes_from_its_pending_entries(
    pipeline: PipelineData, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    usecase = get_usecase()
    root = _world(pipeline, tmp_path / "world")
    extra = {"SLIPWAY_STREAM_PREFIX": f"test-{uuid.uuid4().hex[:10]}"}
    if backend == "redis":
        # Unique stream prefix and window namespace; only those keys are deleted afterwards.
        url = f"redis://{request.getfixturevalue('redis_url')}/0"
        extra.update(
            SLIPWAY_STREAM_URL=url,
            SLIPWAY_WINDOWS_URL=url,
            SLIPWAY_WINDOWS_NAMESPACE=f"test:win:{uuid.uuid4().hex[:10]}",
        )
    env = {**os.environ, **env_for(root), **extra}
    lines = landed_lines(pipeline.landing_root, "transactions", pipeline.end)
    lakehouse = Lakehouse(root / "lakehouse" / "fraud")
    with slipway_env(root, extra):
        from slipway.serving.scorer import OnlineScorer

        scorer = OnlineScorer.from_env(usecase)
        seed_window_state(scorer, lakehouse, pipeline.end)
        streams = open_streams(usecase)
        append_events(streams.events, lines)
        streams.events.ensure_group("scorer")
    try:
        kills_with_pending = 0
        for _attempt in range(4):  # a kill between batches leaves nothing pending: kill again
            proc = _consumer(env, "worker-1")
            target = min(len(lines), streams.served.primary.length() + len(lines) // 5)
            deadline = time.monotonic() + 120
            while streams.served.primary.length() < target and time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            state = streams.events.group_state("scorer")
            kills_with_pending += state.pending > 0
            if kills_with_pending or state.undelivered == 0:
                break
        assert kills_with_pending >= 1, "no kill left entries pending: nothing was recovered"
        assert streams.served.primary.length() < len(lines) + 8 * 4
        proc = _consumer(env, "worker-1")  # same name: re-reads its own pending entries first
        deadline = time.monotonic() + 180
        while streams.events.group_state("scorer").backlog and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert streams.events.group_state("scorer").backlog == 0
        with slipway_env(root, extra):
            drained = drain_served(lakehouse, usecase, streams.served.logs)
        served = lakehouse.read(SERVED).to_pandas()
        ids = [json.loads(line)["transaction_id"] for line in lines]
        assert sorted(served["event_id"]) == sorted(ids)  # none lost, one row each
        # Every event decided at least once; one logged twice (killed between the log and the
        # ack) is drained once. Which case a kill hits is chance, so neither is required.
        assert drained.read >= len(ids)
        run = check_consistency(lakehouse, usecase, pipeline.end, pipeline.end)
        (day,) = run.days
        assert day.passed and day.mismatches == 0, day.summary()  # nothing counted twice
    finally:
        streams.delete()
        streams.close()
        for fs in usecase.window_features:
            aggregator = scorer.windows.aggregator(fs)
            if backend == "redis":
                aggregator.delete_state()
            aggregator.close()


@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_two_consumer_processes_on_entity_partitions_keep_exact_parity(
    pipeline: PipelineData, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """The stream in two partitions by customer, a consumer process on each, one window state:
    both decide at once, each customer's events stay in order on one of them, and every served
    feature of the day equals the offline value (0 mismatches)."""
    usecase = get_usecase()
    root = _world(pipeline, tmp_path / "world")
    extra = {
        "SLIPWAY_STREAM_PREFIX": f"test-{uuid.uuid4().hex[:10]}",
        "SLIPWAY_STREAM_PARTITIONS": "2",
    }
    if backend == "redis":
        url = f"redis://{request.getfixturevalue('redis_url')}/0"
        extra.update(
            SLIPWAY_STREAM_URL=url,
            SLIPWAY_WINDOWS_URL=url,
            SLIPWAY_WINDOWS_NAMESPACE=f"test:win:{uuid.uuid4().hex[:10]}",
        )
    env = {**os.environ, **env_for(root), **extra}
    lines = landed_lines(pipeline.landing_root, "transactions", pipeline.end)
    lakehouse = Lakehouse(root / "lakehouse" / "fraud")
    with slipway_env(root, extra):
        from slipway.serving.scorer import OnlineScorer

        scorer = OnlineScorer.from_env(usecase)
        seed_window_state(scorer, lakehouse, pipeline.end)
        streams = open_streams(usecase)
        assert len(streams.partitions) == 2
        for log in streams.partitions:
            log.ensure_group("scorer")
        append_events(streams, lines)
    sizes = [log.length() for log in streams.partitions]
    assert sum(sizes) == len(lines) and min(sizes) > len(lines) // 4
    procs = [_consumer(env, f"worker-p{p}", "--partition", str(p)) for p in (0, 1)]
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and any(
            log.group_state("scorer").backlog for log in streams.partitions
        ):
            for proc in procs:
                assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        assert all(log.group_state("scorer").backlog == 0 for log in streams.partitions)
        with slipway_env(root, extra):
            drain_served(lakehouse, usecase, streams.served.logs)
        served = lakehouse.read(SERVED).to_pandas()
        assert sorted(served["event_id"]) == sorted(json.loads(x)["transaction_id"] for x in lines)
        by_consumer = served.groupby("consumer")["customer_id"].agg(set)
        assert set(by_consumer.index) == {"worker-p0", "worker-p1"}
        assert not (by_consumer["worker-p0"] & by_consumer["worker-p1"])  # one side each
        run = check_consistency(lakehouse, usecase, pipeline.end, pipeline.end)
        (day,) = run.days
        assert day.passed and day.mismatches == 0, day.summary()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        streams.delete()
        streams.close()
        for fs in usecase.window_features:
            aggregator = scorer.windows.aggregator(fs)
            if backend == "redis":
                aggregator.delete_state()
            aggregator.close()


# A keyless service answers on loopback only; the test client addresses it there.
LOOPBACK = "http://127.0.0.1"


def test_redis_down_answers_with_defaults_flags_them_and_the_served_log_says_so(
    pipeline: PipelineData, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from slipway.serving.app import create_app
    from slipway.serving.scorer import OnlineScorer

    usecase = get_usecase()
    root = _world(pipeline, tmp_path / "world")
    down = "redis://127.0.0.1:1/0"  # nothing listens there
    extra = {"SLIPWAY_STREAM_URL": down, "SLIPWAY_WINDOWS_URL": down}
    record = json.loads(landed_lines(pipeline.landing_root, "transactions", pipeline.end)[5])
    with (
        slipway_env(root, extra),
        TestClient(create_app(OnlineScorer.from_env), base_url=LOOPBACK) as client,
    ):
        response = client.post("/score", json=record)
        assert response.status_code == 200, response.text
        body = response.json()
        streams = open_streams(usecase)
        drained = drain_served(
            Lakehouse(root / "lakehouse" / "fraud"), usecase, streams.served.logs
        )
        streams.close()
    window_features = set(usecase.window_features[0].feature_names) & set(usecase.model.features)
    missing = {m["feature"]: m for m in body["missing_features"]}
    assert window_features <= set(missing)
    assert any("unavailable" in w for w in body["warnings"])
    defaulted = {f for f, m in missing.items() if m["used"] is not None}
    assert defaulted == set(usecase.model.missing_defaults) & window_features
    assert drained.added == 1 and drained.unavailable  # Redis still down: the spool drained
    row = Lakehouse(root / "lakehouse" / "fraud").read(SERVED).to_pylist()[0]
    assert row["event_id"] == record["transaction_id"] and row["degraded"]
    assert set(row["defaults_used"]) == defaulted
    warnings = json.loads(row["warnings"])
    assert any("window state unavailable" in w for w in warnings)
    assert any("spooled locally" in w for w in warnings)


def test_the_check_fails_when_one_sides_definition_changes(
    pipeline: PipelineData, tmp_path: Path, spark
) -> None:
    """Served with the declared 1-hour window; offline rebuilt with 2 hours: that feature fails."""
    from functools import partial

    from slipway.features.build import build_feature_table
    from slipway.serving.scorer import OnlineScorer
    from slipway.streaming.replay import replay
    from slipway.usecases.fraud.features import customer_behaviour

    usecase = get_usecase()
    root = _world(pipeline, tmp_path / "world")
    lakehouse = Lakehouse(root / "lakehouse" / "fraud")
    lines = landed_lines(pipeline.landing_root, "transactions", pipeline.end)
    with slipway_env(root):
        scorer = OnlineScorer.from_env(usecase)
        scorer.warm_up()
        seed_window_state(scorer, lakehouse, pipeline.end)
        streams = open_streams(usecase)
        result = replay(usecase, scorer, streams, lines)
        drain_served(lakehouse, usecase, streams.served.logs)
        streams.close()
    assert result.decided == len(lines)
    assert check_consistency(lakehouse, usecase, pipeline.end, pipeline.end).passed
    fs = usecase.window_features[0]
    changed = dataclasses.replace(
        fs,
        aggregations=tuple(
            dataclasses.replace(a, window=dt.timedelta(hours=2)) if a.name == "txn_count_1h" else a
            for a in fs.aggregations
        ),
    )
    table = dataclasses.replace(
        usecase.feature_table(fs.name), build=partial(customer_behaviour, changed)
    )
    build_feature_table(lakehouse, spark, table, pipeline.end, pipeline.end)
    run = check_consistency(lakehouse, usecase, pipeline.end, pipeline.end)
    (day,) = run.days
    assert not run.passed
    # Only the changed feature disagrees: the served score was computed from the declared one,
    # and the batch score of scoring.predictions too, so they still agree.
    assert day.mismatched_features == ["txn_count_1h"]
    (bad,) = [f for f in day.features if f.feature == "txn_count_1h"]
    assert bad.mismatched > 0 and bad.smape > 0 and bad.examples

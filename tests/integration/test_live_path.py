"""The live path end to end on a real world: stream -> consumer -> served log -> Delta -> checks.

A private copy of the session world replays its last day through the embedded stream (the
default, no server) with malformed events mixed in; the same day's batch side is what the graph
built. Then: every valid event decided exactly once, every malformed one dead-lettered with its
reason, the drain idempotent, the day's served features equal to the offline point-in-time values
for every event (not only first-of-day ones), the served score equal to the batch score, drift
and lineage on served decisions, the HTTP door logging into the same table, and the Dagster
sensor, asset and check doing the same from the graph.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from slipway.lakehouse import Lakehouse
from slipway.streaming.consistency import CONSISTENCY, check_consistency
from slipway.streaming.replay import ReplayResult, landed_lines, replay, seed_window_state
from slipway.streaming.served import SERVED, drain_served
from slipway.streaming.streams import LiveStreams, open_streams
from slipway.usecases import get_usecase
from tests.support.pipeline import PipelineData, copy_world, slipway_env

MALFORMED = [
    '{"transaction_id": "tx_broken_1", "amount": ',  # truncated JSON
    json.dumps({"transaction_id": "tx_broken_2", "amount": -5.0}),  # fields absent, bad amount
    json.dumps([1, 2, 3]),  # not an object
]


@dataclass
class LiveWorld:
    root: Path
    day: dt.date
    lines: list[str]
    streams: LiveStreams
    replayed: ReplayResult

    @property
    def lakehouse(self) -> Lakehouse:
        return Lakehouse(self.root / "lakehouse" / "fraud")


def new_world(pipeline: PipelineData, target: Path) -> Path:
    return copy_world(pipeline.data_dir, target, ignore=("landing", "streams", "windows"))


@pytest.fixture(scope="module")
def live(pipeline: PipelineData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveWorld]:
    from slipway.serving.scorer import OnlineScorer

    root = new_world(pipeline, tmp_path_factory.mktemp("live") / "world")
    usecase = get_usecase()
    with slipway_env(root):
        lines = landed_lines(pipeline.landing_root, usecase.streams[0].name, pipeline.end)
        mixed = lines[:10] + MALFORMED + lines[10:]
        scorer = OnlineScorer.from_env(usecase)
        scorer.warm_up()
        seeded = seed_window_state(scorer, Lakehouse(root / "lakehouse" / "fraud"), pipeline.end)
        assert seeded and all(n > 0 for n in seeded.values())
        streams = open_streams(usecase)
        result = replay(usecase, scorer, streams, mixed, rate=None)
        yield LiveWorld(root, pipeline.end, lines, streams, result)
        streams.close()


@pytest.fixture(scope="module")
def drained(live: LiveWorld):
    with slipway_env(live.root):
        return drain_served(live.lakehouse, get_usecase(), live.streams.served.logs)


# A keyless service answers on loopback only; the test client addresses it there.
LOOPBACK = "http://127.0.0.1"


def test_every_valid_event_is_decided_once_and_drained(live: LiveWorld, drained) -> None:
    assert live.replayed.appended == len(live.lines) + len(MALFORMED)
    assert live.replayed.decided == len(live.lines)
    served = live.lakehouse.read(SERVED).to_pandas()
    ids = [json.loads(line)["transaction_id"] for line in live.lines]
    assert len(served) == len(ids) == drained.added
    assert sorted(served["event_id"]) == sorted(ids)
    assert set(served["date"]) == {live.day}
    assert (served["source"] == "stream").all()
    assert served["position"].notna().all() and served["received_at"].notna().all()
    assert live.streams.events.group_state("scorer").backlog == 0


def test_malformed_events_are_dead_lettered_with_their_reasons(live: LiveWorld) -> None:
    dead = [e.fields for e in live.streams.dead_letters.range()]
    assert [d["event"] for d in dead] == MALFORMED
    assert "not JSON" in dead[0]["reason"]
    rules = {(e["field"], e["rule"]) for e in json.loads(dead[1]["errors"])}
    assert ("amount", "greater_than") in rules and (
        "customer_id",
        "required_field_present",
    ) in rules
    assert "JSON object" in dead[2]["reason"]
    assert all(d["position"] for d in dead)


def test_the_drain_is_idempotent_under_redelivery(live: LiveWorld, drained) -> None:
    usecase = get_usecase()
    with slipway_env(live.root):
        again = drain_served(live.lakehouse, usecase, live.streams.served.logs)
        assert again.read == 0 and again.added == 0
        # A decision logged twice (an event redelivered after its decision was logged but
        # before its ack) is one row.
        first = live.streams.served.primary.range(1)[0]
        live.streams.served.primary.append(first.fields)
        third = drain_served(live.lakehouse, usecase, live.streams.served.logs)
    assert (third.read, third.added, third.duplicates) == (1, 0, 1)
    assert live.lakehouse.read(SERVED, columns=["event_id"]).num_rows == len(live.lines)


def test_served_features_equal_the_offline_values_for_every_event(live: LiveWorld, drained) -> None:
    usecase = get_usecase()
    run = check_consistency(live.lakehouse, usecase, live.day, live.day)
    (day,) = run.days
    assert day.status == "compared"
    assert day.served_rows == len(live.lines) and day.unmatched_served == 0
    assert {f.feature for f in day.features} == {*usecase.model.features, "score"}
    assert all(f.compared == len(live.lines) for f in day.features)
    assert day.mismatches == 0, day.summary()
    assert day.passed
    stored = live.lakehouse.read(CONSISTENCY, dates=(live.day, live.day)).to_pandas()
    assert len(stored) == len(day.features) and stored["passed"].all()
    assert (stored["mismatch_rate"] == 0).all()


def test_drift_runs_on_served_traffic(live: LiveWorld, drained) -> None:
    from slipway.streaming.drift import served_drift, served_frame

    usecase = get_usecase()
    frame = served_frame(live.lakehouse, usecase, live.day)
    assert len(frame) == len(live.lines) and usecase.streams[0].key in frame.columns
    outcomes = served_drift(live.lakehouse, usecase, live.day)
    (outcome,) = outcomes.values()
    assert outcome.current_rows == min(len(live.lines), usecase.monitoring.sample_size)
    assert {f.feature for f in outcome.features} == set(usecase.monitoring.monitored_features)


def test_lineage_goes_from_a_served_decision_to_its_landing_line(live: LiveWorld, drained) -> None:
    from slipway.lineage import trace_served

    event_id = json.loads(live.lines[42])["transaction_id"]
    tree = trace_served(live.lakehouse, event_id)
    assert tree.label == f"served decision {event_id}"
    assert tree.details["source"] == "stream" and tree.details["position"]
    assert tree.find(f"prediction {event_id}:v") is not None
    landing = tree.find("landing ")
    assert landing is not None and event_id in landing.details["raw"]


def test_http_posts_are_served_decisions_too(pipeline: PipelineData, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from slipway.serving.app import create_app
    from slipway.serving.scorer import OnlineScorer

    root = new_world(pipeline, tmp_path / "world")
    usecase = get_usecase()
    records = [
        json.loads(x) for x in landed_lines(pipeline.landing_root, "transactions", pipeline.end)[:3]
    ]
    with (
        slipway_env(root),
        TestClient(create_app(OnlineScorer.from_env), base_url=LOOPBACK) as client,
    ):
        answers = [client.post("/score", json=r).json() for r in records]
        assert "features" not in answers[0]
        streams = open_streams(usecase)
        result = drain_served(Lakehouse(root / "lakehouse" / "fraud"), usecase, streams.served.logs)
    assert result.added == 3
    served = Lakehouse(root / "lakehouse" / "fraud").read(SERVED).to_pandas().set_index("event_id")
    for record, answer in zip(records, answers, strict=True):
        row = served.loc[record["transaction_id"]]
        assert row["source"] == "http" and row["position"] is None
        assert row["score"] == answer["score"] and row["model_version"] == answer["model_version"]
        assert row["amount_eur"] is not None


def test_the_graph_drains_and_checks_through_its_sensors(live: LiveWorld) -> None:
    import dagster as dg

    from assets.streaming.sensors import consistency_request
    from orchestration.definitions import build_definitions

    root = new_world_from(live)
    with slipway_env(root):
        defs = build_definitions()
        lakehouse = Lakehouse(root / "lakehouse" / "fraud")
        streams = open_streams(get_usecase())
        streams.served.primary.append(live.streams.served.primary.range(1)[0].fields)
        streams.close()
        sensor = defs.get_sensor_def("fraud_served_drain_sensor")
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(instance=instance, definitions=defs)
            result = sensor(context)
            (requested,) = result.run_requests
            assert requested.run_key.startswith("drain:1:1:")
            run = defs.get_job_def("fraud_drain_served").execute_in_process(instance=instance)
            assert run.success
            assert lakehouse.read(SERVED).num_rows == 1
            again = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
            assert not again.run_requests
            request, cursor, _ = consistency_request(lakehouse, None)
            assert request is not None and request.tags["dagster/asset_partition_range_end"] == str(
                live.day
            )
            checked = defs.get_job_def("fraud_live_consistency").execute_in_process(
                instance=instance, partition_key=str(live.day)
            )
            (evaluation,) = checked.get_asset_check_evaluations()
            assert evaluation.check_name == "online_offline_consistent"
            assert evaluation.passed, evaluation.description
            assert consistency_request(lakehouse, cursor)[0] is None


def new_world_from(live: LiveWorld) -> Path:
    target = live.root.parent / f"graph-{uuid.uuid4().hex[:6]}"
    copy_world(live.root, target, ignore=("streams", "windows"))
    import shutil

    shutil.rmtree(target / "lakehouse" / "fraud" / "scoring" / "served", ignore_errors=True)
    return target

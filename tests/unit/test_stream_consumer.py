"""The consumer's delivery rules, on the embedded log, with a scorer that fails on purpose.

The scorer here stands in for ``OnlineScorer`` only where a real one cannot be made to fail on
cue: it parses with the real fraud parser and returns real ``ScoreResult`` records, and raises
for the event ids it is told to. What is tested is the consumer: which entries it acks, retries,
dead-letters, and what it appends to the served log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slipway.serving.champion import NoChampionError
from slipway.serving.scorer import ScoreResult
from slipway.streaming.consumer import StreamConsumer
from slipway.streaming.served import DECISION_FIELD
from slipway.streaming.streams import append_events, open_streams
from slipway.usecases import get_usecase
from slipway.usecases.fraud.request import fraud_parser
from tests.support.records import tx


class FailingScorer:
    def __init__(self, fail: dict[str, type[Exception]] | None = None) -> None:
        self.parser = fraud_parser()
        self.fail = dict(fail or {})
        self.champion = True
        self.calls = 0

    def score_prepared(self, prepared: list[Any], include_features: bool = False) -> list:
        self.calls += 1
        if not self.champion:
            raise NoChampionError("no champion yet")
        out = []
        for p in prepared:
            event_id = p.values["transaction_id"]
            if event_id in self.fail:
                raise self.fail[event_id](f"cannot score {event_id}")
            out.append(
                ScoreResult(event_id, 0.1, False, 0.5, "m", 1, "svc", "direct", [], [], {}, {})
            )
        return out


@pytest.fixture
def streams(tmp_path: Path):
    opened = open_streams(get_usecase(), url="", prefix="unit", directory=tmp_path)
    yield opened
    opened.close()


def _decided(streams) -> list[str]:
    return [
        json.loads(e.fields[DECISION_FIELD])["event_id"] for e in streams.served.primary.range()
    ]


def test_a_failing_event_is_retried_then_dead_lettered_and_never_blocks_the_others(streams) -> None:
    scorer = FailingScorer({"tx_000002": RuntimeError})
    append_events(streams.events, [tx(i) for i in range(1, 5)])
    consumer = StreamConsumer(scorer, streams, get_usecase(), name="c", max_deliveries=3)
    consumer.step()
    assert _decided(streams) == ["tx_000001", "tx_000003", "tx_000004"]
    assert streams.events.group_state("scorer").pending == 1  # kept for a retry
    consumer.recover()  # delivery 2: still failing, still pending
    assert streams.events.group_state("scorer").pending == 1
    assert not streams.dead_letters.range()
    consumer.recover()  # delivery 3 = max_deliveries: dead-lettered and acked
    (dead,) = [e.fields for e in streams.dead_letters.range()]
    assert json.loads(dead["event"])["transaction_id"] == "tx_000002"
    assert "RuntimeError" in dead["reason"] and dead["deliveries"] == "3"
    assert streams.events.group_state("scorer").backlog == 0


def test_an_event_the_window_state_refuses_is_dead_lettered_at_once(streams) -> None:
    scorer = FailingScorer({"tx_000003": ValueError})
    append_events(streams.events, [tx(i) for i in range(1, 5)])
    StreamConsumer(scorer, streams, get_usecase(), name="c").step()
    (dead,) = [e.fields for e in streams.dead_letters.range()]
    assert "invalid event" in dead["reason"] and dead["deliveries"] == "1"
    assert _decided(streams) == ["tx_000001", "tx_000002", "tx_000004"]
    assert streams.events.group_state("scorer").backlog == 0


def test_without_a_champion_nothing_is_acked_until_one_appears(streams) -> None:
    scorer = FailingScorer()
    scorer.champion = False
    append_events(streams.events, [tx(1), tx(2)])
    consumer = StreamConsumer(scorer, streams, get_usecase(), name="c")
    with pytest.raises(NoChampionError):
        consumer.step()
    assert streams.events.group_state("scorer").pending == 2 and not _decided(streams)
    assert not streams.dead_letters.range()
    scorer.champion = True
    consumer.recover()
    assert _decided(streams) == ["tx_000001", "tx_000002"]
    assert streams.events.group_state("scorer").backlog == 0


def test_invalid_events_name_their_field_and_rule(streams) -> None:
    bad = tx(2, amount=-1.0, currency="XYZ", customer_id=...)
    append_events(streams.events, [tx(1), bad, "not json at all"])
    StreamConsumer(FailingScorer(), streams, get_usecase(), name="c").step()
    dead = [e.fields for e in streams.dead_letters.range()]
    assert len(dead) == 2
    rules = {(e["field"], e["rule"]) for e in json.loads(dead[0]["errors"])}
    assert {("amount", "greater_than"), ("currency", "isin")} <= rules
    assert ("customer_id", "required_field_present") in rules
    assert "not JSON" in dead[1]["reason"]
    assert _decided(streams) == ["tx_000001"]


def test_a_partitioned_stream_keeps_every_customer_on_one_partition_in_order(
    tmp_path: Path,
) -> None:
    """Three partitions, a consumer each: every customer's events land on one partition (the
    same one from any process: a stable hash), each consumer decides only its partition's
    events and in their order, and together they decide every event once."""
    import dataclasses

    from slipway.streaming.log import partition_of

    usecase = get_usecase()
    streams = open_streams(usecase, url="", prefix="unit", directory=tmp_path, partitions=3)
    try:
        records = [tx(i) for i in range(1, 121)]
        append_events(streams, [*records, "not json at all"])
        placed: dict[str, set[int]] = {}
        for p, log in enumerate(streams.partitions):
            for entry in log.range():
                try:
                    customer = json.loads(entry.fields["event"])["customer_id"]
                except ValueError:
                    assert p == 0  # an entry without an entity goes to partition 0
                    continue
                placed.setdefault(customer, set()).add(p)
                assert p == partition_of(customer, 3)
        assert all(len(ps) == 1 for ps in placed.values())
        assert len({next(iter(ps)) for ps in placed.values()}) == 3  # all three are used
        consumers = [
            StreamConsumer(
                FailingScorer(),
                dataclasses.replace(streams, events=log, partition=p),
                usecase,
                name=f"c{p}",
                batch=7,
            )
            for p, log in enumerate(streams.partitions)
        ]
        while sum(c.step(block_ms=0) for c in consumers):
            pass
        decided = [json.loads(e.fields[DECISION_FIELD]) for e in streams.served.primary.range()]
        assert sorted(d["event_id"] for d in decided) == sorted(
            r["transaction_id"] for r in records
        )
        for c in consumers:
            mine = [d for d in decided if d["consumer"] == c.name]
            assert {d["stream"] for d in mine} == {c.streams.events.name}
            for customer in {d["entities"]["customer_id"] for d in mine}:
                ids = [d["event_id"] for d in mine if d["entities"]["customer_id"] == customer]
                assert ids == sorted(ids)  # appended in id order: decided in that order
        assert len(streams.dead_letters.range()) == 1
    finally:
        streams.close()

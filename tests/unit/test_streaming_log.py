"""The two logs (Redis Streams and the embedded SQLite log) keep the same consumer-group promises.

Every test runs on both: each entry goes to one consumer of a group, stays pending until acked,
is re-read by its consumer after a restart, is claimed from a dead consumer once idle, and every
group sees every entry. The Redis case uses a unique key per test and deletes only it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.streaming.log import EventLog, LogUnavailable, open_log


@pytest.fixture(params=["embedded", "redis"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    name = f"test:{uuid.uuid4().hex}:events"
    url = f"redis://{request.getfixturevalue('redis_url')}/0" if request.param == "redis" else ""
    opened = open_log(url, name, tmp_path / "streams")
    yield opened
    opened.delete()
    opened.close()


def test_entries_go_to_one_consumer_and_stay_pending_until_acked(log: EventLog) -> None:
    log.ensure_group("g")
    positions = log.append_many([{"n": str(i)} for i in range(10)])
    assert len(set(positions)) == 10 and log.length() == 10
    first = log.read_group("g", "a", 6)
    second = log.read_group("g", "b", 6)
    assert [e.fields["n"] for e in first] == [str(i) for i in range(6)]
    assert [e.fields["n"] for e in second] == [str(i) for i in range(6, 10)]
    assert [e.position for e in first + second] == positions
    assert log.group_state("g").pending == 10
    assert log.ack("g", [e.position for e in second]) == 4
    state = log.group_state("g")
    assert (state.undelivered, state.pending) == (0, 6)
    assert log.read_group("g", "a", 10) == []


def test_a_restarted_consumer_rereads_its_own_pending_entries(log: EventLog) -> None:
    log.ensure_group("g")
    log.append_many([{"n": str(i)} for i in range(5)])
    delivered = log.read_group("g", "worker-1", 3)
    log.ack("g", [delivered[0].position])
    again = log.read_own_pending("g", "worker-1", 10)
    assert [e.position for e in again] == [e.position for e in delivered[1:]]
    assert all(e.deliveries == 2 for e in again)
    assert log.read_own_pending("g", "worker-2", 10) == []


def test_idle_entries_of_a_dead_consumer_are_claimed_once_idle(log: EventLog) -> None:
    log.ensure_group("g")
    log.append_many([{"n": str(i)} for i in range(4)])
    dead = log.read_group("g", "dead", 4)
    assert log.claim_idle("g", "alive", min_idle_ms=60_000, count=10) == []
    time.sleep(0.05)
    claimed = log.claim_idle("g", "alive", min_idle_ms=20, count=10)
    assert [e.position for e in claimed] == [e.position for e in dead]
    assert all(e.deliveries == 2 for e in claimed)
    assert log.read_own_pending("g", "dead", 10) == []  # they are alive's now
    assert len(log.read_own_pending("g", "alive", 10)) == 4


def test_every_group_sees_every_entry(log: EventLog) -> None:
    log.ensure_group("scorer")
    log.append_many([{"n": "1"}, {"n": "2"}])
    log.ensure_group("audit")  # from the start: sees what was appended before it existed
    assert len(log.read_group("scorer", "x", 10)) == 2
    assert len(log.read_group("audit", "y", 10)) == 2
    log.ensure_group("audit")  # idempotent
    assert log.group_state("audit").undelivered == 0


def test_a_blocking_read_returns_what_arrives_meanwhile(log: EventLog) -> None:
    import threading

    log.ensure_group("g")
    threading.Timer(0.1, lambda: log.append({"n": "late"})).start()
    started = time.perf_counter()
    got = log.read_group("g", "c", 10, block_ms=2000)
    assert [e.fields["n"] for e in got] == ["late"]
    assert time.perf_counter() - started < 1.5


def test_embedded_log_is_shared_by_processes(tmp_path: Path) -> None:
    """Two processes consuming one embedded log get disjoint entries that cover the log."""
    directory = tmp_path / "streams"
    log = open_log("", "shared:events", directory)
    log.ensure_group("g")
    log.append_many([{"n": str(i)} for i in range(400)])
    code = textwrap.dedent(
        f"""
        import json, sys
        from slipway.streaming.log import open_log
        log = open_log("", "shared:events", {str(directory)!r})
        got = []
        while True:
            batch = log.read_group("g", sys.argv[1], 7)
            if not batch:
                break
            got += [e.fields["n"] for e in batch]
            log.ack("g", [e.position for e in batch])
        print(json.dumps(got))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, f"c{i}"], stdout=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    import json

    seen = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert sorted(seen[0] + seen[1], key=int) == [str(i) for i in range(400)]
    assert not set(seen[0]) & set(seen[1])
    assert log.group_state("g").backlog == 0


def test_an_unreachable_redis_is_reported_as_unavailable() -> None:
    log = open_log("redis://127.0.0.1:1/0", "nowhere")
    with pytest.raises(LogUnavailable, match=r"127\.0\.0\.1:1"):
        log.append({"n": "1"})


def test_unknown_url_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="redis://"):
        open_log("kafka://broker:9092", "x")

"""A landed day played through the live path, as the upstream would have streamed it.

The day's landing lines, in file order (the upstream writes them in arrival order), are appended
to the event stream by an *open-loop* appender: event ``i`` is due at ``start + i / rate`` and is
appended then, whether or not the consumer kept up, so latency is measured from the due time and
a slow consumer shows as latency instead of slowing the load (``rate=None`` appends everything at
once). A consumer decides them meanwhile; the latency of each event is the time from its due
time to its decision's entry in the served log (append -> decision logged).

With a partitioned stream (``LiveStreams.partitions``) each event is appended to its entity's
partition and one consumer per partition decides them (stepped in turn here, in one thread;
in production each is its own process).

Used by ``make run`` (the last simulated day), the streaming benchmark and the tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slipway.ingest.landing import list_files
from slipway.streaming.consumer import ConsumerStats, StreamConsumer
from slipway.streaming.served import DECISION_FIELD
from slipway.streaming.streams import LiveStreams, encode_event
from slipway.usecase import UseCase


def landed_lines(landing_root: str | Path, stream: str, day: dt.date) -> list[str]:
    """The day's non-blank landing lines in file order (the upstream's arrival order)."""
    lines: list[str] = []
    for landed in list_files(landing_root, stream, day):
        opener = gzip.open if landed.path.name.endswith(".gz") else open
        with opener(landed.path, "rt", encoding="utf-8") as handle:
            lines.extend(line.rstrip("\n") for line in handle if line.strip())
    return lines


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values, dtype="float64")
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }


@dataclass
class ReplayResult:
    appended: int
    decided: int
    dead_lettered: int
    seconds: float
    latency_ms: dict[str, float]
    behind_ms: dict[str, float]
    consumer: ConsumerStats
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def throughput(self) -> float:
        return self.decided / self.seconds if self.seconds else 0.0


def _served_latencies(streams: LiveStreams, due: dict[tuple[str, str], float]) -> list[float]:
    """Due time -> decision logged, per decided event of this replay (ms)."""
    out = []
    for entry in streams.served.primary.range():
        record = json.loads(entry.fields[DECISION_FIELD])
        start = due.get((record.get("stream") or "", record.get("position") or ""))
        if start is not None:
            out.append((entry.appended_at.timestamp() - start) * 1000.0)
    return out


def _consumers(
    usecase: UseCase, scorer: Any, streams: LiveStreams, name: str, batch: int
) -> list[StreamConsumer]:
    """One consumer per partition of the event stream (each reads its own partition)."""
    logs = streams.partitions or (streams.events,)
    if len(logs) == 1:
        return [StreamConsumer(scorer, streams, usecase, name=name, batch=batch)]
    return [
        StreamConsumer(
            scorer,
            dataclasses.replace(streams, events=log, partition=p),
            usecase,
            name=f"{name}-p{p}",
            batch=batch,
        )
        for p, log in enumerate(logs)
    ]


def replay(
    usecase: UseCase,
    scorer: Any,
    streams: LiveStreams,
    lines: Sequence[str],
    rate: float | None = None,
    consumer_name: str = "replay",
    batch: int = 256,
    timeout_s: float = 600.0,
) -> ReplayResult:
    """Append ``lines`` (at ``rate`` per second, open loop) while consumers decide them (one per
    partition of the stream)."""
    consumers = _consumers(usecase, scorer, streams, consumer_name, batch)
    logs = [c.streams.events for c in consumers]
    appender = streams.appender if len(logs) > 1 else None
    due: dict[tuple[str, str], float] = {}
    behind: list[float] = []
    done = threading.Event()

    def put(items: list[dict[str, str]]) -> list[tuple[str, str]]:
        if appender is None:
            return [(logs[0].name, p) for p in logs[0].append_many(items)]
        return [(logs[p].name, pos) for p, pos in appender.append_many(items)]

    def append() -> None:
        start = time.time()
        if rate is None:
            for key in put([encode_event(x) for x in lines]):
                due[key] = start
        else:
            # Open loop: everything due by now goes out in one append (one per partition), so
            # an appender that fell behind catches up instead of drifting further.
            i = 0
            while i < len(lines):
                now = time.time()
                when = start + i / rate
                if when > now:
                    time.sleep(min(when - now, 0.002))
                    continue
                upto = min(len(lines), int((now - start) * rate) + 1)
                behind.append((now - when) * 1000.0)
                keys = put([encode_event(x) for x in lines[i:upto]])
                for j, key in zip(range(i, upto), keys, strict=True):
                    due[key] = start + j / rate
                i = upto
        done.set()

    started = time.perf_counter()
    thread = threading.Thread(target=append, name="slipway-replay-appender", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    block_ms = 20 if len(consumers) == 1 else 2
    while time.monotonic() < deadline:
        handled = sum(c.step(block_ms=block_ms) for c in consumers)
        if not handled and done.is_set():
            states = [(c, c.streams.events.group_state(c.group)) for c in consumers]
            if all(state.backlog == 0 for _, state in states):
                break
            for c, state in states:  # only retries left: re-read them (dead-lettered at last)
                if state.backlog and state.undelivered == 0:
                    c.recover()
    thread.join(timeout=5)
    seconds = time.perf_counter() - started
    latencies = _served_latencies(streams, due)
    stats = consumers[0].stats
    if len(consumers) > 1:
        stats = ConsumerStats()
        for c in consumers:
            for f in dataclasses.fields(ConsumerStats):
                value = getattr(c.stats, f.name)
                if isinstance(value, int):
                    setattr(stats, f.name, getattr(stats, f.name) + value)
            stats.dead_reasons += c.stats.dead_reasons
            stats.last_error = stats.last_error or c.stats.last_error
    return ReplayResult(
        appended=len(due),
        decided=stats.decided,
        dead_lettered=stats.dead_lettered,
        seconds=seconds,
        latency_ms=percentiles(latencies),
        behind_ms=percentiles(behind),
        consumer=stats,
        latencies=latencies,
    )


def seed_window_state(scorer: Any, lakehouse: Any, day: dt.date) -> dict[str, int]:
    """Bootstrap the scorer's window state from the history before ``day`` (what a deployment
    does once before going live); idempotent. Returns the events added per feature set."""
    from slipway.windows.seeding import seed_until

    return {
        fs.name: seed_until(scorer.windows.aggregator(fs), lakehouse, day).added
        for fs in getattr(scorer.windows, "feature_sets", ())
    }

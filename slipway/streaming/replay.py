"""A landed day played through the live path, as the upstream would have streamed it.

The day's landing lines, in file order (the upstream writes them in arrival order), are appended
to the event stream by an *open-loop* appender: event ``i`` is due at ``start + i / rate`` and is
appended then, whether or not the consumer kept up, so latency is measured from the due time and
a slow consumer shows as latency instead of slowing the load (``rate=None`` appends everything at
once). A consumer decides them meanwhile; the latency of each event is the time from its due
time to its decision's entry in the served log (append -> decision logged).

Used by ``make run`` (the last simulated day), the streaming benchmark and the tests.
"""

from __future__ import annotations

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


def _served_latencies(streams: LiveStreams, due: dict[str, float]) -> list[float]:
    """Due time -> decision logged, per decided event of this replay (ms)."""
    out = []
    for entry in streams.served.primary.range():
        record = json.loads(entry.fields[DECISION_FIELD])
        start = due.get(record.get("position") or "")
        if start is not None:
            out.append((entry.appended_at.timestamp() - start) * 1000.0)
    return out


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
    """Append ``lines`` (at ``rate`` per second, open loop) while a consumer decides them."""
    consumer = StreamConsumer(scorer, streams, usecase, name=consumer_name, batch=batch)
    due: dict[str, float] = {}
    behind: list[float] = []
    done = threading.Event()

    def append() -> None:
        start = time.time()
        if rate is None:
            for position in streams.events.append_many([encode_event(x) for x in lines]):
                due[position] = start
        else:
            for i, line in enumerate(lines):
                when = start + i / rate
                wait = when - time.time()
                if wait > 0:
                    time.sleep(wait)
                else:
                    behind.append(-wait * 1000.0)
                due[streams.events.append(encode_event(line))] = when
        done.set()

    started = time.perf_counter()
    appender = threading.Thread(target=append, name="slipway-replay-appender", daemon=True)
    appender.start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        handled = consumer.step(block_ms=20)
        if not handled and done.is_set():
            state = streams.events.group_state(consumer.group)
            if state.backlog == 0:
                break
            if state.undelivered == 0:  # only retries left: re-read them (dead-lettered at last)
                consumer.recover()
    appender.join(timeout=5)
    seconds = time.perf_counter() - started
    latencies = _served_latencies(streams, due)
    return ReplayResult(
        appended=len(due),
        decided=consumer.stats.decided,
        dead_lettered=consumer.stats.dead_lettered,
        seconds=seconds,
        latency_ms=percentiles(latencies),
        behind_ms=percentiles(behind),
        consumer=consumer.stats,
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

"""The stream consumer: the long-running service that decides every event of the live stream.

``python -m slipway.streaming.consumer`` (``make serve`` starts it beside the HTTP app,
``deploy/prod/slipwayctl`` in production). Each cycle reads what arrived (``XREADGROUP``, up to
``batch`` entries), and per entry:

* decodes and validates it with the scorer's parser (silver's rules); a malformed event goes to
  the dead-letter log with its reasons (field and rule), is acked, and never blocks the stream;
* scores the valid ones in arrival order in one pass (``OnlineScorer.score_prepared``: window
  features, slow features, champion), the same decision path a POST to the HTTP app takes;
* appends the decisions to the served log, and only then acks the events.

A consumer killed at any point leaves its unacked entries pending: on start it first re-reads
its own pending entries (same ``--name``) and claims those idle under dead consumers
(``XAUTOCLAIM``), in order, before reading new ones. Re-scoring a redelivered event is safe: the
window aggregator is idempotent on the event id (it returns the features it recorded the first
time and changes no state), and the drain keeps one decision per event id. An event whose
scoring raises ``max_deliveries`` times goes to the dead letters too. No champion (or a champion
that cannot be loaded) is not the event's fault: nothing is acked, the consumer waits and retries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from slipway.serving.champion import ModelLoadError, NoChampionError
from slipway.serving.request import InvalidTransaction, PreparedTransaction
from slipway.streaming.log import Entry, LogUnavailable
from slipway.streaming.served import EventMeta, decision_record
from slipway.streaming.streams import EVENT_FIELD, LiveStreams
from slipway.usecase import UseCase

log = logging.getLogger(__name__)

SCORER_GROUP = "scorer"


@dataclass
class ConsumerStats:
    read: int = 0
    decided: int = 0
    dead_lettered: int = 0
    recovered: int = 0
    retried: int = 0
    batches: int = 0
    last_error: str | None = None
    dead_reasons: list[str] = field(default_factory=list)


def dead_letter(
    entry: Entry, stream: str, reason: str, errors: Sequence[Any] = ()
) -> dict[str, str]:
    """A dead-letter entry: the raw event exactly as it came, where it came from, and why."""
    return {
        "event": entry.fields.get(EVENT_FIELD, json.dumps(entry.fields)),
        "stream": stream,
        "position": entry.position,
        "deliveries": str(entry.deliveries),
        "reason": reason,
        "errors": json.dumps([e.as_dict() if hasattr(e, "as_dict") else str(e) for e in errors]),
        "rejected_at": dt.datetime.now(dt.UTC).isoformat(),
    }


class StreamConsumer:
    """One consumer of the scorer group; ``run`` until stopped, or ``step`` for one cycle."""

    def __init__(
        self,
        scorer: Any,
        streams: LiveStreams,
        usecase: UseCase,
        name: str | None = None,
        group: str = SCORER_GROUP,
        batch: int = 256,
        block_ms: int = 50,
        min_idle_ms: int = 30_000,
        max_deliveries: int = 5,
    ) -> None:
        self.scorer = scorer
        self.streams = streams
        self.usecase = usecase
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.group = group
        self.batch = batch
        self.block_ms = block_ms
        self.min_idle_ms = min_idle_ms
        self.max_deliveries = max_deliveries
        self.stats = ConsumerStats()
        streams.events.ensure_group(group)

    # -- one cycle ------------------------------------------------------------------------------
    def recover(self) -> int:
        """Decide what this consumer (same name) or a dead one left pending; returns how many."""
        done, seen = 0, set()
        while True:  # each pending entry once per pass: a retry waits for the next pass
            entries = self.streams.events.read_own_pending(self.group, self.name, self.batch)
            entries += self.streams.events.claim_idle(
                self.group, self.name, self.min_idle_ms, self.batch
            )
            fresh = [e for e in entries if e.position not in seen]
            if not fresh:
                return done
            seen.update(e.position for e in fresh)
            self.process(fresh)
            done += len(fresh)
            self.stats.recovered += len(fresh)
            if len(entries) < self.batch:  # that was everything pending
                return done

    def step(self, block_ms: int | None = None) -> int:
        """Read what arrived (waiting up to ``block_ms``), decide it; returns entries handled."""
        entries = self.streams.events.read_group(
            self.group, self.name, self.batch, self.block_ms if block_ms is None else block_ms
        )
        if entries:
            self.process(entries)
        return len(entries)

    def process(self, entries: Sequence[Entry]) -> None:
        """Decide ``entries`` in order; ack what was decided or dead-lettered."""
        stream = self.streams.events.name
        self.stats.read += len(entries)
        self.stats.batches += 1
        dead: list[dict[str, str]] = []
        valid: list[tuple[Entry, PreparedTransaction]] = []
        for entry in entries:
            raw = entry.fields.get(EVENT_FIELD)
            try:
                record = json.loads(raw) if raw is not None else None
            except ValueError as exc:
                dead.append(dead_letter(entry, stream, f"not JSON: {exc}"))
                continue
            if record is None:
                dead.append(dead_letter(entry, stream, f"no {EVENT_FIELD!r} field in the entry"))
                continue
            try:
                valid.append((entry, self.scorer.parser.parse(record)))
            except InvalidTransaction as exc:
                dead.append(dead_letter(entry, stream, str(exc), exc.errors))
        decided, unscored = self._decide(valid)
        for entry, reason, final in unscored:
            if final or entry.deliveries >= self.max_deliveries:
                dead.append(dead_letter(entry, stream, reason))
        if dead:
            self.streams.dead_letters.append_many(dead)
            self.stats.dead_lettered += len(dead)
            self.stats.dead_reasons.extend(d["reason"] for d in dead[:20])
        retry = {
            e.position
            for e, _, final in unscored
            if not final and e.deliveries < self.max_deliveries
        }
        self.stats.retried += len(retry)
        self.streams.events.ack(
            self.group, [e.position for e in entries if e.position not in retry]
        )
        self.stats.decided += decided

    def _decide(
        self, valid: list[tuple[Entry, PreparedTransaction]]
    ) -> tuple[int, list[tuple[Entry, str, bool]]]:
        """Score and log ``valid``; returns how many were logged, and those that could not be
        (with the reason, and whether retrying is pointless)."""
        if not valid:
            return 0, []
        try:
            results = self.scorer.score_prepared([p for _, p in valid], include_features=True)
            pairs = list(zip(valid, results, strict=True))
            unscored: list[tuple[Entry, str, bool]] = []
        except (NoChampionError, ModelLoadError):
            raise
        except Exception as exc:  # find the event(s) at fault: score one at a time
            log.warning("scoring a batch failed (%s): scoring one by one", exc)
            pairs, unscored = [], []
            for entry, prepared in valid:
                try:
                    (result,) = self.scorer.score_prepared([prepared], include_features=True)
                    pairs.append(((entry, prepared), result))
                except (NoChampionError, ModelLoadError):
                    raise
                except ValueError as bad:  # the event itself is bad (e.g. InvalidWindowEvent)
                    unscored.append((entry, f"invalid event: {type(bad).__name__}: {bad}", True))
                except Exception as one:
                    unscored.append((entry, f"scoring failed: {type(one).__name__}: {one}", False))
        for _, result in pairs:  # the scorer's timings are per pass: say how many it held
            result.timing_ms = {**result.timing_ms, "pass_rows": len(pairs)}
        records = [
            decision_record(
                self.usecase,
                prepared.values,
                result,
                EventMeta(
                    source="stream",
                    stream=self.streams.events.name,
                    position=entry.position,
                    appended_at=entry.appended_at,
                    consumer=self.name,
                    deliveries=entry.deliveries,
                ),
            )
            for (entry, prepared), result in pairs
        ]
        self.streams.served.append(records)
        return len(records), unscored

    # -- the service ------------------------------------------------------------------------------
    def run(
        self,
        stop: threading.Event | None = None,
        idle_exit_s: float | None = None,
        recover_every_s: float = 30.0,
    ) -> ConsumerStats:
        """Decide events until ``stop`` is set (or nothing arrived for ``idle_exit_s``)."""
        stop = stop or threading.Event()
        last_seen = last_recovery = time.monotonic()
        self._guarded(self.recover)
        while not stop.is_set():
            handled = self._guarded(self.step)
            now = time.monotonic()
            if handled:
                last_seen = now
            elif idle_exit_s is not None and now - last_seen >= idle_exit_s:
                break
            if now - last_recovery >= recover_every_s:
                self._guarded(self.recover)
                last_recovery = now
        return self.stats

    def _guarded(self, fn: Any) -> int:
        """Run one cycle; a missing champion or an unreachable log waits and retries."""
        try:
            return int(fn() or 0)
        except (NoChampionError, ModelLoadError, LogUnavailable) as exc:
            if str(exc) != self.stats.last_error:
                log.error("consumer %s waits: %s", self.name, exc)
            self.stats.last_error = str(exc)
            time.sleep(1.0)
            return 0


def main(argv: list[str] | None = None) -> int:
    from slipway.serving.scorer import OnlineScorer
    from slipway.settings import load_settings, require_prod_settings
    from slipway.streaming.streams import open_streams
    from slipway.usecases import get_usecase

    parser = argparse.ArgumentParser(
        prog="python -m slipway.streaming.consumer", description=__doc__
    )
    parser.add_argument(
        "--name",
        default=None,
        help="consumer name (default host-pid); reuse it after a restart to resume its pending entries",
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--partition",
        type=int,
        default=load_settings().stream_partition,
        help="the event-stream partition to consume (0..SLIPWAY_STREAM_PARTITIONS-1): one "
        "consumer per partition keeps each entity's events in order",
    )
    parser.add_argument(
        "--idle-exit", type=float, default=None, help="exit after this many idle seconds"
    )
    args = parser.parse_args(argv)
    require_prod_settings()  # in production, every location set: no silent embedded fallback
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    usecase = get_usecase()
    scorer = OnlineScorer.from_env(usecase)
    try:
        scorer.warm_up()
    except Exception as exc:  # start anyway: the loop waits for a champion
        log.warning("warm-up failed: %s", exc)
    from slipway.serving.app import freeze_long_lived_objects

    freeze_long_lived_objects()
    streams = open_streams(usecase, partition=args.partition)
    name = args.name or (
        f"{socket.gethostname()}-p{args.partition}" if len(streams.partitions) > 1 else None
    )
    consumer = StreamConsumer(scorer, streams, usecase, name=name, batch=args.batch)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("consumer %s reading %s (%s)", consumer.name, streams.events.name, streams.url)
    stats = consumer.run(stop, idle_exit_s=args.idle_exit)
    log.info("consumer %s stopped: %s", consumer.name, stats)
    streams.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

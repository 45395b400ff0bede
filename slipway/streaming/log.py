"""Append-only logs with consumer groups: the shape both the live stream and the served log share.

A log is what Redis Streams are: entries appended with a position, read by *consumer groups*
(each entry goes to one consumer of a group, and stays *pending* for that consumer until it is
acknowledged), so a consumer that dies mid-batch leaves its entries pending, and a successor
claims them (``claim_idle``, Redis's ``XAUTOCLAIM``) or, under the same name, re-reads them
(``read_own_pending``, ``XREADGROUP ... 0``). Delivery is at least once: whatever acts on an
entry must be idempotent on the entry's own id (the event id), and acks only after its effect is
durable.

Two implementations with the same semantics: ``RedisLog`` (production, ``redis://`` URLs) and
``SqliteLog`` (the embedded default: one SQLite file per log, safe across processes), chosen by
``open_log(url, name)``: an empty URL is embedded.

**Partitions.** A consumer group hands entries to whichever consumer asks, so two consumers of
one log may decide two events of one entity out of order, and the second-arriving one would miss
the first in its window features. A partitioned stream is N logs (``partition_name``); every
entry goes to the partition of its entity (``partition_of``: a stable hash, the same in every
process), and one consumer per partition keeps each entity's events in arrival order while N
consumers share the load. ``PartitionedAppender`` is the upstream's side of that.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Entry:
    """One delivered entry: its position in the log, its fields, and how often it was delivered."""

    position: str
    fields: dict[str, str]
    appended_at: dt.datetime
    deliveries: int = 1


@dataclass(frozen=True)
class GroupState:
    """Where a consumer group stands: entries not yet delivered, and delivered but not acked."""

    undelivered: int
    pending: int

    @property
    def backlog(self) -> int:
        return self.undelivered + self.pending


class LogUnavailable(ConnectionError):
    """The log's server cannot be reached (the caller decides: degrade, spool or retry)."""


class EventLog(Protocol):
    """A durable, append-only log read through consumer groups."""

    name: str
    url: str

    def append(self, fields: Mapping[str, str]) -> str: ...

    def append_many(self, items: Sequence[Mapping[str, str]]) -> list[str]: ...

    def ensure_group(self, group: str, from_start: bool = True) -> None: ...

    def read_group(
        self, group: str, consumer: str, count: int, block_ms: int = 0
    ) -> list[Entry]: ...

    def read_own_pending(self, group: str, consumer: str, count: int) -> list[Entry]: ...

    def claim_idle(
        self, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[Entry]: ...

    def ack(self, group: str, positions: Sequence[str]) -> int: ...

    def group_state(self, group: str) -> GroupState: ...

    def length(self) -> int: ...

    def range(self, count: int | None = None) -> list[Entry]: ...

    def delete(self) -> None: ...

    def close(self) -> None: ...


def open_log(url: str | None, name: str, directory: str | Path | None = None) -> EventLog:
    """The log ``name``: on Redis for a ``redis://``/``rediss://``/``unix://`` URL, else embedded.

    ``directory`` holds embedded logs (one SQLite file each); it defaults to ``SLIPWAY_STREAM_DIR``
    (``<data>/streams``). For Redis, ``name`` is the stream's key.
    """
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        from slipway.streaming.redis_log import RedisLog

        return RedisLog(url, name)
    if url:
        raise ValueError(
            f"stream URL must be redis://, rediss:// or unix:// (or empty: embedded), got {url!r}"
        )
    from slipway.streaming.sqlite_log import SqliteLog

    if directory is None:
        from slipway.settings import load_settings

        directory = load_settings().stream_dir
    return SqliteLog(Path(directory) / f"{name.replace(':', '.')}.sqlite", name)


def partition_name(name: str, partition: int) -> str:
    """The log of ``partition``: partition 0 keeps the stream's own name, so one partition is
    exactly the unpartitioned stream."""
    return name if partition == 0 else f"{name}:{partition}"


def partition_of(key: str, partitions: int) -> int:
    """The partition of an entity key: CRC-32 modulo N (stable across processes and hosts,
    unlike Python's salted ``hash``)."""
    if partitions <= 1:
        return 0
    return zlib.crc32(key.encode("utf-8")) % partitions


def entity_of_event(field: str, key: str) -> Callable[[Mapping[str, str]], str | None]:
    """Reads the entity ``key`` out of a stream entry whose ``field`` holds the event as JSON
    (None for an entry that is not a JSON object with that key: it is dead-lettered wherever
    it lands, so it goes to partition 0)."""

    def entity(fields: Mapping[str, str]) -> str | None:
        try:
            record: Any = json.loads(fields[field])
        except (KeyError, TypeError, ValueError):
            return None
        value = record.get(key) if isinstance(record, dict) else None
        return None if value is None else str(value)

    return entity


class PartitionedAppender:
    """Appends entries to the partition of their entity, in order within each partition."""

    def __init__(
        self, logs: Sequence[EventLog], entity: Callable[[Mapping[str, str]], str | None]
    ) -> None:
        if not logs:
            raise ValueError("a partitioned stream needs at least one log")
        self.logs = tuple(logs)
        self.entity = entity

    def partition(self, fields: Mapping[str, str]) -> int:
        key = self.entity(fields) if len(self.logs) > 1 else None
        return 0 if key is None else partition_of(key, len(self.logs))

    def append_many(self, items: Sequence[Mapping[str, str]]) -> list[tuple[int, str]]:
        """``(partition, position)`` of each item, in the items' order; one append per partition."""
        groups: dict[int, list[int]] = {}
        for i, fields in enumerate(items):
            groups.setdefault(self.partition(fields), []).append(i)
        out: list[tuple[int, str]] = [(0, "")] * len(items)
        for p, indices in groups.items():
            positions = self.logs[p].append_many([items[i] for i in indices])
            for i, position in zip(indices, positions, strict=True):
                out[i] = (p, position)
        return out

    def append(self, fields: Mapping[str, str]) -> tuple[int, str]:
        p = self.partition(fields)
        return p, self.logs[p].append(fields)

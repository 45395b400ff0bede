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
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


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

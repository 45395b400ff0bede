"""The production log: a Redis stream read through a consumer group.

``append`` is ``XADD`` (Redis assigns the position, ``<ms>-<seq>``), ``read_group`` is
``XREADGROUP ... >``, ``read_own_pending`` is ``XREADGROUP ... 0`` (what this consumer was given
and never acked, after a restart under the same name), ``claim_idle`` is ``XAUTOCLAIM`` (what a
dead consumer left pending), ``ack`` is ``XACK``. Durability is the server's: run Redis with
``appendonly yes`` (``appendfsync everysec`` loses at most a second on a host crash). Connection
failures surface as ``LogUnavailable`` so the caller decides (the HTTP path spools its
decisions, the consumer waits and retries).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from slipway.streaming.log import Entry, GroupState, LogUnavailable


def _appended_at(position: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(position.split("-", 1)[0]) / 1000.0, dt.UTC)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLog:
    """The stream at key ``name`` on the Redis server at ``url``."""

    def __init__(self, url: str, name: str, socket_timeout: float = 5.0) -> None:
        self.url = url
        self.name = name
        self._socket_timeout = socket_timeout
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=min(socket_timeout, 1.0),
            decode_responses=True,
        )

    def _call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._redis, fn)(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise LogUnavailable(f"Redis at {self.url} ({self.name}): {exc}") from exc

    def _entries(self, raw: list, deliveries: dict[str, int] | None = None) -> list[Entry]:
        out = []
        for position, fields in raw:
            if fields is None:  # XAUTOCLAIM/XREADGROUP 0 report entries trimmed meanwhile
                continue
            position = _text(position)
            out.append(
                Entry(
                    position,
                    {_text(k): _text(v) for k, v in fields.items()},
                    _appended_at(position),
                    (deliveries or {}).get(position, 1),
                )
            )
        return out

    # -- writing ------------------------------------------------------------------------------
    def append(self, fields: Mapping[str, str]) -> str:
        return _text(self._call("xadd", self.name, dict(fields)))

    def append_many(self, items: Sequence[Mapping[str, str]]) -> list[str]:
        if not items:
            return []
        try:
            pipe = self._redis.pipeline(transaction=False)
            for fields in items:
                pipe.xadd(self.name, dict(fields))
            return [_text(p) for p in pipe.execute()]
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise LogUnavailable(f"Redis at {self.url} ({self.name}): {exc}") from exc

    # -- groups -------------------------------------------------------------------------------
    def ensure_group(self, group: str, from_start: bool = True) -> None:
        try:
            self._call(
                "xgroup_create", self.name, group, id="0" if from_start else "$", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_group(self, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Entry]:
        block = block_ms if block_ms > 0 else None
        if block is not None and block / 1000.0 >= self._socket_timeout:
            block = int(self._socket_timeout * 1000) - 100
        raw = self._call("xreadgroup", group, consumer, {self.name: ">"}, count=count, block=block)
        return self._entries(raw[0][1]) if raw else []

    def _delivery_counts(self, group: str, positions: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for position in positions:
            info = self._call("xpending_range", self.name, group, position, position, 1)
            if info:
                counts[position] = int(info[0]["times_delivered"])
        return counts

    def read_own_pending(self, group: str, consumer: str, count: int) -> list[Entry]:
        raw = self._call("xreadgroup", group, consumer, {self.name: "0"}, count=count)
        entries = raw[0][1] if raw else []
        positions = [_text(p) for p, _ in entries]
        return self._entries(entries, self._delivery_counts(group, positions))

    def claim_idle(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        claimed = []
        start = "0-0"
        while len(claimed) < count:
            result = self._call(
                "xautoclaim", self.name, group, consumer, min_idle_ms, start, count=count
            )
            start, entries = _text(result[0]), result[1]
            claimed.extend(entries)
            if start == "0-0":
                break
        positions = [_text(p) for p, f in claimed if f is not None]
        return self._entries(claimed[:count], self._delivery_counts(group, positions))

    def ack(self, group: str, positions: Sequence[str]) -> int:
        if not positions:
            return 0
        return int(self._call("xack", self.name, group, *positions))

    # -- introspection ------------------------------------------------------------------------
    def group_state(self, group: str) -> GroupState:
        groups = self._call("xinfo_groups", self.name)
        for info in groups:
            if _text(info["name"]) == group:
                pending = int(info["pending"])
                lag = info.get("lag")
                if lag is None:  # Redis cannot tell after deletions: count the entries after
                    last = _text(info["last-delivered-id"])
                    lag = len(self._call("xrange", self.name, f"({last}", "+"))
                return GroupState(int(lag), pending)
        raise KeyError(f"stream {self.name!r} has no consumer group {group!r} (ensure_group)")

    def length(self) -> int:
        return int(self._call("xlen", self.name))

    def range(self, count: int | None = None) -> list[Entry]:
        raw = self._call("xrange", self.name, "-", "+", count=count)
        return [
            Entry(_text(p), {_text(k): _text(v) for k, v in f.items()}, _appended_at(_text(p)), 0)
            for p, f in raw
        ]

    def delete(self) -> None:
        self._call("delete", self.name)

    def close(self) -> None:
        self._redis.close()

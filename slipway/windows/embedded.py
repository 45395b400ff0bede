"""The embedded aggregator: each entity's recent events in one SQLite file under the data dir.

No server: ``make run`` and tests use it by default. Every ``apply`` is one ``BEGIN IMMEDIATE``
transaction (read the entity's events in the horizon, compute with the reference semantics,
insert, prune), so several processes on one file never lose an update: the second writer waits
for the first (WAL mode, a busy timeout) and then sees its event. The event id is the primary
key, which makes redelivery a no-op.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from slipway.usecase import WindowFeatureSet
from slipway.windows.aggregator import WindowResult, WindowStoreUnavailable
from slipway.windows.semantics import (
    ONE_MICROSECOND,
    EventCodec,
    WindowEvent,
    input_kinds,
    reducer,
)

BUSY_TIMEOUT_MS = 10_000
STATE_SCHEMA = 2  # bump when the stored layout changes
NO_PRUNING = -(2**62)
PRUNE_SLACK_US = 3600 * 1_000_000


def state_fingerprint(fs: WindowFeatureSet) -> str:
    """A short hash of what the stored state depends on (inputs, kinds, decimals, horizon).

    State written under another declaration is not silently reused: Redis keys carry it, the
    SQLite file refuses to open with a different one.
    """
    from slipway.windows.semantics import decimals_of

    shape = {
        "schema": STATE_SCHEMA,
        "entity": fs.entity,
        "inputs": [[c, k, decimals_of(fs, c)] for c, k in input_kinds(fs).items()],
        "horizon_us": fs.horizon // ONE_MICROSECOND,
        "lateness_us": fs.allowed_lateness // ONE_MICROSECOND,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:12]


class EmbeddedAggregator:
    """:class:`~slipway.windows.aggregator.WindowAggregator` on a local SQLite file."""

    def __init__(self, feature_set: WindowFeatureSet, path: Path) -> None:
        self.feature_set = feature_set
        self.path = Path(path)
        self.codec = EventCodec(feature_set)
        self.reducer = reducer(feature_set)
        self._horizon_us = feature_set.horizon // ONE_MICROSECOND
        self._keep_us = self._horizon_us + feature_set.allowed_lateness // ONE_MICROSECOND
        self._lock = threading.Lock()
        n = len(feature_set.inputs)
        values = ", ".join(f"v{i}" for i in range(n))
        self._select = (
            "SELECT event_id, t_us, a_us"
            + (f", {values}" if n else "")
            + " FROM events WHERE entity = ? AND t_us >= ? AND t_us < ?"
        )
        self._insert = (
            "INSERT INTO events (entity, event_id, t_us, a_us"
            + (f", {values}" if n else "")
            + ") VALUES (?, ?, ?, ?"
            + ", ?" * n
            + ")"
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            self._init_schema(n)
        except sqlite3.Error as exc:
            raise WindowStoreUnavailable(f"window state {self.path}: {exc}") from exc

    def _init_schema(self, n: int) -> None:
        c = self._conn
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        columns = "".join(f", v{i}" for i in range(n))
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            c.execute(
                "CREATE TABLE IF NOT EXISTS events (entity TEXT NOT NULL, event_id TEXT PRIMARY KEY,"
                f" t_us INTEGER NOT NULL, a_us INTEGER NOT NULL{columns})"
            )
            c.execute("CREATE INDEX IF NOT EXISTS events_by_entity ON events (entity, t_us)")
            c.execute(
                "CREATE TABLE IF NOT EXISTS entities (entity TEXT PRIMARY KEY,"
                " pruned_below INTEGER NOT NULL)"
            )
            fingerprint = state_fingerprint(self.feature_set)
            row = c.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
            if row is None:
                c.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (fingerprint,))
            elif row[0] != fingerprint:
                raise ValueError(
                    f"{self.path} holds window state of another declaration of "
                    f"{self.feature_set.name!r} ({row[0]}, now {fingerprint}): remove it and seed again"
                )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    # -- one event, one transaction -----------------------------------------------------------
    def _apply_one(self, event: WindowEvent, compute: bool) -> tuple[WindowResult, bool]:
        c = self._conn
        duplicate, pruned_below, oldest, newest = c.execute(
            "SELECT EXISTS (SELECT 1 FROM events WHERE event_id = ?),"
            " (SELECT pruned_below FROM entities WHERE entity = ?),"
            " (SELECT min(t_us) FROM events WHERE entity = ?),"
            " (SELECT max(t_us) FROM events WHERE entity = ?)",
            (event.event_id, event.entity, event.entity, event.entity),
        ).fetchone()
        pruned_below = NO_PRUNING if pruned_below is None else pruned_below
        features: dict[str, Any] = {}
        if compute:
            rows = c.execute(
                self._select, (event.entity, event.t_us - self._horizon_us, event.t_us)
            ).fetchall()
            entity = event.entity
            history = [WindowEvent(r[0], entity, r[1], r[2], r[3:]) for r in rows]
            features = self.reducer.finalize(self.reducer.raw(history, event))
        complete = event.t_us - self._horizon_us >= pruned_below
        added = not duplicate and event.t_us >= pruned_below
        if added:
            c.execute(
                self._insert, (event.entity, event.event_id, event.t_us, event.a_us, *event.values)
            )
            # Kept events outside every window change no answer, so pruning can wait until an
            # hour's worth is due: most events then cost no DELETE.
            cutoff = max(newest or event.t_us, event.t_us) - self._keep_us
            if oldest is not None and oldest < cutoff - PRUNE_SLACK_US:
                c.execute(
                    "DELETE FROM events WHERE entity = ? AND t_us < ?", (event.entity, cutoff)
                )
                c.execute(
                    "INSERT INTO entities VALUES (?, ?) ON CONFLICT (entity) DO UPDATE SET"
                    " pruned_below = max(pruned_below, excluded.pruned_below)",
                    (event.entity, cutoff),
                )
        return WindowResult(event.event_id, features, bool(duplicate), complete), added

    def _transaction(
        self, events: Sequence[WindowEvent], compute: bool
    ) -> list[tuple[WindowResult, bool]]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    out = [self._apply_one(e, compute) for e in events]
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise WindowStoreUnavailable(f"window state {self.path}: {exc}") from exc
        return out

    def apply(self, event: Mapping[str, Any]) -> WindowResult:
        return self._transaction([self.codec.encode(event)], compute=True)[0][0]

    def apply_many(self, events: Sequence[Mapping[str, Any]]) -> list[WindowResult]:
        """Each event in order, all in one transaction (atomic per event and per batch)."""
        encoded = [self.codec.encode(e) for e in events]
        return [r for r, _ in self._transaction(encoded, compute=True)] if encoded else []

    def seed(self, events: Iterable[Mapping[str, Any]], batch: int = 5_000) -> int:
        added = 0
        chunk: list[WindowEvent] = []
        for event in events:
            chunk.append(self.codec.encode(event))
            if len(chunk) >= batch:
                added += sum(a for _, a in self._transaction(chunk, compute=False))
                chunk = []
        if chunk:
            added += sum(a for _, a in self._transaction(chunk, compute=False))
        return added

    def state_size(self) -> int:
        """Events held (all entities)."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

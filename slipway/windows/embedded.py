"""The embedded aggregator: each entity's recent events in one SQLite file under the data dir.

No server: ``make run`` and tests use it by default. Every ``apply`` is one ``BEGIN IMMEDIATE``
transaction (check the id, compute, insert, prune), so several processes on one file never lose
an update: the second writer waits for the first (WAL mode, a busy timeout) and then sees its
event. ``apply_many`` puts all its events in one transaction: the commit (the costly part: WAL
pages written) is paid once per call, and the call is atomic for all its events. The event id
is unique (the primary key in files made before the clustered layout, a unique index since),
which makes redelivery a no-op.

What an event costs (one at a time): encode, one SELECT (duplicate? pruned mark? version), the
running-state update, one INSERT and one version UPSERT, the COMMIT. New files keep the events
in a table clustered by ``(entity, t_us, event_id)`` (WITHOUT ROWID), so an insert touches two
B-trees, and the WAL is checkpointed by a background thread (``_Checkpointer``) rather than by the
applying connection: that checkpoint's fsync was most of a commit's cost at SQLite's default
(measured in docs/benchmarks.md), and every ``WAL_CHECKPOINT_PAGES`` pages it stalled one apply
for 90-270 ms.

The file holds the raw events (the truth); the running aggregates of ``slipway.windows.running``
live in this process, per entity, built from the file on first use and kept up to date by every
event this process applies. Each entity has a version in the file, bumped by every event added to
it: an entity another process changed since is rebuilt from the file, so the in-process state is
never stale. An event the running state cannot answer exactly (late, out of order, a
redelivery) is answered by the reference reduction over the entity's kept events.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from slipway.usecase import WindowFeatureSet
from slipway.windows.aggregator import WindowResult, WindowStoreUnavailable
from slipway.windows.running import EntityWindows, WindowPlan
from slipway.windows.semantics import (
    ONE_MICROSECOND,
    EventCodec,
    WindowEvent,
    input_kinds,
    reducer,
)

BUSY_TIMEOUT_MS = 10_000
# Bump when the stored layout changes. 2 -> 3 (running state): the SQLite file only gained the
# additive ``versions`` table, so its fingerprint stays at 2 and older files keep working; Redis
# keeps running aggregates in its keys, which depend on the aggregations too (``running=True``).
STATE_SCHEMA = 2
RUNNING_SCHEMA = 3
NO_PRUNING = -(2**62)
PRUNE_SLACK_US = 3600 * 1_000_000
WAL_CHECKPOINT_PAGES = 8_000  # the applying connection's own checkpoint: a backstop only
CHECKPOINT_EVERY_S = 0.2  # the background checkpointer's period


class _Checkpointer:
    """Copies the WAL back into the database file on its own thread and connection.

    A checkpoint fsyncs the database file; run by the connection that applies events (SQLite's
    autocheckpoint), it stalled one apply for 90-270 ms every few thousand events on the live
    path (the e2e benchmark's p99). A PASSIVE checkpoint never takes the writer's lock, so events
    keep being applied while it runs, and sqlite3 releases the GIL for it. The applying
    connection keeps an autocheckpoint at ``WAL_CHECKPOINT_PAGES`` as a backstop: it fires only
    if this thread falls that far behind (or has stopped).
    """

    def __init__(self, path: Path, every_s: float = CHECKPOINT_EVERY_S) -> None:
        self.path, self.every_s = path, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="slipway-windows-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=0.05)
        except sqlite3.Error:
            return  # the backstop checkpoints instead
        try:
            while not self._stop.wait(self.every_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:  # busy (another process' checkpoint), or closing
                    continue
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


CACHE_ENTITIES = 100_000  # entities whose running state one process keeps (LRU)


def state_fingerprint(fs: WindowFeatureSet, running: bool = False) -> str:
    """A short hash of what the stored state depends on (inputs, kinds, decimals, horizon; with
    ``running``, also the windows and operations the running aggregates are kept for).

    State written under another declaration is not silently reused: Redis keys carry it, the
    SQLite file refuses to open with a different one.
    """
    from slipway.windows.semantics import decimals_of

    shape: dict[str, Any] = {
        "schema": RUNNING_SCHEMA if running else STATE_SCHEMA,
        "entity": fs.entity,
        "inputs": [[c, k, decimals_of(fs, c)] for c, k in input_kinds(fs).items()],
        "horizon_us": fs.horizon // ONE_MICROSECOND,
        "lateness_us": fs.allowed_lateness // ONE_MICROSECOND,
    }
    if running:
        shape["running"] = WindowPlan.of(fs).shape()
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:12]


class EmbeddedAggregator:
    """:class:`~slipway.windows.aggregator.WindowAggregator` on a local SQLite file.

    ``incremental=False`` answers every event by the reference reduction over the entity's kept
    events (the previous implementation's cost; benchmarks and parity tests compare the two).
    """

    def __init__(
        self,
        feature_set: WindowFeatureSet,
        path: Path,
        incremental: bool = True,
        cache_entities: int = CACHE_ENTITIES,
    ) -> None:
        self.feature_set = feature_set
        self.path = Path(path)
        self.codec = EventCodec(feature_set)
        self.reducer = reducer(feature_set)
        self.plan = WindowPlan.of(feature_set)
        self.incremental = incremental
        self._horizon_us = feature_set.horizon // ONE_MICROSECOND
        self._keep_us = self._horizon_us + feature_set.allowed_lateness // ONE_MICROSECOND
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, EntityWindows] = OrderedDict()
        self._cache_entities = cache_entities
        n = len(feature_set.inputs)
        values = ", ".join(f"v{i}" for i in range(n))
        self._select = (
            "SELECT event_id, t_us, a_us"
            + (f", {values}" if n else "")
            + " FROM events WHERE entity = ?"
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
        self._checkpointer = _Checkpointer(self.path)
        weakref.finalize(self, self._checkpointer.close)  # an aggregator dropped unclosed

    def _init_schema(self, n: int) -> None:
        c = self._conn
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # A commit appends a few pages to the WAL (no fsync under synchronous=NORMAL); the
        # checkpoint that copies them back fsyncs, and at SQLite's default (every 1,000 pages:
        # ~250 events applied one by one) that was most of an event's cost. Every 8,000 pages
        # it is an eighth of that (journal_size_limit keeps the WAL file under 64 MiB).
        c.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        c.execute(f"PRAGMA journal_size_limit={64 * 2**20}")
        columns = "".join(f", v{i}" for i in range(n))
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            exists = c.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
            ).fetchone()
            if not exists:
                # A new file clusters each entity's events by (entity, t_us) in the table
                # itself (no rowid): an insert touches two B-trees (the table, the id index)
                # instead of three, so fewer pages per commit. Files made before keep their
                # rowid layout; every statement below reads and writes both alike.
                c.execute(
                    "CREATE TABLE events (entity TEXT NOT NULL, event_id TEXT NOT NULL,"
                    f" t_us INTEGER NOT NULL, a_us INTEGER NOT NULL{columns},"
                    " PRIMARY KEY (entity, t_us, event_id)) WITHOUT ROWID"
                )
                c.execute("CREATE UNIQUE INDEX events_by_id ON events (event_id)")
            c.execute(
                "CREATE TABLE IF NOT EXISTS entities (entity TEXT PRIMARY KEY,"
                " pruned_below INTEGER NOT NULL)"
            )
            # Bumped by every event added to an entity: tells a process that its in-memory
            # running state of that entity is stale (another process wrote since).
            c.execute(
                "CREATE TABLE IF NOT EXISTS versions (entity TEXT PRIMARY KEY,"
                " version INTEGER NOT NULL) WITHOUT ROWID"
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

    # -- one entity's state, in memory --------------------------------------------------------
    def _entity(self, entity: str, version: int) -> EntityWindows:
        """The entity's running state at ``version`` (the file's): cached, or built from the file."""
        cache = self._cache
        state = cache.get(entity)
        if state is not None and state.version == version:
            cache.move_to_end(entity)
            return state
        rows = self._conn.execute(self._select, (entity,)).fetchall()
        state = EntityWindows(
            self.plan, [WindowEvent(r[0], entity, r[1], r[2], r[3:]) for r in rows], version
        )
        cache[entity] = state
        if len(cache) > self._cache_entities:
            cache.popitem(last=False)
        return state

    # -- one event, one transaction -----------------------------------------------------------
    def _apply_one(self, event: WindowEvent, compute: bool) -> tuple[WindowResult, bool]:
        c = self._conn
        entity = event.entity
        duplicate, pruned_below, version = c.execute(
            "SELECT EXISTS (SELECT 1 FROM events WHERE event_id = ?),"
            " (SELECT pruned_below FROM entities WHERE entity = ?),"
            " (SELECT version FROM versions WHERE entity = ?)",
            (event.event_id, entity, entity),
        ).fetchone()
        pruned_below = NO_PRUNING if pruned_below is None else pruned_below
        state = self._entity(entity, version or 0)
        features: dict[str, Any] = {}
        incremental = False
        if compute:
            if self.incremental and state.fast(event):
                raw = state.raw(event)
                incremental = True
            else:  # the exact path: the reference over the entity's kept events
                raw = self.reducer.raw(state.events, event)
            features = self.reducer.finalize(raw)
        complete = event.t_us - self._horizon_us >= pruned_below
        added = not duplicate and event.t_us >= pruned_below
        if added:
            c.execute(self._insert, (entity, event.event_id, event.t_us, event.a_us, *event.values))
            state.insert(event)
            if not compute:  # seeding: leave the state as the next live event will want it
                state.settle()
            # Kept events outside every window change no answer, so pruning can wait until an
            # hour's worth is due: most events then cost no DELETE.
            cutoff = state.t_max - self._keep_us
            if state.times[0] < cutoff - PRUNE_SLACK_US:
                state.prune(cutoff)
                c.execute("DELETE FROM events WHERE entity = ? AND t_us < ?", (entity, cutoff))
                c.execute(
                    "INSERT INTO entities VALUES (?, ?) ON CONFLICT (entity) DO UPDATE SET"
                    " pruned_below = max(pruned_below, excluded.pruned_below)",
                    (entity, cutoff),
                )
            c.execute(
                "INSERT INTO versions VALUES (?, 1) ON CONFLICT (entity) DO UPDATE SET"
                " version = version + 1",
                (entity,),
            )
            state.version = (version or 0) + 1
        result = WindowResult(event.event_id, features, bool(duplicate), complete, incremental)
        return result, added

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
                    self._cache.clear()  # it may hold what was just rolled back
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
        self._checkpointer.close()
        with self._lock:
            self._conn.close()

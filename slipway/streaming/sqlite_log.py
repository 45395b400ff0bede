"""The embedded log: Redis Streams' consumer-group semantics in one SQLite file, no server.

Several processes may append and consume at once (WAL journal, every state change in one
``BEGIN IMMEDIATE`` transaction). Entries are numbered by an autoincrement sequence (the
position); a group records the last sequence it delivered; a delivered entry is a row of
``pending`` (consumer, delivery time, delivery count) until acknowledged. With
``synchronous=NORMAL`` under WAL a committed append survives the process being killed
(``kill -9``); only a power loss can take the last commits (``SLIPWAY_STREAM_FSYNC=1`` makes every
commit fsync).

A blocking read polls: it first looks for new entries with a plain read (readers never block the
appender under WAL) and only takes the write lock when there is something to deliver.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from slipway.settings import load_settings
from slipway.streaming.log import Entry, GroupState

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    fields TEXT NOT NULL,
    appended_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    grp TEXT NOT NULL,
    seq INTEGER NOT NULL,
    consumer TEXT NOT NULL,
    delivered_at REAL NOT NULL,
    deliveries INTEGER NOT NULL,
    PRIMARY KEY (grp, seq)
);
CREATE INDEX IF NOT EXISTS pending_by_consumer ON pending (grp, consumer, seq);
"""

POLL_S = 0.001


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class SqliteLog:
    """One log in one SQLite file (``path``); thread-safe within a process."""

    def __init__(self, path: str | Path, name: str) -> None:
        self.path = Path(path)
        self.name = name
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        fsync = load_settings().stream_fsync
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.executescript(SCHEMA)

    # -- writing ------------------------------------------------------------------------------
    def append(self, fields: Mapping[str, str]) -> str:
        return self.append_many([fields])[0]

    def append_many(self, items: Sequence[Mapping[str, str]]) -> list[str]:
        if not items:
            return []
        now = time.time()
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                positions = []
                for fields in items:
                    cur.execute(
                        "INSERT INTO entries (fields, appended_at) VALUES (?, ?)",
                        (json.dumps(dict(fields), separators=(",", ":")), now),
                    )
                    positions.append(str(cur.lastrowid))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return positions

    # -- groups -------------------------------------------------------------------------------
    def ensure_group(self, group: str, from_start: bool = True) -> None:
        with self._lock:
            start = 0
            if not from_start:
                row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM entries").fetchone()
                start = int(row[0])
            self._db.execute(
                "INSERT OR IGNORE INTO groups (name, last_seq) VALUES (?, ?)", (group, start)
            )

    def _last_seq(self, group: str) -> int:
        row = self._db.execute("SELECT last_seq FROM groups WHERE name = ?", (group,)).fetchone()
        if row is None:
            raise KeyError(f"log {self.name!r} has no consumer group {group!r} (ensure_group)")
        return int(row[0])

    def _entries(self, rows: list[tuple]) -> list[Entry]:
        return [
            Entry(str(seq), json.loads(fields), _utc(appended), int(deliveries))
            for seq, fields, appended, deliveries in rows
        ]

    def _deliver_new(self, group: str, consumer: str, count: int) -> list[Entry]:
        with self._lock:
            last = self._last_seq(group)
            peek = self._db.execute(
                "SELECT 1 FROM entries WHERE seq > ? LIMIT 1", (last,)
            ).fetchone()
            if peek is None:
                return []
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                last = self._last_seq(group)  # another process may have moved it
                rows = cur.execute(
                    "SELECT seq, fields, appended_at, 1 FROM entries WHERE seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (last, count),
                ).fetchall()
                if rows:
                    now = time.time()
                    cur.executemany(
                        "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, 1)",
                        [(group, r[0], consumer, now) for r in rows],
                    )
                    cur.execute(
                        "UPDATE groups SET last_seq = ? WHERE name = ?", (rows[-1][0], group)
                    )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return self._entries(rows)

    def read_group(self, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Entry]:
        """New entries for ``consumer`` (each goes to one consumer of the group), now pending."""
        deadline = time.monotonic() + block_ms / 1000.0
        while True:
            entries = self._deliver_new(group, consumer, count)
            if entries or time.monotonic() >= deadline:
                return entries
            time.sleep(POLL_S)

    def read_own_pending(self, group: str, consumer: str, count: int) -> list[Entry]:
        """Entries delivered to ``consumer`` and never acked (a restart under the same name)."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                rows = cur.execute(
                    "SELECT e.seq, e.fields, e.appended_at, p.deliveries + 1 FROM pending p "
                    "JOIN entries e ON e.seq = p.seq WHERE p.grp = ? AND p.consumer = ? "
                    "ORDER BY p.seq LIMIT ?",
                    (group, consumer, count),
                ).fetchall()
                cur.executemany(
                    "UPDATE pending SET delivered_at = ?, deliveries = deliveries + 1 "
                    "WHERE grp = ? AND seq = ?",
                    [(time.time(), group, r[0]) for r in rows],
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return self._entries(rows)

    def claim_idle(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Pending entries idle for ``min_idle_ms`` under any consumer, now ``consumer``'s."""
        with self._lock:
            now = time.time()
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                rows = cur.execute(
                    "SELECT e.seq, e.fields, e.appended_at, p.deliveries + 1 FROM pending p "
                    "JOIN entries e ON e.seq = p.seq WHERE p.grp = ? AND p.delivered_at <= ? "
                    "ORDER BY p.seq LIMIT ?",
                    (group, now - min_idle_ms / 1000.0, count),
                ).fetchall()
                cur.executemany(
                    "UPDATE pending SET consumer = ?, delivered_at = ?, "
                    "deliveries = deliveries + 1 WHERE grp = ? AND seq = ?",
                    [(consumer, now, group, r[0]) for r in rows],
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return self._entries(rows)

    def ack(self, group: str, positions: Sequence[str]) -> int:
        if not positions:
            return 0
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany(
                    "DELETE FROM pending WHERE grp = ? AND seq = ?",
                    [(group, int(p)) for p in positions],
                )
                done = cur.rowcount
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return int(done)

    # -- introspection ------------------------------------------------------------------------
    def group_state(self, group: str) -> GroupState:
        with self._lock:
            last = self._last_seq(group)
            undelivered = self._db.execute(
                "SELECT COUNT(*) FROM entries WHERE seq > ?", (last,)
            ).fetchone()[0]
            pending = self._db.execute(
                "SELECT COUNT(*) FROM pending WHERE grp = ?", (group,)
            ).fetchone()[0]
        return GroupState(int(undelivered), int(pending))

    def length(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def range(self, count: int | None = None) -> list[Entry]:
        """Entries in order (for inspection and tests; not a delivery)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, fields, appended_at, 0 FROM entries ORDER BY seq LIMIT ?",
                (-1 if count is None else count,),
            ).fetchall()
        return self._entries(rows)

    def delete(self) -> None:
        """Drop the whole log (tests and the replay's scratch logs)."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.ProgrammingError):
            self._db.close()

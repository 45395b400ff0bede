"""Online-store readers whose every call is bounded by the request deadline (Redis, SQLite).

The serving path guards each online-store read with a deadline (``GuardedCall``). For stores
that cannot bound their own calls, the guard runs the read on a helper thread and abandons it
when the deadline passes; on a 2-core VM that hand-off (wake the helper, wake the caller) costs
~65 µs at the median and ~130 µs at p99 per read, a quarter of a one-entity Redis read.

Redis and SQLite can bound themselves, so their reads run inline on the caller's thread:

* Redis: with ``socket_connect_timeout`` and ``socket_timeout`` at the deadline and no retries,
  a refused, silent or hung server raises within about the deadline. Feast's own client is not
  changed for this (it also writes: a materialization pipeline may rightly take longer than a
  request deadline, and redis-py's default retries suit it); the reader gets a second client
  built from the same connection string, over which it sends the same ``HMGET`` commands Feast
  would (its key and field encoding, its reply parsing: ``DirectFeatureReader._read_views``).
* SQLite (the embedded store) is a local file: a read waits only on another connection's lock
  (a materialization committing), and the connection's busy timeout bounds that wait. The
  reader reads through a ``SqliteOnlineStore`` of its own whose connection has the deadline as
  its busy timeout (Feast's connection keeps Python's 5 s, right for its writes), with Feast's
  own ``online_read`` (its SQL, key encoding and value parsing).

Cluster, Sentinel and GLIDE configurations, SQLite with vector search, and any other store keep
the thread guard (the functions return None): their clients route, fail over or load
extensions, and a per-call timeout would not bound a call. Imported by the direct reader when
it is built (this module imports Feast).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from feast.infra.online_stores.redis import RedisClient, RedisOnlineStore, RedisType
from feast.infra.online_stores.sqlite import SqliteOnlineStore, _initialize_conn


def bounded_redis_client(online_store: Any, config: Any, timeout_s: float) -> Any | None:
    """A redis-py client for ``config``'s plain Redis online store with every call bounded by
    ``timeout_s`` (connect, send, receive; no retries), or None for any other store."""
    store_config = config.online_store
    if not isinstance(online_store, RedisOnlineStore):
        return None
    if store_config.redis_type != RedisType.redis or store_config.client != RedisClient.redis:
        return None
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    nodes, kwargs = RedisOnlineStore._parse_connection_string(store_config.connection_string)
    kwargs.update(
        host=nodes[0]["host"],
        port=nodes[0]["port"],
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return redis.Redis(**kwargs)


def hmget_all(client: Any, commands: Sequence[tuple[bytes, list]]) -> list[list[Any]]:
    """One ``HMGET`` reply per ``(key, fields)``, in order, in one non-transactional pipeline
    (one round trip), as Feast's ``RedisOnlineStore._read_hash_fields`` sends them."""
    with client.pipeline(transaction=False) as pipe:
        for key, fields in commands:
            pipe.hmget(key, fields)
        return pipe.execute()


class DeadlineSqliteStore(SqliteOnlineStore):
    """Feast's SQLite store with the deadline as its connection's busy timeout.

    The connection follows the file: Feast's teardown deletes it and the next write creates a
    new one under the same path, so the file's inode is checked on every read (one ``stat``,
    about a microsecond) and a replaced file gets a new connection.
    """

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s
        self._inode: int | None = None

    def _get_conn(self, config: Any) -> sqlite3.Connection:
        path = self._get_db_path(config)
        try:
            inode: int | None = os.stat(path).st_ino
        except FileNotFoundError:
            inode = None
        if self._conn is None or inode != self._inode:
            if self._conn is not None:
                self._conn.close()
            # Feast's own connection set-up, then the deadline as the busy timeout
            self._conn = _initialize_conn(path)
            self._conn.execute(f"PRAGMA busy_timeout = {max(1, round(self._timeout_s * 1000))}")
            self._inode = os.stat(path).st_ino
        return self._conn


def bounded_sqlite_store(online_store: Any, config: Any, timeout_s: float) -> Any | None:
    """A ``SqliteOnlineStore`` for ``config``'s file whose reads wait at most ``timeout_s`` on a
    lock (``database is locked`` after it), or None for any other store."""
    if type(online_store) is not SqliteOnlineStore or config.online_store.vector_enabled:
        return None
    return DeadlineSqliteStore(timeout_s)

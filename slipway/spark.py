"""Spark sessions for the PySpark transformations: Sail by default, any Spark Connect URL, or JVM.

The transformations in Slipway are pure DataFrame -> DataFrame functions written against the
Spark Connect-compatible API (no RDDs, no JVM access), so the same code runs on:

* ``sail`` (default): an embedded Sail server (Rust, native Delta, no JVM, starts in well under a
  second), one per process, started on first use;
* ``sc://host:port``: any Spark Connect endpoint (a production cluster);
* ``local[N]``: classic JVM Spark in local mode, used by the parity tests. Classic and Connect
  sessions must not share a process: ``pyspark.sql.functions`` picks its implementation from the
  ``SPARK_CONNECT_MODE_ENABLED`` environment variable, so mixing them builds the wrong Column
  type. Parity tests therefore run JVM Spark in a subprocess.

The session time zone is pinned to UTC everywhere: timestamps cross the Arrow boundary as UTC and
Sail otherwise mixes "UTC" and "Etc/UTC" in a way that breaks later type unification.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

_lock = threading.Lock()
_sail_server = None
_sessions: dict[str, SparkSession] = {}

SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
}


def _sail_url() -> str:
    global _sail_server
    if _sail_server is None:
        from pysail.spark import SparkConnectServer

        server = SparkConnectServer("127.0.0.1", 0)
        server.start(background=True)
        _sail_server = server
        host, port = server.listening_address
        log.info("started embedded Sail Spark Connect server on %s:%s", host, port)
    host, port = _sail_server.listening_address
    return f"sc://{host}:{port}"


def get_spark(remote: str = "sail") -> SparkSession:
    """A Spark session for ``remote`` (``sail``, ``sc://…`` or ``local[N]``), cached per process."""
    with _lock:
        cached = _sessions.get(remote)
        if cached is not None:
            return cached
        if remote == "sail" or remote.startswith("sc://"):
            from pyspark.sql.connect.session import SparkSession as RemoteSparkSession

            url = _sail_url() if remote == "sail" else remote
            # pyspark.sql.functions dispatches on this variable; Connect sessions need it set.
            os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
            builder = RemoteSparkSession.builder.remote(url)
            for key, value in SESSION_CONF.items():
                builder = builder.config(key, value)
            session = builder.create()
        elif remote.startswith("local"):
            from pyspark.sql import SparkSession as ClassicSparkSession

            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
            builder = (
                ClassicSparkSession.builder.master(remote)
                .appName("slipway")
                .config("spark.api.mode", "classic")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.shuffle.partitions", "4")
            )
            for key, value in SESSION_CONF.items():
                builder = builder.config(key, value)
            session = builder.getOrCreate()
        else:
            raise ValueError(
                f"unknown Spark remote {remote!r}: use 'sail', 'sc://host:port' or 'local[N]'"
            )
        _sessions[remote] = session
        return session


def stop_all() -> None:
    """Stop every cached session and the embedded Sail server (tests and CLI exits)."""
    global _sail_server
    with _lock:
        for session in _sessions.values():
            try:
                session.stop()
            except Exception:  # a dead server must not mask the caller's own error
                log.debug("ignoring error while stopping a Spark session", exc_info=True)
        _sessions.clear()
        if _sail_server is not None:
            try:
                _sail_server.stop()
            except Exception:
                log.debug("ignoring error while stopping Sail", exc_info=True)
            _sail_server = None

"""Helpers for tests and benchmarks that start real servers (uvicorn, dagster webserver/daemon).

One place for the loopback port, the stop-by-PID sequence, the process-group census and the
Dagster GraphQL call, so that every server-starting test stops its processes the same way.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit, urlunsplit


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, wait ``timeout`` s, then SIGKILL; always reaps (a zombie still counts as alive)."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    import psutil

    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    """A Dagster webserver GraphQL call; fails the caller on any GraphQL error."""
    import httpx

    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@contextmanager
def throwaway_database(postgres_url: str, prefix: str) -> Iterator[str]:
    """A Postgres database of its own (``<prefix>_<uuid>``), dropped with its connections after.

    Yields its URL on the same server and credentials as ``postgres_url``.
    """
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def dagster_pg_env(url: str) -> dict[str, str]:
    """The five ``SLIPWAY_PG_*`` values ``deploy/prod/dagster.yaml`` reads, for database ``url``
    (as slipwayctl derives them from ``SLIPWAY_PG_URL``)."""
    server = urlsplit(url)
    return {
        "SLIPWAY_PG_HOST": server.hostname or "127.0.0.1",
        "SLIPWAY_PG_PORT": str(server.port or 5432),
        "SLIPWAY_PG_USER": unquote(server.username or "postgres"),
        "SLIPWAY_PG_PASSWORD": unquote(server.password or ""),
        "SLIPWAY_PG_DB": server.path.lstrip("/"),
    }

"""Shared fixtures: a Sail session per test run, a fresh lakehouse per test, server probes."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def spark():
    """The embedded Sail session (started once; Sail starts in well under a second)."""
    from slipway.spark import get_spark

    return get_spark("sail")


@pytest.fixture
def lakehouse(tmp_path: Path):
    from slipway.lakehouse import Lakehouse

    return Lakehouse(tmp_path / "lakehouse")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private data dir and the environment pointing every Slipway location at it."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("SLIPWAY_DATA_DIR", str(root))
    monkeypatch.setenv("SLIPWAY_LANDING_ROOT", str(root / "landing"))
    monkeypatch.setenv("SLIPWAY_LAKEHOUSE_ROOT", str(root / "lakehouse"))
    monkeypatch.setenv("SLIPWAY_FEAST_DIR", str(root / "feast"))
    yield root


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    """A small world built once per test session: landing -> predictions, champion promoted.

    Read-only for tests: a test that changes data must build its own (see tests/support/pipeline).
    The Slipway environment variables point at it for the whole session.
    """
    from tests.support.pipeline import build_pipeline, slipway_env

    data_dir = tmp_path_factory.mktemp("pipeline")
    with slipway_env(data_dir):
        yield build_pipeline(data_dir)


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _port_open("127.0.0.1", 6379):
        pytest.skip(
            "Redis is not answering on 127.0.0.1:6379 (start redis-server to run this test)"
        )
    return "127.0.0.1:6379"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not _port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not answering on 127.0.0.1:5432 (start it to run this test)")
    return "postgresql://postgres@127.0.0.1:5432/test"

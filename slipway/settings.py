"""Where Slipway keeps its data, read from the environment once.

Every location can be overridden by an environment variable so that the same code runs on the
embedded defaults (everything under ``data/`` in the checkout) and in production (object storage,
servers). Secrets never live here: storage credentials are read by the storage layer from the
standard variables (``AWS_ACCESS_KEY_ID`` and friends).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class Settings:
    """Resolved locations and switches for one process."""

    env: str
    data_dir: Path
    landing_root: str
    lakehouse_root: str
    feast_dir: Path
    spark_remote: str
    partition_start: str
    # The live path (slipway.streaming): the event stream, dead letters and the served-decision
    # log live on Redis when ``stream_url`` is a redis:// URL, else in SQLite files under
    # ``stream_dir``; every key/file name starts with ``stream_prefix``.
    stream_url: str = ""
    stream_prefix: str = "slipway"
    stream_dir: Path = PROJECT_ROOT / "data" / "streams"
    windows_url: str = ""
    windows_dir: Path | None = None
    windows_namespace: str = "slipway:win"

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"


def load_settings() -> Settings:
    """Read the settings from the environment (cheap; call it where you need it)."""
    data_dir = Path(_env("SLIPWAY_DATA_DIR", str(PROJECT_ROOT / "data"))).resolve()
    return Settings(
        env=_env("SLIPWAY_ENV", "local"),
        data_dir=data_dir,
        landing_root=_env("SLIPWAY_LANDING_ROOT", str(data_dir / "landing")),
        lakehouse_root=_env("SLIPWAY_LAKEHOUSE_ROOT", str(data_dir / "lakehouse")),
        feast_dir=Path(_env("SLIPWAY_FEAST_DIR", str(data_dir / "feast"))),
        spark_remote=_env("SLIPWAY_SPARK_REMOTE", "sail"),
        partition_start=_env("SLIPWAY_PARTITION_START", "2026-08-01"),
        stream_url=_env("SLIPWAY_STREAM_URL", ""),
        stream_prefix=_env("SLIPWAY_STREAM_PREFIX", "slipway"),
        stream_dir=Path(_env("SLIPWAY_STREAM_DIR", str(data_dir / "streams"))),
        windows_url=_windows_url(),
        windows_dir=Path(_env("SLIPWAY_WINDOWS_DIR", str(data_dir / "windows"))),
        windows_namespace=_env("SLIPWAY_WINDOWS_NAMESPACE", "slipway:win"),
    )


def _windows_url() -> str:
    """Where the online window aggregator keeps its state (``SLIPWAY_WINDOWS_URL``).

    Empty: an embedded SQLite file per feature set under ``SLIPWAY_WINDOWS_DIR`` (default
    ``<data dir>/windows``). ``redis://host:port/db``: Redis. In production (``SLIPWAY_ENV=prod``)
    it defaults to the Feast online Redis (``SLIPWAY_FEAST_ONLINE``) when that is a Redis URL:
    the keys live under their own prefix (``SLIPWAY_WINDOWS_NAMESPACE``, ``slipway:win``).
    """
    url = _env("SLIPWAY_WINDOWS_URL", "")
    if url or _env("SLIPWAY_ENV", "local") != "prod":
        return url
    online = _env("SLIPWAY_FEAST_ONLINE", "")
    return online if online.startswith(("redis://", "rediss://")) else ""

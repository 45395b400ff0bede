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
    mlflow_tracking_uri: str | None = None

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
        # MLflow backend store; unset: SQLite under the lakehouse root (slipway.registry.tracking)
        mlflow_tracking_uri=_env("SLIPWAY_MLFLOW_TRACKING_URI", "") or None,
    )

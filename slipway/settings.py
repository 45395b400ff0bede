"""Where Slipway keeps its data, read from the environment once.

Every location can be overridden by an environment variable so that the same code runs on the
embedded defaults (everything under ``data/`` in the checkout) and in production (object storage,
servers). Secrets never live here: storage credentials are read by the storage layer from the
standard variables (``AWS_ACCESS_KEY_ID`` and friends).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# What every production process (``SLIPWAY_ENV=prod``) needs set, listed once: the Dagster code
# location (orchestration.resources), ``deploy/prod/slipwayctl`` (``python -m slipway.settings
# missing-prod``) and the live services (scorer, stream consumer) all check this list, so a
# process started by hand without, say, the Feast variables refuses to start instead of
# silently falling back to an embedded SQLite default.
PROD_REQUIRED = (
    "SLIPWAY_LAKEHOUSE_ROOT",
    "SLIPWAY_LANDING_ROOT",
    "SLIPWAY_SPARK_REMOTE",
    "SLIPWAY_FEAST_ONLINE",
    "SLIPWAY_FEAST_REGISTRY",
    "SLIPWAY_MLFLOW_TRACKING_URI",
)


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
    # Events are routed to ``stream_partitions`` streams by a hash of the entity (one consumer
    # per partition keeps each entity's events in order: slipway.streaming.streams).
    stream_partitions: int = 1
    windows_url: str = ""
    windows_dir: Path | None = None
    windows_namespace: str = "slipway:win"
    mlflow_tracking_uri: str | None = None
    # The use case these locations belong to (see :meth:`scoped`); None: the deployment's roots.
    usecase: str | None = None
    # Promotion also requires live evidence (shadow agreement, performance on served traffic;
    # ``PromotionPolicy.live``): SLIPWAY_GATE_LIVE_EVIDENCE=1. Off: recorded, not required.
    gate_live_evidence: bool = False
    # The live services: the partition a stream consumer reads by default, whether the embedded
    # stream fsyncs each commit (``SLIPWAY_STREAM_FSYNC=1``: survives power loss, slower), and
    # the online scorer's feature path (``direct``/``feast``), champion reload period, online
    # store deadline and cooldown (a sick store degrades requests instead of stalling them) and
    # batch limit.
    stream_partition: int = 0
    stream_fsync: bool = False
    serving_feature_path: str = "direct"
    serving_reload_seconds: float = 5.0
    serving_store_deadline_ms: float = 250.0
    serving_store_cooldown_s: float = 5.0
    serving_max_batch: int = 1000

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"

    def scoped(self, usecase: str) -> Settings:
        """The locations of one use case: each root gets the use case's own folder or prefix.

        Several use cases share a deployment (one code location, one landing area, one
        lakehouse, one Redis) without sharing a table, a file or a key: lakehouse
        ``<root>/<usecase>``, landing ``<root>/<usecase>``, Feast ``<feast_dir>/<usecase>``, the
        stream prefix ``<prefix>:<usecase>`` (files under ``<stream_dir>/<usecase>``) and the
        window state ``<namespace>:<usecase>`` (files under ``<windows_dir>/<usecase>``).
        Table names inside a use case's lakehouse keep their plain form (``silver.<stream>``).
        Scoping is done once: scoping scoped settings to another use case is an error.
        """
        if self.usecase is not None:
            if self.usecase == usecase:
                return self
            raise ValueError(f"settings already scoped to {self.usecase!r}, not {usecase!r}")
        return replace(
            self,
            usecase=usecase,
            landing_root=scoped_location(self.landing_root, usecase),
            lakehouse_root=scoped_location(self.lakehouse_root, usecase),
            feast_dir=Path(self.feast_dir) / usecase,
            stream_prefix=scoped_prefix(self.stream_prefix, usecase),
            stream_dir=Path(self.stream_dir) / usecase,
            windows_dir=None if self.windows_dir is None else Path(self.windows_dir) / usecase,
            windows_namespace=scoped_prefix(self.windows_namespace, usecase),
        )


def scoped_location(root: str, usecase: str) -> str:
    """``root``'s folder for ``usecase``: a local path or a URI (``s3://b/lake`` -> ``s3://b/lake/fraud``)."""
    if "://" in root:
        return f"{root.rstrip('/')}/{usecase}"
    return os.fspath(Path(root) / usecase)


def scoped_prefix(prefix: str, usecase: str) -> str:
    """A key prefix (Redis streams, window state) for ``usecase``: ``<prefix>:<usecase>``."""
    return f"{prefix}:{usecase}"


def load_settings(usecase: str | None = None) -> Settings:
    """Read the settings from the environment (cheap; call it where you need it).

    ``usecase`` scopes them to that use case's locations (:meth:`Settings.scoped`); without it
    they are the deployment's roots, which only deployment-wide code (resources, `make clean`)
    should need.
    """
    settings = _load_settings()
    return settings.scoped(usecase) if usecase else settings


def _load_settings() -> Settings:
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
        stream_partitions=_env_int("SLIPWAY_STREAM_PARTITIONS", 1),
        windows_url=_windows_url(),
        windows_dir=Path(_env("SLIPWAY_WINDOWS_DIR", str(data_dir / "windows"))),
        windows_namespace=_env("SLIPWAY_WINDOWS_NAMESPACE", "slipway:win"),
        # MLflow backend store; unset: SQLite under the lakehouse root (slipway.registry.tracking)
        mlflow_tracking_uri=_env("SLIPWAY_MLFLOW_TRACKING_URI", "") or None,
        gate_live_evidence=_env_bool("SLIPWAY_GATE_LIVE_EVIDENCE"),
        stream_partition=_env_int("SLIPWAY_STREAM_PARTITION", 0, minimum=0),
        stream_fsync=_env_bool("SLIPWAY_STREAM_FSYNC"),
        serving_feature_path=_env_choice(
            "SLIPWAY_SERVING_FEATURE_PATH", "direct", ("direct", "feast")
        ),
        serving_reload_seconds=_env_float("SLIPWAY_SERVING_RELOAD_SECONDS", 5.0),
        serving_store_deadline_ms=_env_float("SLIPWAY_SERVING_STORE_DEADLINE_MS", 250.0),
        serving_store_cooldown_s=_env_float("SLIPWAY_SERVING_STORE_COOLDOWN_S", 5.0),
        serving_max_batch=_env_int("SLIPWAY_SERVING_MAX_BATCH", 1000),
    )


def _env_bool(name: str) -> bool:
    return _env(name, "0").lower() in ("1", "true", "yes", "on")


def _env_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw[:40]!r}") from None
    if not value >= 0:  # also refuses nan
        raise ValueError(f"{name} must be a number >= 0, got {raw[:40]!r}")
    return value


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _env(name, default).lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value[:40]!r}")
    return value


def missing_for_prod(environ: Mapping[str, str] | None = None) -> list[str]:
    """The :data:`PROD_REQUIRED` variables unset (or blank) in ``environ`` (default: os.environ)."""
    environ = os.environ if environ is None else environ
    return [name for name in PROD_REQUIRED if not environ.get(name, "").strip()]


def require_prod_settings(environ: Mapping[str, str] | None = None) -> None:
    """Raise, naming every missing variable, when ``SLIPWAY_ENV=prod`` lacks a required one.

    A no-op outside production: the embedded defaults need nothing set.
    """
    environ = os.environ if environ is None else environ
    if environ.get("SLIPWAY_ENV", "local").strip() != "prod":
        return
    missing = missing_for_prod(environ)
    if missing:
        raise RuntimeError(
            f"SLIPWAY_ENV=prod needs {', '.join(missing)} set in the environment "
            "(see deploy/prod/env.example)"
        )


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw[:40]!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class ServingSecurity:
    """Who may call the online scorer, where it listens, and how much of a request it reads.

    ``api_keys`` come from ``SLIPWAY_API_KEYS`` (comma-separated) and from nowhere else: no file
    of the repository holds one. With no keys the service is the embedded default, open but on
    loopback only; production (``SLIPWAY_ENV=prod``) refuses to start without keys.
    """

    api_keys: tuple[str, ...]
    host: str
    port: int
    max_body_bytes: int
    max_json_depth: int


def load_serving_security() -> ServingSecurity:
    """The scorer's access and input limits from the environment (see docs/operations.md)."""
    keys = tuple(k.strip() for k in os.environ.get("SLIPWAY_API_KEYS", "").split(",") if k.strip())
    return ServingSecurity(
        api_keys=keys,
        host=_env("SLIPWAY_SERVING_HOST", "127.0.0.1"),
        port=_env_int("SLIPWAY_SERVING_PORT", 8000),
        # 1,000 transactions (the batch limit) of ~310 bytes each fit with room to spare.
        max_body_bytes=_env_int("SLIPWAY_SERVING_MAX_BODY_BYTES", 512 * 1024),
        # A transaction is flat and a batch is three levels deep; anything near 32 is hostile.
        max_json_depth=_env_int("SLIPWAY_SERVING_MAX_JSON_DEPTH", 32),
    )


def _windows_url() -> str:
    """Where the online window aggregator keeps its state (``SLIPWAY_WINDOWS_URL``).

    Empty: an embedded SQLite file per feature set under ``SLIPWAY_WINDOWS_DIR`` (default
    ``<data dir>/windows``). ``redis://host:port/db``: Redis. In production (``SLIPWAY_ENV=prod``)
    it defaults to the Feast online Redis (``SLIPWAY_FEAST_ONLINE``, a URL or Feast's form):
    the keys live under their own prefix (``SLIPWAY_WINDOWS_NAMESPACE``, ``slipway:win``).
    """
    url = _env("SLIPWAY_WINDOWS_URL", "")
    if url or _env("SLIPWAY_ENV", "local") != "prod":
        return url
    return redis_url(_env("SLIPWAY_FEAST_ONLINE", ""))


def redis_url(online: str) -> str:
    """``SLIPWAY_FEAST_ONLINE`` as a ``redis://`` URL, "" when it is not Redis.

    It may be given in Feast's own form (``host:6379,db=0,password=…,ssl=true``), the one the
    `feast` CLI reads from ``feature_store.prod.yaml``, or as a URL.
    """
    from urllib.parse import quote

    if online.startswith(("redis://", "rediss://")):
        return online
    if not online or online == "sqlite" or "://" in online:
        return ""
    node, *params = online.split(",")
    options = dict(p.split("=", 1) for p in params if "=" in p)
    if ":" not in node:
        node = f"{node}:6379"
    scheme = "rediss" if options.get("ssl", "").lower() == "true" else "redis"
    auth = f":{quote(options['password'], safe='')}@" if options.get("password") else ""
    return f"{scheme}://{auth}{node}/{options.get('db', '0')}"


def pit_chunk_rows() -> int:
    """Entity rows per chunk of a streamed point-in-time join (``SLIPWAY_PIT_CHUNK_ROWS``).

    Peak memory of a training-set build follows this, not the number of entity rows.
    """
    return _env_int("SLIPWAY_PIT_CHUNK_ROWS", 200_000)


def _main(argv: list[str]) -> int:
    """``python -m slipway.settings missing-prod``: the unset production variables, one a line."""
    if argv != ["missing-prod"]:
        print("usage: python -m slipway.settings missing-prod", file=sys.stderr)
        return 2
    for name in missing_for_prod():
        print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))

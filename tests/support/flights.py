"""The flights use case on a slice of 2013, built step by step through the platform's functions.

For tests of the declaration's parts (contracts, dbt models, feature tables, the Feast repo)
without the Dagster graph: land the slice with the use case's adapter, then ingest, run dbt for
the use case's selection, build every feature table and apply the Feast repo, each through the
same core functions the assets call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slipway.lakehouse import Lakehouse
from slipway.usecases.flights import FLIGHTS

REPO = Path(__file__).resolve().parents[2] / "feature_repo" / "flights"


@dataclass
class FlightsSlice:
    root: Path
    landing: Path
    lakehouse: Lakehouse
    start: dt.date
    end: dt.date
    silver: dict[str, dict[str, int]]


def land(
    root: Path,
    start: dt.date,
    days: int,
    origins: Sequence[str] | None = None,
    carriers: Sequence[str] | None = None,
) -> Path:
    from slipway.usecases.flights.sample import write_sample

    landing = root / "landing"
    write_sample(landing, start.isoformat(), days, origins=origins, carriers=carriers)
    return landing


def ingest(spark, landing: Path, lakehouse: Lakehouse, start: dt.date, end: dt.date) -> dict:
    from slipway.ingest.pipeline import bronze_to_silver, land_to_bronze, reference_to_silver

    totals = {}
    for stream in FLIGHTS.streams:
        land_to_bronze(lakehouse, landing, stream, start, end, "test")
        result = bronze_to_silver(lakehouse, spark, stream, FLIGHTS.ingest, start, end, "test")
        totals[stream.name] = result.totals()
    for reference in FLIGHTS.references:
        reference_to_silver(lakehouse, spark, landing, reference, FLIGHTS.ingest, "test")
    return totals


def run_dbt(root: Path, lakehouse: Lakehouse, start: dt.date, end: dt.date):
    from slipway.gold import dbt_runner
    from slipway.gold.dbt_project import dbt_env

    assert FLIGHTS.dbt is not None
    return dbt_runner.invoke(
        ["build", "--select", FLIGHTS.dbt.selection],
        target_path=root / "dbt-target",
        vars={"start_date": start.isoformat(), "end_date": end.isoformat()},
        env=dbt_env(str(lakehouse.root)),
    )


def build_features(spark, lakehouse: Lakehouse, start: dt.date, end: dt.date) -> dict:
    from slipway.features.build import build_feature_table, check_feature_table

    checks = {}
    for table in FLIGHTS.feature_tables:
        window = (start, end) if table.partitioned else (None, None)
        build_feature_table(lakehouse, spark, table, *window)
        checks[table.name] = check_feature_table(lakehouse, table, *window)
    return checks


def feature_store(root: Path, lakehouse: Lakehouse):
    """A Feast store on the flights repo, its registry and online store under ``root``."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from slipway.featurestore.store import apply_repo

    assert FLIGHTS.feast is not None
    (root / "feast").mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project=FLIGHTS.feast.project,
        provider="local",
        registry={
            "registry_type": "file",
            "path": str(root / "feast" / "registry.db"),
            "cache_ttl_seconds": 60,
        },
        online_store={"type": "sqlite", "path": str(root / "feast" / "online.db")},
        offline_store={
            "type": "slipway.featurestore.delta_offline_store.DeltaOfflineStore",
            "lakehouse_root": str(lakehouse.root),
        },
        entity_key_serialization_version=3,
        repo_path=REPO,
    )
    store = FeatureStore(config=config)
    apply_repo(store, REPO)
    return store


def build_slice(
    spark,
    root: Path,
    start: dt.date,
    days: int,
    origins: Sequence[str] | None = None,
    carriers: Sequence[str] | None = None,
) -> FlightsSlice:
    """Land, ingest, dbt and feature tables for ``days`` local days from ``start``."""
    end = start + dt.timedelta(days=days - 1)
    landing = land(root, start, days, origins, carriers)
    lakehouse = Lakehouse(root / "lakehouse")
    silver = ingest(spark, landing, lakehouse, start, end)
    run = run_dbt(root, lakehouse, start, end)
    assert run.success, f"dbt failed: {run.errors} {run.exception}"
    checks = build_features(spark, lakehouse, start, end)
    failed = {name: c.failures.head() for name, c in checks.items() if not c.passed}
    assert not failed, f"feature contracts failed: {failed}"
    return FlightsSlice(root, landing, lakehouse, start, end, silver)

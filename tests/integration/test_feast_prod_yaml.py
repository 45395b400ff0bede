"""`feast -f feature_store.prod.yaml plan` works in production: real Redis and Postgres.

Slipway (``SLIPWAY_ENV=prod``) applies the fraud repo to a SQL registry in a database of its own
and materializes into Redis (a Redis database index of its own); the real ``feast`` CLI, run in
``feature_repo/fraud`` with the production yaml and the same variables, then finds nothing to
change, and reads back through the same registry what Slipway wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_feast_cli import assert_no_changes, feast_cli, parse_plan
from tests.support.pipeline import PipelineData, slipway_env

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 13  # the test's own index: Feast's Redis keys end with the project name


@pytest.fixture
def registry_db(postgres_url: str) -> Iterator[str]:
    """A Postgres database of the test's own for the SQL registry, dropped afterwards."""
    import psycopg2

    name = f"feast_cli_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        from sqlalchemy import create_engine

        create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}").dispose()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.redis
@pytest.mark.postgres
def test_feast_cli_with_the_prod_yaml_sees_slipways_apply_and_materialization(
    pipeline: PipelineData,
    redis_url: str,
    registry_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from slipway.featurestore.online import materialize_online
    from slipway.featurestore.store import PROD_YAML, apply_repo, feature_repo, open_store
    from slipway.lakehouse import Lakehouse
    from slipway.usecases.fraud import FRAUD

    monkeypatch.delenv("SLIPWAY_FEAST_PROJECT", raising=False)  # the CLI cannot rename it
    env = {
        "SLIPWAY_ENV": "prod",
        # Feast's form, the one the CLI can read (Slipway also takes redis:// URLs)
        "SLIPWAY_FEAST_ONLINE": f"{redis_url},db={REDIS_DB}",
        "SLIPWAY_FEAST_REGISTRY": registry_db,
    }
    repo = feature_repo(FRAUD)
    with slipway_env(pipeline.data_dir, env):
        store = open_store(usecase=FRAUD)
        assert store.config.online_store.type == "redis"
        assert store.config.registry.registry_type == "sql"
        try:
            first = apply_repo(store)
            assert first.changed  # a new registry: everything is created
            materialize_online(
                store, Lakehouse(pipeline.lakehouse_root), pipeline.start, progress=lambda _: None
            )
            plan = parse_plan(feast_cli(repo, "-f", PROD_YAML, "plan"))
            assert_no_changes(plan)
            listed = feast_cli(repo, "-f", PROD_YAML, "feature-views", "list")
            for fv in store.list_feature_views():
                assert fv.name in listed, listed
            assert not apply_repo(open_store(usecase=FRAUD)).changed
        finally:
            open_store(usecase=FRAUD).teardown()  # the test's Redis keys and registry objects

"""The production profile on real servers: Dagster on Postgres, Feast on Redis + Postgres, two processes.

One small simulated world is run end to end in production mode (``SLIPWAY_ENV=prod``): the
Dagster instance is built from ``deploy/prod/dagster.yaml`` with its connection values in the
environment, Feast's registry is a SQL registry in Postgres and its online store is Redis, Spark
is reached through a Spark Connect URL (a Sail server started here). Then:

(a) a fresh instance object, and the Postgres tables themselves, hold the runs, their events,
    materializations (every daily partition) and asset-check evaluations (the promotion gate);
(b) a new ``FeatureStore`` reads the registry back from Postgres (re-applying changes nothing) and
    ``get_online_features`` from Redis returns each entity's latest feature values;
(c) ``deploy/prod/slipwayctl up`` runs dagster-webserver and dagster-daemon as separate processes
    on the same database: the daemon's heartbeats are in Postgres, the webserver's GraphQL answers
    and reports them, every sensor of the definitions ticks under the daemon, and
    ``slipwayctl down`` leaves no process behind.

Everything runs in a throwaway Postgres database and a unique Feast project, removed afterwards
(Redis keys included). Tests skip with the reason when Postgres or Redis is not running.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from slipway.settings import PROJECT_ROOT
from tests.support.pipeline import SMALL, simulate, slipway_env
from tests.support.servers import free_port, graphql, group_members, throwaway_database

SLIPWAYCTL = PROJECT_ROOT / "deploy" / "prod" / "slipwayctl"
TEMPLATE = PROJECT_ROOT / "deploy" / "prod" / "dagster.yaml"
# The suite's small world: the smallest in which the first model clears the promotion floors in
# the mixed world (fraud that overlaps normal behaviour); 20 days x 600 no longer did.
WORLD = SMALL
# What the first run materializes for every day: landing to the online store (scoring and
# monitoring per day are left out to keep this fast; the retrain job is the second run).
INGEST_GROUPS = ("fraud_ingestion", "fraud_gold", "fraud_features", "fraud_feast")
UP_TIMEOUT_S = 240


@dataclass(frozen=True)
class PgDatabase:
    host: str
    port: int
    user: str
    password: str
    name: str

    def url(self, scheme: str = "postgresql") -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{self.name}"

    def connect(self):
        import psycopg2

        conn = psycopg2.connect(self.url())
        conn.autocommit = True
        return conn

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()


@dataclass(frozen=True)
class ProdProfile:
    env: dict[str, str]
    data_dir: Path
    dagster_home: Path
    db: PgDatabase
    feast_project: str


@dataclass(frozen=True)
class ProdRuns:
    """The two runs of the module's world: ingestion to the online store, then `retrain`."""

    ingest_id: str
    retrain_id: str
    failures: list[str]
    days: list[dt.date]
    ingest_assets: set
    retrain_assets: set


def _redis_client(profile: ProdProfile):
    import redis

    url = urlparse(profile.env["SLIPWAY_FEAST_ONLINE"])
    return redis.Redis(host=url.hostname, port=url.port or 6379, db=int(url.path.strip("/") or 0))


def _project_keys(profile: ProdProfile) -> list[bytes]:
    # Feast's Redis keys are the serialized entity key followed by the project name.
    return list(_redis_client(profile).scan_iter(match=b"*" + profile.feast_project.encode()))


# -- fixtures: one throwaway database, one Spark Connect endpoint, one run ----------------------
@pytest.fixture(scope="module")
def prod_db(postgres_url: str) -> Iterator[PgDatabase]:
    """A database of its own for this module, dropped (connections and all) afterwards."""
    import psycopg2

    server = urlparse(postgres_url)
    name = f"slipway_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    db = PgDatabase(
        host=server.hostname or "127.0.0.1",
        port=server.port or 5432,
        user=unquote(server.username or "postgres"),
        password=unquote(server.password or ""),
        name=name,
    )
    try:
        yield db
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def spark_connect_url() -> Iterator[str]:
    """A Spark Connect endpoint, as production has: an embedded Sail server on a free port."""
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer("127.0.0.1", 0)
    server.start(background=True)
    host, port = server.listening_address
    url = f"sc://{host}:{port}"
    try:
        yield url
    finally:
        from slipway import spark as slipway_spark

        # the session cached for this URL would outlive its server
        session = slipway_spark._sessions.pop(url, None)
        if session is not None:
            with contextlib.suppress(Exception):
                session.stop()
        server.stop()


@pytest.fixture(scope="module")
def mlflow_db(postgres_url: str) -> Iterator[str]:
    """The MLflow backend store: a database of its own on the same server (both have `runs`)."""
    with throwaway_database(postgres_url, "mlflow_test") as url:
        yield url


@pytest.fixture(scope="module")
def prod_profile(
    prod_db: PgDatabase,
    mlflow_db: str,
    redis_url: str,
    spark_connect_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProdProfile]:
    """Every variable of the production profile, pointing at this module's servers and folders."""
    root = tmp_path_factory.mktemp("prod")
    data_dir = root / "data"
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(TEMPLATE, dagster_home / "dagster.yaml")
    project = f"slipwaytest_{uuid.uuid4().hex[:10]}"
    env = {
        "SLIPWAY_ENV": "prod",
        "SLIPWAY_LAKEHOUSE_ROOT": str(data_dir / "lakehouse"),
        "SLIPWAY_LANDING_ROOT": str(data_dir / "landing"),
        "SLIPWAY_SPARK_REMOTE": spark_connect_url,
        "SLIPWAY_FEAST_ONLINE": f"redis://{redis_url}/0",
        "SLIPWAY_FEAST_REGISTRY": prod_db.url("postgresql+psycopg2"),
        "SLIPWAY_FEAST_PROJECT": project,
        "SLIPWAY_MLFLOW_TRACKING_URI": mlflow_db,
        "SLIPWAY_PG_HOST": prod_db.host,
        "SLIPWAY_PG_PORT": str(prod_db.port),
        "SLIPWAY_PG_USER": prod_db.user,
        "SLIPWAY_PG_PASSWORD": prod_db.password,
        "SLIPWAY_PG_DB": prod_db.name,
        "DAGSTER_HOME": str(dagster_home),
    }
    profile = ProdProfile(env, data_dir, dagster_home, prod_db, project)
    try:
        yield profile
    finally:
        client = _redis_client(profile)
        for key in _project_keys(profile):
            client.delete(key)


@pytest.fixture(scope="module")
def prod_runs(prod_profile: ProdProfile) -> ProdRuns:
    """A small world, run the way production runs it: every day from landing to the online store
    (one single-run backfill over the ingestion, gold, features and feast groups), then the
    `retrain` job. Both in production mode, through an instance on Postgres."""
    import dagster as dg

    from orchestration.definitions import build_definitions

    warnings.filterwarnings("ignore")
    with slipway_env(prod_profile.data_dir, prod_profile.env):
        days = simulate(prod_profile.data_dir, **WORLD)
        defs = build_definitions()
        graph = defs.resolve_asset_graph()
        ingest_assets = set(dg.AssetSelection.groups(*INGEST_GROUPS).resolve(graph))
        assert ingest_assets, f"no asset in the groups {INGEST_GROUPS}"
        retrain_assets = set(defs.get_job_def("fraud_retrain").asset_layer.executable_asset_keys)
        instance = dg.DagsterInstance.from_config(str(prod_profile.dagster_home))
        try:
            ingest = defs.get_job_def("fraud_end_to_end").execute_in_process(
                instance=instance,
                asset_selection=sorted(ingest_assets),
                tags={
                    "dagster/asset_partition_range_start": days[0].isoformat(),
                    "dagster/asset_partition_range_end": days[-1].isoformat(),
                },
                raise_on_error=False,
            )
            retrain = defs.get_job_def("fraud_retrain").execute_in_process(
                instance=instance, raise_on_error=False
            )
        finally:
            instance.dispose()
    failures = [
        f"{e.step_key}: {e.event_specific_data.error.message.strip().splitlines()[0]}"
        for result in (ingest, retrain)
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
    if not (ingest.success and retrain.success):
        failures.append(f"ingest success={ingest.success}, retrain success={retrain.success}")
    return ProdRuns(ingest.run_id, retrain.run_id, failures, days, ingest_assets, retrain_assets)


def _require_success(runs: ProdRuns) -> None:
    if runs.failures:
        pytest.fail("the production-mode runs failed: " + "; ".join(runs.failures))


# -- (a) Dagster on Postgres -------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.redis
def test_runs_events_materializations_and_checks_live_in_postgres(
    prod_profile: ProdProfile, prod_runs: ProdRuns
) -> None:
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRunStatus
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    _require_success(prod_runs)
    db = prod_profile.db
    silver = dg.AssetKey(["fraud", "silver", "transactions"])
    candidate = dg.AssetKey(["fraud", "training", "model_candidate"])
    with slipway_env(prod_profile.data_dir, prod_profile.env):
        # a new instance object: nothing is shared with the one the runs wrote through
        instance = dg.DagsterInstance.from_config(str(prod_profile.dagster_home))
        try:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

            for run_id, job, assets in (
                (prod_runs.ingest_id, "fraud_end_to_end", prod_runs.ingest_assets),
                (prod_runs.retrain_id, "fraud_retrain", prod_runs.retrain_assets),
            ):
                run = instance.get_run_by_id(run_id)
                assert run is not None and run.status == DagsterRunStatus.SUCCESS
                assert run.job_name == job
                materialized = {
                    r.asset_key
                    for r in instance.get_records_for_run(
                        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                    ).records
                }
                assert materialized == assets, (
                    f"{job}: {sorted(k.to_user_string() for k in assets ^ materialized)}"
                )
            # every day of the single-run backfill is a materialized partition
            days = {d.isoformat() for d in prod_runs.days}
            assert instance.get_materialized_partitions(silver) == days

            evaluations = {
                e.asset_check_key: e
                for run_id in (prod_runs.ingest_id, prod_runs.retrain_id)
                for e in (
                    r.event_log_entry.dagster_event.event_specific_data
                    for r in instance.get_records_for_run(
                        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
                    ).records
                )
            }
            contract = evaluations[dg.AssetCheckKey(silver, "contract")]
            assert contract.passed, contract.description
            gate = evaluations[dg.AssetCheckKey(candidate, "promotion_gate")]
            assert gate.passed, gate.description
            assert gate.metadata["challenger_version"].value == 1
        finally:
            instance.dispose()

    # ... and the same facts straight from the Postgres tables
    rows = db.query(
        "SELECT run_id, status FROM runs WHERE run_id IN (%s, %s)",
        (prod_runs.ingest_id, prod_runs.retrain_id),
    )
    assert sorted(rows) == sorted(
        [(prod_runs.ingest_id, "SUCCESS"), (prod_runs.retrain_id, "SUCCESS")]
    )
    counts = dict(
        db.query(
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s GROUP BY 1",
            (prod_runs.ingest_id,),
        )
    )
    assert counts.get("PIPELINE_SUCCESS") == 1
    # partitioned assets log one materialization per day
    assert counts.get("ASSET_MATERIALIZATION", 0) > len(prod_runs.days)
    assert counts.get("ASSET_CHECK_EVALUATION", 0) > 0
    gate_rows = db.query(
        "SELECT check_name, execution_status FROM asset_check_executions "
        "WHERE run_id = %s AND asset_key = %s",
        (prod_runs.retrain_id, candidate.to_string()),
    )
    assert gate_rows == [("promotion_gate", "SUCCEEDED")]
    # A partitioned check run over a partition range is evaluated once for the range: Dagster
    # 1.13 stores that evaluation without a partition and leaves the per-partition rows it
    # planned at PLANNED.
    contract_rows = db.query(
        "SELECT execution_status FROM asset_check_executions "
        "WHERE run_id = %s AND check_name = 'contract' AND asset_key = %s AND partition IS NULL",
        (prod_runs.ingest_id, silver.to_string()),
    )
    assert contract_rows == [("SUCCEEDED",)]


# -- (b) Feast: SQL registry on Postgres, online store on Redis ---------------------------------
@pytest.mark.postgres
@pytest.mark.redis
def test_feast_registry_in_postgres_and_latest_values_online_in_redis(
    prod_profile: ProdProfile, prod_runs: ProdRuns
) -> None:
    import pandas as pd

    from slipway.featurestore.store import apply_repo, open_store
    from slipway.lakehouse import Lakehouse

    _require_success(prod_runs)
    with slipway_env(prod_profile.data_dir, prod_profile.env):
        store = open_store()
        assert store.config.online_store.type == "redis"
        assert store.config.registry.registry_type == "sql"
        assert store.project == prod_profile.feast_project
        # the run applied the repo; a new store reads it back from Postgres: nothing to change
        report = apply_repo(store)
        assert not report.changed, report.diff
        views = {fv.name for fv in store.list_feature_views()}
        assert {"customer_behaviour", "merchant_risk", "customer_profile"} <= views
        lakehouse = Lakehouse(prod_profile.env["SLIPWAY_LAKEHOUSE_ROOT"] + "/fraud")
        risk = lakehouse.read_pandas(
            "features.merchant_risk",
            columns=[
                "merchant_id",
                "feature_ts",
                "merchant_txn_count_30d",
                "merchant_avg_amount_30d",
            ],
        )
        # merchants with several daily rows, so that "latest" is a real choice
        latest = risk.sort_values("feature_ts").groupby("merchant_id").tail(1)
        busy = risk.merchant_id.value_counts()
        merchants = sorted(busy[busy >= 3].index)[:8]
        assert merchants, "the world has no merchant with three daily rows"
        online = pd.DataFrame(
            store.get_online_features(
                features=[
                    "merchant_risk:merchant_txn_count_30d",
                    "merchant_risk:merchant_avg_amount_30d",
                ],
                entity_rows=[{"merchant_id": m} for m in merchants],
            ).to_dict()
        ).set_index("merchant_id")
        # Per-event window features are not materialized: the window aggregator serves them,
        # in production on the same Redis (its own key prefix) unless SLIPWAY_WINDOWS_URL says.
        from slipway.settings import load_settings

        assert load_settings().windows_url == prod_profile.env["SLIPWAY_FEAST_ONLINE"]
        assert not store.get_feature_view("customer_behaviour").online

    expected = latest.set_index("merchant_id").loc[merchants]
    assert list(online.merchant_txn_count_30d) == list(expected.merchant_txn_count_30d)
    assert online.merchant_avg_amount_30d.to_numpy() == pytest.approx(
        expected.merchant_avg_amount_30d.to_numpy()
    )

    registered = {
        name
        for (name,) in prod_profile.db.query(
            "SELECT feature_view_name FROM feature_views WHERE project_id = %s",
            (prod_profile.feast_project,),
        )
    }
    assert registered == views
    assert _project_keys(prod_profile), "no Redis key for this Feast project"


@pytest.mark.postgres
@pytest.mark.redis
def test_every_customer_profile_is_online(prod_profile: ProdProfile, prod_runs: ProdRuns) -> None:
    from slipway.featurestore.store import open_store
    from slipway.lakehouse import Lakehouse

    _require_success(prod_runs)
    with slipway_env(prod_profile.data_dir, prod_profile.env):
        profiles = Lakehouse(prod_profile.env["SLIPWAY_LAKEHOUSE_ROOT"] + "/fraud").read_pandas(
            "features.customer_profile", columns=["customer_id", "home_country"]
        )
        online = (
            open_store()
            .get_online_features(
                features=["customer_profile:home_country"],
                entity_rows=[{"customer_id": c} for c in profiles.customer_id],
            )
            .to_dict()
        )
    assert online["home_country"] == list(profiles.home_country)


# -- (b2) MLflow: tracking and registry on Postgres, artefacts under the lakehouse ---------------
@pytest.mark.postgres
@pytest.mark.redis
def test_the_retrained_model_is_tracked_and_registered_in_the_mlflow_database(
    prod_profile: ProdProfile, prod_runs: ProdRuns, mlflow_db: str
) -> None:
    import psycopg2

    from slipway.lakehouse import Lakehouse
    from slipway.registry.store import ModelRegistry
    from slipway.usecases.fraud import MODEL

    _require_success(prod_runs)
    with slipway_env(prod_profile.data_dir, prod_profile.env):
        registry = ModelRegistry(Lakehouse(prod_profile.env["SLIPWAY_LAKEHOUSE_ROOT"] + "/fraud"))
        assert registry.store.tracking_uri == mlflow_db
        (version,) = registry.versions(MODEL.name)
        assert version.run_id == prod_runs.retrain_id  # tagged with the Dagster run
        assert registry.load_text(MODEL.name, version.version).startswith("tree")
    lakehouse_root = prod_profile.env["SLIPWAY_LAKEHOUSE_ROOT"]
    assert version.artifact_uri.startswith(f"{lakehouse_root}/fraud/mlflow/artifacts/")
    with psycopg2.connect(mlflow_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT name, version, run_id FROM model_versions")
        assert cur.fetchall() == [(MODEL.name, version.version, version.mlflow_run_id)]
        cur.execute("SELECT alias, version FROM registered_model_aliases")
        aliases = dict(cur.fetchall())
        cur.execute(
            "SELECT key, value FROM model_version_tags WHERE name = %s AND version = %s",
            (MODEL.name, version.version),
        )
        tags = dict(cur.fetchall())
    # the retrain's gate judged the first model against the floors; its verdict is on the version
    assert tags["gate.passed"] in {"true", "false"} and tags["gate.reason"]
    assert tags["dagster.run_id"] == prod_runs.retrain_id
    assert tags["training_set.version"] == str(version.training_set["version"])
    expected = {"champion": version.version} if tags["gate.passed"] == "true" else {}
    assert {k: v for k, v in aliases.items() if k == "champion"} == expected


# -- (c) webserver and daemon as separate processes under slipwayctl -----------------------------
def _slipwayctl(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SLIPWAYCTL), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _kill_group(pgid: int) -> None:
    """Last resort for a failed test: what slipwayctl started, and only that."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


REPOSITORY_QUERY = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name location { name } sensors { name sensorState { status } } schedules { name } }
    }
  }
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""

START_SENSOR = """
mutation($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}
"""


def _defined_automation() -> tuple[set[str], set[str]]:
    """The sensors and schedules the definitions declare (read at run time: they evolve)."""
    from orchestration.definitions import build_definitions

    repo = build_definitions().get_repository_def()
    return {s.name for s in repo.sensor_defs}, {s.name for s in repo.schedule_defs}


@pytest.mark.postgres
@pytest.mark.redis
def test_slipwayctl_runs_webserver_and_daemon_on_postgres(
    prod_profile: ProdProfile, prod_runs: ProdRuns, tmp_path: Path
) -> None:
    import dagster as dg
    from dagster._core.scheduler.instigation import InstigatorType

    _require_success(prod_runs)  # the UI then has a real run in its history
    port = free_port()
    prod_dir = tmp_path / "prod"
    # the module's world, as a deployment finds it: every landed day processed, so the sensors
    # tick and find nothing to launch
    env = {
        **os.environ,
        **prod_profile.env,
        "SLIPWAY_PROD_DIR": str(prod_dir),
        "DAGSTER_HOME": str(tmp_path / "home"),  # created by `up` from the template
        "SLIPWAY_WEBSERVER_PORT": str(port),
        "SLIPWAY_UP_TIMEOUT": str(UP_TIMEOUT_S - 20),
    }
    sensors, schedules = _defined_automation()
    url = f"http://127.0.0.1:{port}"
    pids: dict[str, int] = {}
    try:
        up = _slipwayctl("up", env, timeout=UP_TIMEOUT_S)
        assert up.returncode == 0, up.stdout + up.stderr
        assert (tmp_path / "home" / "dagster.yaml").read_text() == TEMPLATE.read_text()
        for service in ("webserver", "daemon"):
            pids[service] = int((prod_dir / "run" / f"{service}.pid").read_text())
        assert pids["webserver"] != pids["daemon"]
        import psutil

        assert "dagster-webserver" in " ".join(psutil.Process(pids["webserver"]).cmdline())
        assert "dagster-daemon" in " ".join(psutil.Process(pids["daemon"]).cmdline())
        status = _slipwayctl("status", env, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr

        data = graphql(url, REPOSITORY_QUERY)
        health = {
            d["daemonType"]: d["healthy"]
            for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]
            if d["required"]
        }
        for daemon in ("SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"):
            assert health.get(daemon), f"the webserver reports {daemon} unhealthy: {health}"
        (repo,) = data["repositoriesOrError"]["nodes"]
        assert {s["name"] for s in repo["sensors"]} == sensors
        assert {s["name"] for s in repo["schedules"]} == schedules
        # the run of the module's world is in the history the webserver reads
        runs = graphql(url, "{ runsOrError { ... on Runs { results { runId status } } } }")
        listed = runs["runsOrError"]["results"]
        for run_id in (prod_runs.ingest_id, prod_runs.retrain_id):
            assert {"runId": run_id, "status": "SUCCESS"} in listed

        # start the sensors that do not start themselves; the daemon must tick each one
        for sensor in repo["sensors"]:
            if sensor["sensorState"]["status"] != "RUNNING":
                selector = {
                    "repositoryName": repo["name"],
                    "repositoryLocationName": repo["location"]["name"],
                    "sensorName": sensor["name"],
                }
                started = graphql(url, START_SENSOR, {"selector": selector})["startSensor"]
                assert started["__typename"] == "Sensor", started

        with slipway_env(prod_profile.data_dir, prod_profile.env):
            instance = dg.DagsterInstance.from_config(str(tmp_path / "home"))
            try:
                heartbeats = instance.get_daemon_heartbeats()
                for daemon in ("SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"):
                    assert daemon in heartbeats, f"no {daemon} heartbeat in Postgres"
                    assert time.time() - heartbeats[daemon].timestamp < 120
                ticks: dict[str, list] = {}
                deadline = time.monotonic() + 120
                while sensors and time.monotonic() < deadline:
                    ticks = {
                        state.instigator_name: instance.get_ticks(
                            state.instigator_origin_id, state.selector_id
                        )
                        for state in instance.all_instigator_state(
                            instigator_type=InstigatorType.SENSOR
                        )
                    }
                    if all(ticks.get(name) for name in sensors):
                        break
                    time.sleep(2)
            finally:
                instance.dispose()
        for name in sorted(sensors):
            assert ticks.get(name), f"sensor {name} never ticked under the daemon"
            for tick in ticks[name]:
                assert tick.status.value != "FAILURE", (
                    f"sensor {name} tick failed: {tick.error and tick.error.message}"
                )
        if not sensors:
            warnings.warn(
                "the definitions have no sensor yet: only heartbeats were checked", stacklevel=2
            )
    finally:
        down = _slipwayctl("down", env, timeout=120)
        leftovers = {s: group_members(pid) for s, pid in pids.items()}
        for pid in pids.values():
            _kill_group(pid)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(leftovers.values()), f"processes left after `slipwayctl down`: {leftovers}"
    assert not list((prod_dir / "run").glob("*.pid"))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_slipwayctl_refuses_to_start_without_the_production_variables(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLIPWAY_", "DAGSTER_HOME", "AWS_"))
    }
    env.update(
        SLIPWAY_PROD_DIR=str(tmp_path),
        SLIPWAY_ENV="prod",
        SLIPWAY_LAKEHOUSE_ROOT="s3://bucket/lakehouse",
        SLIPWAY_PG_URL="postgresql://slipway:secret@db.internal:5432/dagster",
    )
    result = _slipwayctl("up", env, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr
    for name in (
        "SLIPWAY_LANDING_ROOT",
        "SLIPWAY_SPARK_REMOTE",
        "SLIPWAY_FEAST_ONLINE",
        "SLIPWAY_FEAST_REGISTRY",
        "SLIPWAY_MLFLOW_TRACKING_URI",
    ):
        assert name in message
    # what is set is not reported, and SLIPWAY_PG_URL stands for the five SLIPWAY_PG_* values
    assert "SLIPWAY_LAKEHOUSE_ROOT" not in message and "SLIPWAY_PG_" not in message
    assert not (tmp_path / "run").exists(), "nothing may start when the profile is incomplete"

    result = _slipwayctl("up", {**env, "SLIPWAY_ENV": "local"}, timeout=60)
    assert result.returncode == 2 and "SLIPWAY_ENV=prod" in result.stderr

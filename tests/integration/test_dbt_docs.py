"""What dbt's own tools say about the gold layer: source freshness, docs, and partial parsing.

Real dbt-duckdb with the ``lakehouse`` plugin on Delta fixtures (the fraud ones of
``test_dbt_gold``, and a tiny flights silver for the other use case's staging models):

* ``dbt source freshness`` reads each silver table's newest ``ingested_at`` and grades it against
  the thresholds of ``models/<usecase>/sources.yml``;
* ``dbt docs generate`` puts the marts' columns, with their Delta types, into ``catalog.json``, and
  every staging model's columns are documented (checked against the columns the model returns);
* a Dagster-side parse and a hand-run ``dbt parse`` share one partial-parse state, both ways.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from slipway.gold import dbt_project, dbt_runner
from slipway.lakehouse import Lakehouse
from tests.integration.test_dbt_gold import write_fixtures

UTC = dt.UTC
REPO = dbt_project.PROJECT_ROOT
DBT = Path(sys.executable).parent / "dbt"


@pytest.fixture
def fraud(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Lakehouse:
    """Fraud's lakehouse with the gold tests' silver fixtures; dbt finds it from the settings."""
    monkeypatch.setenv("SLIPWAY_DBT_SCRATCH", str(data_dir / "dbt" / "scratch"))
    monkeypatch.setenv("DBT_TARGET_PATH", str(data_dir / "dbt" / "target"))
    lakehouse = Lakehouse(data_dir / "lakehouse" / "fraud")
    write_fixtures(lakehouse)
    return lakehouse


def invoke(tmp_path: Path, usecase: str, *args: str, lakehouse: Lakehouse | None = None):
    """dbt in-process for ``usecase`` (its vars, its lakehouse) in a private target folder."""
    env = dbt_project.dbt_env(lakehouse.root if lakehouse else None, usecase)
    return dbt_runner.invoke(
        list(args),
        target_path=tmp_path / "dbt-target",
        vars=dbt_project.usecase_vars(usecase),
        env=env,
    )


def ingested(lakehouse: Lakehouse, name: str, at: dt.datetime) -> None:
    """Rewrite table ``name`` as if every row had been ingested at ``at``."""
    table = lakehouse.read(name)
    column = table.schema.get_field_index("ingested_at")
    stamped = table.set_column(
        column, "ingested_at", pa.array([at] * table.num_rows, table.schema.field(column).type)
    )
    lakehouse.write(name, stamped, mode="overwrite")


def freshness(tmp_path: Path, lakehouse: Lakehouse) -> dict[str, dict[str, Any]]:
    """``dbt source freshness`` of fraud's silver sources: table -> its result in sources.json."""
    run = invoke(tmp_path, "fraud", "source", "freshness", "--select", "source:silver")
    sources = json.loads((run.target_path / "sources.json").read_text(encoding="utf-8"))
    return {r["unique_id"].rsplit(".", 1)[-1]: r for r in sources["results"]}


# -- (1) source freshness -------------------------------------------------------------------------
def test_source_freshness_grades_each_silver_table_by_ingested_at(
    fraud: Lakehouse, tmp_path: Path
) -> None:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    ingested(fraud, "silver.transactions", now - dt.timedelta(hours=2))
    ingested(fraud, "silver.chargebacks", now - dt.timedelta(hours=40))  # one day missed
    ingested(fraud, "silver.customers", now - dt.timedelta(days=3))  # weekly snapshot: fine
    ingested(fraud, "silver.merchants", now - dt.timedelta(days=9))  # a snapshot missed

    results = freshness(tmp_path / "first", fraud)
    assert {t: r["status"] for t, r in results.items()} == {
        "transactions": "pass",
        "chargebacks": "warn",
        "customers": "pass",
        "merchants": "warn",
    }
    loaded = dt.datetime.fromisoformat(results["transactions"]["max_loaded_at"])
    assert loaded.replace(tzinfo=loaded.tzinfo or UTC) == now - dt.timedelta(hours=2)

    # two deliveries of transactions missed: an error, and the command fails as dbt's does
    ingested(fraud, "silver.transactions", now - dt.timedelta(hours=60))
    run = invoke(tmp_path / "second", "fraud", "source", "freshness", "--select", "source:silver")
    assert not run.success
    results = freshness(tmp_path / "third", fraud)
    assert results["transactions"]["status"] == "error"
    assert results["chargebacks"]["status"] == "warn"


def test_source_freshness_is_declared_on_every_daily_silver_stream() -> None:
    """Every use case's daily streams, as dbt sources, carry a freshness threshold on
    ``ingested_at``; the windowed duplicates do not (the same table, graded once)."""
    from slipway.usecases import deployed_usecases

    checked = 0
    for usecase in deployed_usecases():
        if usecase.dbt is None:
            continue
        manifest = json.loads(dbt_project.ensure_manifest(usecase=usecase.name).read_text())
        streams = {f"silver.{s.name}" for s in usecase.streams}
        for source in manifest["sources"].values():
            meta = source["config"].get("meta") or {}
            if not source["original_file_path"].startswith(f"models/{usecase.name}/"):
                continue
            if meta.get("lakehouse_table") not in streams:
                continue
            threshold = (source.get("freshness") or {}).get("warn_after") or {}
            if "start_date" in meta:  # the run-window view of a stream
                assert not threshold.get("count"), source["unique_id"]
                continue
            assert threshold.get("count"), f"{source['unique_id']} has no freshness threshold"
            assert source["loaded_at_field"] == "ingested_at", source["unique_id"]
            checked += 1
    assert checked >= 3  # fraud's transactions and chargebacks, flights' flights at least


# -- (2) docs: the marts' columns in the catalog, every staging column documented ----------------
def hand_dbt(project_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``dbt <args>`` as a person runs it: a subprocess in the project folder; its output."""
    environment = {**os.environ, "PYTHONPATH": os.fspath(REPO), **(env or {})}
    for name in (dbt_project.LAKEHOUSE_ENV, "SLIPWAY_DBT_RECEIPTS"):
        environment.pop(name, None)
    done = subprocess.run(
        [os.fspath(DBT), *args, "--profiles-dir", "."],
        cwd=project_dir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_docs_catalog_carries_the_marts_delta_columns(fraud: Lakehouse, tmp_path: Path) -> None:
    run = invoke(tmp_path, "fraud", "build", "--select", "fqn:fraud")
    assert run.success, run.error_message()
    target = tmp_path / "docs"
    hand_dbt(
        dbt_project.DBT_PROJECT_DIR,
        "docs", "generate",
        "--vars", '{"usecase": "fraud"}',
        "--select", "path:models/fraud",
        "--target-path", os.fspath(target),
    )  # fmt: skip
    catalog = json.loads((target / "catalog.json").read_text(encoding="utf-8"))
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    from slipway.gold.marts import marts

    fraud_marts = {
        name: mart
        for name, mart in marts(manifest).items()
        if manifest["nodes"][f"model.slipway.{name}"]["fqn"][1] == "fraud"
    }
    assert len(fraud_marts) >= 3
    for name, mart in fraud_marts.items():
        node = catalog["nodes"].get(f"model.slipway.{name}")
        assert node is not None, f"{name} is not in the catalog"
        columns = sorted(node["columns"].values(), key=lambda c: c["index"])
        delta = fraud.dataset(mart.table).schema
        assert [c["name"] for c in columns] == delta.names, name
    enriched = catalog["nodes"]["model.slipway.enriched_transactions"]["columns"]
    assert enriched["date"]["type"] == "DATE"
    assert enriched["amount_eur"]["type"] == "DOUBLE"
    assert enriched["is_foreign"]["type"] == "BOOLEAN"


FLIGHTS_SILVER = {
    "silver.flights": {
        "date": dt.date(2013, 2, 1), "flight_id": "f1",
        "scheduled_departure": dt.datetime(2013, 2, 1, 11, tzinfo=UTC), "carrier": "UA",
        "flight": 1, "tailnum": "N1", "origin": "EWR", "dest": "ORD", "distance": 719.0,
        "sched_arr_time": 1330, "dep_time": 605, "dep_delay": 5.0, "arr_time": 1340,
        "arr_delay": 10.0, "air_time": 120.0,
    },
    "silver.airports": {"faa": "ORD", "name": "Chicago O'Hare", "tzone": "America/Chicago"},
    "silver.airlines": {"carrier": "UA", "name": "United Air Lines Inc."},
}  # fmt: skip


def staging_models(manifest: dict[str, Any], usecase: str) -> dict[str, dict[str, Any]]:
    return {
        n["name"]: n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["fqn"][1:3] == [usecase, "staging"]
    }


@pytest.mark.parametrize("usecase", ["fraud", "flights"])
def test_every_staging_column_is_documented(
    usecase: str, fraud: Lakehouse, data_dir: Path, tmp_path: Path
) -> None:
    """The documented columns are exactly those each staging model returns, each described."""
    lakehouse = fraud
    if usecase == "flights":
        lakehouse = Lakehouse(data_dir / "lakehouse" / "flights")
        for name, row in FLIGHTS_SILVER.items():
            lakehouse.write(name, pa.Table.from_pylist([row]), mode="overwrite")
    manifest = json.loads(dbt_project.ensure_manifest(usecase=usecase).read_text())
    models = staging_models(manifest, usecase)
    assert models
    for name, node in models.items():
        run = invoke(
            tmp_path / name,
            usecase,
            "show", "--inline", f"select * from {{{{ ref('{name}') }}}}", "--limit", "1",
            lakehouse=lakehouse,
        )  # fmt: skip
        assert run.success, run.error_message()
        returned = list(run.result.results[0].agate_table.column_names)
        documented = node["columns"]
        assert list(documented) == returned, name
        undescribed = [c for c, col in documented.items() if not col["description"].strip()]
        assert not undescribed, f"{name}: {undescribed} have no description"


# -- (3) partial parse: a Dagster parse and a hand-run dbt keep each other's state ---------------
def project_copy(tmp_path: Path) -> Path:
    """The dbt project's sources in a folder of its own (its target/ is this test's)."""
    copy = tmp_path / "dbt_project"
    shutil.copytree(
        dbt_project.DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs")
    )
    return copy


def test_partial_parse_survives_dagster_and_hand_runs_alternating(
    data_dir: Path, tmp_path: Path
) -> None:
    project = project_copy(tmp_path)
    # Dagster's parse (what the definitions do on load): absolute SLIPWAY_* paths of its settings
    dbt_project.parse_project(project, project, usecase="fraud")
    # a person's parse in the project folder, with another scratch folder and no lakehouse root
    out = hand_dbt(
        project,
        "parse", "--vars", "{usecase: fraud}", "--target-path", "target/fraud",
        env={"SLIPWAY_DBT_SCRATCH": os.fspath(tmp_path / "elsewhere")},
    )  # fmt: skip
    log = (project / "logs" / "dbt.log").read_text(encoding="utf-8")
    assert "Unable to do partial parsing" not in out + log
    assert "Partial parsing enabled" in log

    # ...and the Dagster side takes the hand run's parse as it is (no parse of its own)
    dbt_runner.clear_manifest_cache()
    run = dbt_runner.invoke(
        ["ls", "--select", "fqn:fraud"],
        target_path=tmp_path / "ls",
        vars=dbt_project.usecase_vars("fraud"),
        env=dbt_project.dbt_env(usecase="fraud"),
        project_dir=project,
        profiles_dir=project,
    )
    assert run.success, run.error_message()
    assert run.manifest_from == "partial parse file"

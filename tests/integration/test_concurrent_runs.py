"""Two ingestion runs started at the same moment on a new lakehouse never duplicate a row.

Two processes share one Dagster instance configured like the project's own (`.dagster/
dagster.yaml`, copied) and meet at a barrier, then each runs the `ingestion` job over the same
days. The ingestion steps share concurrency pools with a limit of one, so the second run's steps
wait for the first's; both succeed and every table holds each landed line once.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pytest

from slipway.lakehouse import Lakehouse
from tests.support.pipeline import simulate, slipway_env

ROOT = Path(__file__).resolve().parents[2]
START = dt.date(2026, 8, 1)
WORLD = {"days": 2, "transactions_per_day": 300, "customers": 120, "merchants": 30}


def _run(data_dir: str, home: str, barrier, results) -> None:
    import os
    import warnings

    warnings.filterwarnings("ignore")
    os.environ["DAGSTER_HOME"] = home
    import dagster as dg

    from tests.support.pipeline import run_graph, slipway_env

    try:
        with slipway_env(Path(data_dir)):
            instance = dg.DagsterInstance.get()
            from orchestration.definitions import build_definitions

            build_definitions()  # load everything before the barrier, so the runs overlap
            barrier.wait(timeout=300)
            result = run_graph(
                START, START + dt.timedelta(days=1), instance=instance, job="ingestion"
            )
            failures = [
                f"{e.step_key}: {e.event_specific_data.error.message.splitlines()[0]}"
                for e in result.all_events
                if e.event_type_value == "STEP_FAILURE"
            ]
            results.put((result.success, failures))
    except BaseException as err:  # say why instead of leaving the parent waiting
        results.put((False, [f"{type(err).__name__}: {err}"]))
        raise


def _initialise_pools(home: Path) -> None:
    """Give the writers' pools their one slot up front, as the instance's first run would.

    Dagster creates a pool from the default limit on first use; two SQLite-backed processes
    doing that at the same instant can leave a step waiting for a slot nobody assigns.
    """
    import dagster as dg

    from assets.ingestion.assets import writer_pool
    from slipway.ingest.pipeline import bronze_table, silver_table
    from slipway.usecases.fraud import FRAUD

    tables = [t for s in FRAUD.streams for t in (bronze_table(s.name), silver_table(s.name))]
    tables += [silver_table(r.name) for r in FRAUD.references]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for table in tables:  # every writer's pool: one left to first use can race
            instance.event_log_storage.set_concurrency_slots(writer_pool(FRAUD, table), 1)


def test_two_simultaneous_runs_are_serialised_and_never_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    with slipway_env(data):
        simulate(data, **WORLD)
    # the project's instance keeps its storage under $DAGSTER_HOME (as the runs below see it)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    _initialise_pools(home)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_run, args=(str(data), str(home), barrier, results)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(ok for ok, _ in outcomes), outcomes

    lakehouse = Lakehouse(data / "lakehouse" / "fraud")
    bronze = lakehouse.read("bronze.transactions")
    keys = pc.binary_join_element_wise(
        bronze["source_file"], pc.cast(bronze["source_line"], "string"), ":"
    )
    assert len(pc.unique(keys)) == bronze.num_rows  # every landed line once
    silver = lakehouse.read("silver.transactions")
    assert len(pc.unique(silver["transaction_id"])) == silver.num_rows
    audit = lakehouse.read("audit.transactions").to_pylist()
    assert len(audit) == 2
    for row in audit:
        landed = pc.sum(pc.equal(bronze["date"], row["date"])).as_py()
        assert row["rows_landed"] == landed
        assert row["rows_silver"] + row["rows_quarantined"] + row["duplicates_dropped"] == landed

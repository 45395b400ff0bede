"""Two retrains of one use case started at the same moment never run a retraining step at once.

The retraining steps (training set, candidate, promotion gate, champion) share the use case's
one-slot pool (``assets.training.assets.retrain_pool``). Two processes share one Dagster instance
configured as production's (``deploy/prod/dagster.yaml``: storage in PostgreSQL, on a throwaway
database), whose pools were created up front as ``make run`` does (``orchestration.main.
ensure_pools``), meet at a barrier and each run the ``retrain`` job on a copy of the small world.
Both succeed, each registers its own MLflow version, and the steps of one run never overlap in
time with the steps of the other.

Why PostgreSQL: runs that must take turns across processes need the production storage, and the
production storage needs its own slot claim: Dagster's ``SELECT ... FOR UPDATE SKIP LOCKED`` then
``UPDATE ... WHERE id = ?`` runs in autocommit on dagster-postgres, and this test failed in CI with
both training-set steps started within 1 ms; the template's ``SlotSafePostgresStorage``
(``orchestration/instance_storage.py``, tested alone in ``test_pool_slot_claim.py``) closes it.
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
from pathlib import Path

import pytest

from tests.support.pipeline import PipelineData, copy_world, slipway_env

ROOT = Path(__file__).resolve().parents[2]


def _retrain(data_dir: str, home: str, barrier, results) -> None:
    import os
    import warnings

    warnings.filterwarnings("ignore")
    os.environ["DAGSTER_HOME"] = home
    import dagster as dg

    from tests.support.pipeline import slipway_env

    try:
        with slipway_env(Path(data_dir)):
            from assets.training.assets import retrain_pool
            from orchestration.definitions import build_definitions
            from slipway.usecases.fraud import FRAUD

            instance = dg.DagsterInstance.get()
            job = build_definitions().get_job_def("fraud_retrain")
            pool = retrain_pool(FRAUD)
            steps = sorted(n.name for n in job.graph.node_defs)
            pooled = sorted(n.name for n in job.graph.node_defs if pool in (n.pools or set()))
            barrier.wait(timeout=300)  # definitions loaded, pools created: the runs overlap
            result = job.execute_in_process(instance=instance, raise_on_error=False)
            failures = [
                f"{e.step_key}: {e.event_specific_data.error.message.splitlines()[0]}"
                for e in result.all_events
                if e.event_type_value == "STEP_FAILURE"
            ]
            results.put((result.success, failures, result.run_id, steps, pooled))
    except BaseException as err:  # say why instead of leaving the parent waiting
        results.put((False, [f"{type(err).__name__}: {err}"], None, [], []))
        raise


def _step_windows(instance, run_id: str, steps: list[str]) -> dict[str, tuple[float, float]]:
    """step key -> (started, finished) timestamps of ``run_id``'s steps among ``steps``."""
    starts, ends = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key not in steps:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ends[event.step_key] = record.timestamp
    return {k: (starts[k], ends[k]) for k in starts if k in ends}


@pytest.mark.postgres
@pytest.mark.timeout(1500)
def test_two_simultaneous_retrains_take_turns(
    pipeline: PipelineData, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from tests.support.servers import dagster_pg_env, throwaway_database

    with throwaway_database(postgres_url, "dagster_pools") as url:
        for name, value in dagster_pg_env(url).items():
            monkeypatch.setenv(name, value)  # the spawned runs inherit them
        _take_turns(pipeline, tmp_path, dg)


def _take_turns(pipeline: PipelineData, tmp_path: Path, dg) -> None:

    from slipway.lakehouse import Lakehouse
    from slipway.registry.store import ModelRegistry
    from slipway.usecases.fraud import FRAUD

    data = copy_world(pipeline.data_dir, tmp_path / "data", ignore=("landing",))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "prod" / "dagster.yaml", home / "dagster.yaml")
    before = ModelRegistry(Lakehouse(data / "lakehouse" / "fraud")).versions(FRAUD.model.name)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        from orchestration.definitions import build_definitions
        from orchestration.main import ensure_pools

        # built here for this world, as each run builds its own (the module-level ``defs`` an
        # earlier test imported may have been built for another use case's environment)
        with slipway_env(data):
            ensure_pools(instance, build_definitions().get_job_def("fraud_retrain"))

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_retrain, args=(str(data), str(home), barrier, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=1200) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    for _ok, failures, run_id, *_ in outcomes:
        assert run_id is not None, failures
        # a candidate that does not beat the champion fails the blocking gate: that is a verdict,
        # not a fault; nothing else may fail
        assert all("promotion_gate" in f.split(":")[0] for f in failures), failures

    # the retrain job's steps: training set, candidate, promotion gate, champion
    (steps,) = {tuple(o[3]) for o in outcomes}
    assert len(steps) == 4, steps
    with dg.DagsterInstance.from_config(str(home)) as instance:
        first, second = (_step_windows(instance, o[2], list(steps)) for o in outcomes)
        ran = set(first) & set(second)
        assert len(ran) >= 3, (first, second)  # training set, candidate, gate (+ champion)
        # no step of one run ran while a step of the other held the slot
        for a_start, a_end in first.values():
            for b_start, b_end in second.values():
                assert a_end <= b_start or b_end <= a_start, (first, second)
        # because every one of them is in the use case's pool, and the pool has one slot
        assert all(tuple(o[4]) == steps for o in outcomes), outcomes
        assert instance.event_log_storage.get_concurrency_info("fraud_retrain").slot_count == 1

    after = ModelRegistry(Lakehouse(data / "lakehouse" / "fraud")).versions(FRAUD.model.name)
    new = sorted({v.version for v in after} - {v.version for v in before})
    assert len(new) == 2, "each retrain registered its own candidate version"

"""Retries on the steps that talk to remote services, and the one-slot pool of the retraining steps.

The retry wrapper is exercised through real Dagster runs (a step that fails once with a dropped
connection succeeds on its retry; one that fails with a data error fails at once), and the
code location is inspected for the policy and the pools the graph declares.
"""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.lib.retries import REMOTE_RETRY_POLICY, is_transient, retry_transient_only
from assets.training.assets import retrain_pool
from orchestration.definitions import defs
from slipway.lakehouse import ConcurrentWriteError
from slipway.usecases import deployed_usecases

ROOT = Path(__file__).resolve().parents[2]
FAST_RETRY = dg.RetryPolicy(max_retries=2)  # the real numbers wait seconds; the logic is the same


class SparkConnectGrpcException(Exception):
    """Named like pyspark's Spark Connect error (the classifier matches client errors by name)."""


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionResetError("peer reset"), True),
        (TimeoutError("read timed out"), True),
        (OSError("network is unreachable"), True),
        (SparkConnectGrpcException("UNAVAILABLE"), True),
        (ConcurrentWriteError("silver.transactions: another writer committed first"), True),
        (ValueError("column amount has nulls"), False),
        (KeyError("champion"), False),
        (FileNotFoundError("landing/2026-08-01"), False),
        (PermissionError("read-only"), False),
    ],
)
def test_transient_errors_are_told_from_lasting_ones(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_an_error_raised_from_a_dropped_connection_is_transient() -> None:
    try:
        try:
            raise ConnectionError("dropped")
        except ConnectionError as cause:
            raise RuntimeError("write failed") from cause
    except RuntimeError as err:
        assert is_transient(err)


def _attempts(result: dg.ExecuteInProcessResult) -> int:
    return 1 + sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")


@pytest.mark.parametrize("generator", [False, True], ids=["function", "generator"])
def test_a_transient_failure_is_retried_and_then_succeeds(generator: bool) -> None:
    calls: list[int] = []

    def body() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionResetError("object store dropped the connection")

    if generator:

        @dg.asset(retry_policy=FAST_RETRY)
        @retry_transient_only
        def flaky(context: dg.AssetExecutionContext):
            body()
            yield dg.MaterializeResult(metadata={"attempt": len(calls)})

    else:

        @dg.asset(retry_policy=FAST_RETRY)
        @retry_transient_only
        def flaky(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            body()
            return dg.MaterializeResult(metadata={"attempt": len(calls)})

    result = dg.materialize([flaky], raise_on_error=False)
    assert result.success
    assert _attempts(result) == 2 == len(calls)
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["attempt"].value == 2


def test_a_lasting_failure_is_not_retried_and_keeps_its_message() -> None:
    calls: list[int] = []

    @dg.asset(retry_policy=FAST_RETRY)
    @retry_transient_only
    def broken(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        calls.append(1)
        raise ValueError("the contract says amount > 0")

    result = dg.materialize([broken], raise_on_error=False)
    assert not result.success
    assert _attempts(result) == 1 == len(calls)
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "ValueError: the contract says amount > 0" in message


def _ops_by_asset() -> dict[dg.AssetKey, dg.OpDefinition]:
    graph = defs.resolve_asset_graph()
    return {key: graph.assets_def_for_key(key).op for key in graph.get_all_asset_keys()}


# Layers whose steps read or write the lakehouse (object storage in production), Spark Connect,
# the Feast registry / Redis online store, or MLflow's Postgres.
REMOTE_LAYERS = {
    "bronze",
    "silver",
    "quarantine",
    "features",
    "gold",
    "feast",
    "training",
    "registry",
    "monitoring",
}


def test_every_remote_step_carries_the_shared_retry_policy() -> None:
    ops = _ops_by_asset()
    remote = {
        k: op for k, op in ops.items() if k.path[1] in REMOTE_LAYERS or k.path[1] == "scoring"
    }
    assert remote
    missing = sorted(k.to_user_string() for k, op in remote.items() if op.retry_policy is None)
    assert not missing, missing
    assert {op.retry_policy for op in remote.values()} == {REMOTE_RETRY_POLICY}
    assert REMOTE_RETRY_POLICY.backoff == dg.Backoff.EXPONENTIAL


def test_every_retraining_step_is_in_its_use_cases_one_slot_pool() -> None:
    ops = _ops_by_asset()
    for usecase in deployed_usecases():
        if usecase.model is None:
            continue
        pool = retrain_pool(usecase)
        job = defs.get_job_def(f"{usecase.name}_retrain")
        pooled = sorted(n.name for n in job.graph.node_defs if pool in (n.pools or set()))
        # training set, candidate, promotion gate (an asset check) and champion
        assert len(pooled) == 4, pooled
        assert any("promotion_gate" in name for name in pooled), pooled
        for key in (["training", "training_set"], ["training", "model_candidate"]):
            assert ops[dg.AssetKey([usecase.name, *key])].pools == {pool}
        assert ops[dg.AssetKey([usecase.name, "registry", "champion"])].pools == {pool}
        # nothing else takes the slot (a scoring step waiting on a retrain would be a surprise)
        every = defs.get_job_def(f"{usecase.name}_end_to_end").graph.node_defs
        assert sorted(n.name for n in every if pool in (n.pools or set())) == pooled
    # one slot per pool, locally and in production
    for config in (ROOT / ".dagster" / "dagster.yaml", ROOT / "deploy" / "prod" / "dagster.yaml"):
        pools = yaml.safe_load(config.read_text())["concurrency"]["pools"]
        assert pools["default_limit"] == 1, config

"""A concurrency-pool slot goes to exactly one of the steps that claim it at the same instant.

On the production instance storage (``deploy/prod/dagster.yaml``: ``orchestration.
instance_storage.SlotSafePostgresStorage``) against the real PostgreSQL. Dagster's own
dagster-postgres claim selects a free slot and then updates it by id in autocommit mode, so two
claimants could both take the one slot (CI saw two retrains' training sets start within 1 ms);
here the interleaving that broke it is replayed step by step, then many claimants race for real.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.servers import dagster_pg_env, throwaway_database

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def storage(postgres_url: str) -> Iterator:
    from orchestration.instance_storage import SlotSafePostgresEventLogStorage

    with throwaway_database(postgres_url, "slot_claim") as url:
        events = SlotSafePostgresEventLogStorage(url)
        try:
            yield events
        finally:
            events.dispose()


def _holders(storage, key: str) -> list[str]:
    info = storage.get_concurrency_info(key)
    return sorted(s.step_key for s in info.claimed_slots)


def test_a_slot_taken_between_select_and_update_is_not_taken_again(storage) -> None:
    from dagster._utils.concurrency import ConcurrencySlotStatus

    storage.set_concurrency_slots("pool", 1)
    with storage.index_connection() as conn:
        # claimant A has picked the free row; its lock ended with the SELECT (autocommit)
        slot = storage._free_slot(conn, "pool")
        assert slot is not None
        # claimant B claims the whole way through meanwhile
        status = storage.claim_concurrency_slot("pool", "run-b", "step_b")
        assert status.slot_status == ConcurrencySlotStatus.CLAIMED
        # A's update of the row it picked finds it taken (Dagster's update by id would succeed)
        assert not storage._take_slot(conn, slot, "pool", "run-a", "step_a")
    assert _holders(storage, "pool") == ["step_b"]
    # and A's claim through Dagster's protocol waits for the slot instead of sharing it
    waiting = storage.claim_concurrency_slot("pool", "run-a", "step_a")
    assert not waiting.is_claimed
    storage.free_concurrency_slot_for_step("run-b", "step_b")
    assert storage.claim_concurrency_slot("pool", "run-a", "step_a").is_claimed
    assert _holders(storage, "pool") == ["step_a"]


def test_simultaneous_claimants_never_share_a_slot(storage) -> None:
    """Eight threads, each with its own connection, claim a one-slot and a two-slot pool at once,
    thirty rounds; each round exactly the pool's limit of them hold a slot, never more."""
    from dagster._utils.concurrency import ConcurrencySlotStatus

    claimants = 8
    for key, limit in (("one", 1), ("two", 2)):
        storage.set_concurrency_slots(key, limit)
        for round_ in range(30):
            barrier = threading.Barrier(claimants)
            run_id = f"run-{uuid.uuid4().hex[:8]}"
            won: list[str] = []

            def claim(step: str, key=key, run_id=run_id, barrier=barrier, won=won) -> None:
                barrier.wait(timeout=30)
                if storage._claim_concurrency_slot(key, run_id, step) == (
                    ConcurrencySlotStatus.CLAIMED
                ):
                    won.append(step)

            threads = [
                threading.Thread(target=claim, args=(f"step_{i}",)) for i in range(claimants)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert len(won) <= limit, (key, round_, won)
            assert _holders(storage, key) == sorted(won), (key, round_)
            assert won, (key, round_, "a free slot went to nobody")
            storage.free_concurrency_slots_for_run(run_id)
            assert _holders(storage, key) == []


def test_the_production_instance_uses_the_slot_safe_storage(postgres_url: str, tmp_path) -> None:
    """The template as slipwayctl installs it builds this storage, for the instance and for the
    reference its run workers rebuild it from."""
    import dagster as dg

    from orchestration.instance_storage import SlotSafePostgresEventLogStorage

    config = yaml.safe_load((ROOT / "deploy" / "prod" / "dagster.yaml").read_text())
    assert config["storage"]["custom"]["class"] == "SlotSafePostgresStorage"
    with throwaway_database(postgres_url, "slot_instance") as url:
        (tmp_path / "dagster.yaml").write_text(
            (ROOT / "deploy" / "prod" / "dagster.yaml").read_text()
        )
        with pytest.MonkeyPatch.context() as mp:
            for name, value in dagster_pg_env(url).items():
                mp.setenv(name, value)
            with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
                assert isinstance(instance.event_log_storage, SlotSafePostgresEventLogStorage)
                with dg.DagsterInstance.from_ref(instance.get_ref()) as worker:
                    assert isinstance(worker.event_log_storage, SlotSafePostgresEventLogStorage)

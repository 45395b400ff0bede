"""A slot freed while a step is joining the pool's queue still reaches that step.

Dagster queues a step that finds its pool full as *pending*; whoever frees a slot assigns it to the
first pending step. A step checks for an unassigned slot and then inserts itself into the queue in
two statements, so a slot freed between the two is assigned to nobody, and the step waits for an
assignment that never comes while the pool stays free (a local two-run test hung that way). The
interleaving is replayed here statement by statement on both of the project's instance storages
(``orchestration/instance_storage.py``): Dagster's own storage keeps the step waiting, ours gives
it the slot, and a full pool still makes it wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


def _lose_an_assignment(storage) -> None:
    """A holds the pool's one slot; B checks (no unassigned slot), A frees it (nobody queued to
    assign it to), then B joins the queue unassigned, as its check said."""
    storage.set_concurrency_slots("pool", 1)
    assert storage.claim_concurrency_slot("pool", "run-a", "step_a").is_claimed
    assert not storage.has_unassigned_slots("pool")  # B's check
    storage.free_concurrency_slot_for_step("run-a", "step_a")
    storage.add_pending_step("pool", "run-b", "step_b", priority=0, should_assign=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storages(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple]:
    """(Dagster's event log storage, ours) on separate, empty databases of one kind."""
    if request.param == "sqlite":
        from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

        from orchestration.instance_storage import SlotSafeSqliteEventLogStorage

        stock = SqliteEventLogStorage(str(tmp_path / "stock"))
        ours = SlotSafeSqliteEventLogStorage(str(tmp_path / "ours"))
        yield stock, ours
        stock.dispose()
        ours.dispose()
        return
    from dagster_postgres import PostgresEventLogStorage

    from orchestration.instance_storage import SlotSafePostgresEventLogStorage
    from tests.support.servers import throwaway_database

    url = request.getfixturevalue("postgres_url")
    with throwaway_database(url, "slot_stock") as a, throwaway_database(url, "slot_ours") as b:
        stock, ours = PostgresEventLogStorage(a), SlotSafePostgresEventLogStorage(b)
        try:
            yield stock, ours
        finally:
            stock.dispose()
            ours.dispose()


def test_a_slot_freed_while_a_step_joins_the_queue_reaches_it(storages) -> None:
    stock, ours = storages
    for storage in (stock, ours):
        _lose_an_assignment(storage)
    # Dagster's storage: the pool is free, yet the step is never assigned, claim after claim
    for _ in range(3):
        assert not stock.claim_concurrency_slot("pool", "run-b", "step_b").is_claimed
    assert stock.get_concurrency_info("pool").claimed_slots == []
    # ours: the next claim re-assigns the queue and takes the slot
    assert ours.claim_concurrency_slot("pool", "run-b", "step_b").is_claimed
    assert [s.step_key for s in ours.get_concurrency_info("pool").claimed_slots] == ["step_b"]


def test_a_full_pool_still_makes_the_step_wait(storages) -> None:
    _, ours = storages
    _lose_an_assignment(ours)
    assert ours.claim_concurrency_slot("pool", "run-b", "step_b").is_claimed
    # C finds the pool full (B holds the slot): it waits, and gets the slot once B frees it
    assert not ours.claim_concurrency_slot("pool", "run-c", "step_c").is_claimed
    assert not ours.claim_concurrency_slot("pool", "run-c", "step_c").is_claimed
    ours.free_concurrency_slot_for_step("run-b", "step_b")
    assert ours.claim_concurrency_slot("pool", "run-c", "step_c").is_claimed
    assert [s.step_key for s in ours.get_concurrency_info("pool").claimed_slots] == ["step_c"]

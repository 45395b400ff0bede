"""Dagster instance storage whose concurrency-pool slot claim is atomic across processes.

Dagster claims a pool slot in two statements: it selects a free slot row ``FOR UPDATE SKIP
LOCKED`` and then updates that row by id. dagster-postgres runs every statement of the event-log
storage in autocommit mode, so the row lock ends with the ``SELECT``: two processes claiming the
one slot of a pool at the same instant both select the same free row and both update it, and both
steps run (seen in CI: two simultaneous retrains' training-set steps started within 1 ms, on
PostgreSQL). The claim below keeps Dagster's protocol and adds the missing condition to the
``UPDATE`` (the row must still be free), which PostgreSQL re-checks after waiting for the other
writer's row lock; the loser reads as ``BLOCKED`` and Dagster's executor asks again later, exactly
as when the pool is full.

``deploy/prod/dagster.yaml`` selects it (``storage: custom:`` ``SlotSafePostgresStorage``, the same
``postgres_db`` configuration ``storage: postgres:`` takes). Everything else is dagster-postgres.

A second race, on every storage (SQLite included: the local instance, ``.dagster/dagster.yaml``,
selects ``SlotSafeSqliteStorage``): a step that finds the pool full is queued as pending, and
whoever frees a slot assigns it to the first pending step. When the slot is freed between the
step's "any unassigned slot?" check and its insert into the queue, the freed slot goes to nobody
and the step waits for an assignment that never comes, however long the pool stays free (seen in
a local run of ``tests/integration/test_concurrent_runs.py``: a free slot, one unassigned pending
step, its run spinning in Dagster's executor until the test's 15-minute timeout). Both storages'
claim heals it: a pending, unassigned step that finds an unassigned slot in its pool asks Dagster
to assign the queue again (its own ``assign_pending_steps``: priority, then age), then checks.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as db
import yaml
from dagster._core.storage.config import PostgresStorageConfig
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlalchemy_compat import db_select
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils.concurrency import ConcurrencyClaimStatus, ConcurrencySlotStatus
from dagster_postgres import (
    DagsterPostgresStorage,
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config


def _storage_args(config_value: PostgresStorageConfig) -> dict[str, Any]:
    """The constructor arguments dagster-postgres' storages take from a ``postgres_db`` block."""
    return {
        "postgres_url": pg_url_from_config(config_value),
        "should_autocreate_tables": config_value.get("should_autocreate_tables", True),
        "token_provider": get_token_provider_from_config(config_value),
    }


class ReassigningClaim:
    """A pool-slot claim that re-assigns the queue when a freed slot was assigned to nobody."""

    def claim_concurrency_slot(
        self, concurrency_key: str, run_id: str, step_key: str, priority: int | None = None
    ) -> ConcurrencyClaimStatus:
        status = super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)  # type: ignore[misc]
        if status.is_claimed or status.is_assigned:
            return status
        if not self.has_unassigned_slots(concurrency_key):  # type: ignore[attr-defined]
            return status  # the pool is full: wait, as Dagster does
        self.assign_pending_steps([concurrency_key])  # type: ignore[attr-defined]
        return super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)  # type: ignore[misc]


class SlotSafeSqliteEventLogStorage(ReassigningClaim, SqliteEventLogStorage):
    """Dagster's SQLite event log, with the healing claim (:class:`ReassigningClaim`)."""

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> SlotSafeSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)


class SlotSafeSqliteStorage(DagsterSqliteStorage):
    """``storage: sqlite`` (the local instance) with :class:`SlotSafeSqliteEventLogStorage`.

    The same folders as Dagster's own SQLite storage under ``base_dir``, so an existing local
    instance keeps its runs and event logs.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # DagsterSqliteStorage.__init__ would open a plain event log storage first
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = SlotSafeSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> SlotSafeSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @property
    def event_storage_data(self) -> ConfigurableClassData | None:
        return ConfigurableClassData(
            __name__,
            SlotSafeSqliteEventLogStorage.__name__,
            yaml.dump({"base_dir": _event_logs_directory(self.base_dir)}, default_flow_style=False),
        )


class SlotSafePostgresEventLogStorage(ReassigningClaim, PostgresEventLogStorage):
    """dagster-postgres' event log, with a slot claim that two processes cannot both win."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: PostgresStorageConfig
    ) -> SlotSafePostgresEventLogStorage:
        return cls(inst_data=inst_data, **_storage_args(config_value))

    def _claim_concurrency_slot(
        self, concurrency_key: str, run_id: str, step_key: str
    ) -> ConcurrencySlotStatus:
        with self.index_connection() as conn:
            slot = self._free_slot(conn, concurrency_key)
            if slot is not None and self._take_slot(conn, slot, concurrency_key, run_id, step_key):
                return ConcurrencySlotStatus.CLAIMED
        return ConcurrencySlotStatus.BLOCKED

    @staticmethod
    def _free_slot(conn: Any, concurrency_key: str) -> int | None:
        """A free slot row's id, as Dagster picks it (its lock ends with this statement)."""
        row = conn.execute(
            db_select([ConcurrencySlotsTable.c.id])
            .select_from(ConcurrencySlotsTable)
            .where(_is_free(concurrency_key))
            .with_for_update(skip_locked=True)
            .limit(1)
        ).fetchone()
        return row[0] if row and row[0] else None

    @staticmethod
    def _take_slot(conn: Any, slot: int, concurrency_key: str, run_id: str, step_key: str) -> bool:
        """Take slot row ``slot`` for the step if it is still free; False when another took it.

        PostgreSQL re-evaluates the condition on the row as a concurrent winner left it, so of two
        claims of one row exactly one updates it.
        """
        return bool(
            conn.execute(
                ConcurrencySlotsTable.update()
                .values(run_id=run_id, step_key=step_key)
                .where(db.and_(ConcurrencySlotsTable.c.id == slot, _is_free(concurrency_key)))
            ).rowcount
        )


def _is_free(concurrency_key: str) -> Any:
    return db.and_(
        ConcurrencySlotsTable.c.concurrency_key == concurrency_key,
        ConcurrencySlotsTable.c.step_key == None,  # noqa: E711
        ConcurrencySlotsTable.c.deleted == False,  # noqa: E712
    )


class SlotSafePostgresStorage(DagsterPostgresStorage):
    """``storage: postgres`` with :class:`SlotSafePostgresEventLogStorage` as its event log.

    Run workers rebuild the instance from its serialised reference, which names this class (the
    unified storage) and, for Dagster's legacy per-part references, the event log class above.
    """

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ) -> None:
        # DagsterPostgresStorage.__init__ would build (and connect) a plain event log first
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        self._run_storage = PostgresRunStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._event_log_storage = SlotSafePostgresEventLogStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._schedule_storage = PostgresScheduleStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        super(DagsterPostgresStorage, self).__init__()

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: PostgresStorageConfig
    ) -> SlotSafePostgresStorage:
        return cls(inst_data=inst_data, **_storage_args(config_value))

    @property
    def event_storage_data(self) -> ConfigurableClassData | None:
        if self.inst_data is None:
            return None
        return ConfigurableClassData(
            __name__, SlotSafePostgresEventLogStorage.__name__, self.inst_data.config_yaml
        )

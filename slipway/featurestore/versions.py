"""Which Delta table versions the Feast offline store reads, and the record of what it read.

Why this exists: a training set is only reproducible if we know, and can re-request, the exact
version of every feature table that went into it. Feast's API has no notion of a table version,
so the pin travels beside the call in a :mod:`contextvars` context instead of through Feast:

    with pinned_versions({"features.customer_behaviour": 12}) as log:
        df = store.get_historical_features(entity_df, features).to_df()
    log.versions  # {"features.customer_behaviour": 12, "features.merchant_risk": 40}

Tables without a pin are read at their latest version *at the time of the Feast call*
(``get_historical_features`` / ``pull_*``), never at the time the lazy ``RetrievalJob`` runs,
so a write between the call and ``to_df()`` cannot leak into the result. Outside any context the
store reads the latest version and records nothing.

Contextvars (not a global) so concurrent threads / asyncio tasks, e.g. Dagster ops, each get their
own pins and their own log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = ["VersionLog", "active_pins", "pinned_versions", "resolve_version"]


@dataclass
class VersionLog:
    """What the offline store read inside one :func:`pinned_versions` block.

    ``versions`` maps each table to the version last read (what lineage records);
    ``reads`` keeps every read in order, so a table read at two versions in one block is visible.
    """

    versions: dict[str, int] = field(default_factory=dict)
    reads: list[tuple[str, int]] = field(default_factory=list)

    def record(self, table: str, version: int) -> None:
        self.versions[table] = version
        self.reads.append((table, version))


@dataclass(frozen=True)
class _Scope:
    pins: Mapping[str, int]
    logs: tuple[VersionLog, ...]


_SCOPE: ContextVar[_Scope | None] = ContextVar("slipway_feast_pinned_versions", default=None)


@contextmanager
def pinned_versions(pins: Mapping[str, int] | None = None) -> Iterator[VersionLog]:
    """Pin Delta table versions for every offline-store read inside the block; log the reads.

    Nested blocks inherit the outer pins (inner pins win) and every read is recorded in the logs
    of all enclosing blocks, so an outer "training run" log sees what inner helpers read.
    """
    for table, version in (pins or {}).items():
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise ValueError(f"pinned version for {table!r} must be an int >= 0, got {version!r}")
    outer = _SCOPE.get()
    log = VersionLog()
    merged = {**(outer.pins if outer else {}), **dict(pins or {})}
    logs = (*(outer.logs if outer else ()), log)
    token = _SCOPE.set(_Scope(pins=merged, logs=logs))
    try:
        yield log
    finally:
        _SCOPE.reset(token)


def active_pins() -> dict[str, int]:
    """The pins in force here (empty outside any :func:`pinned_versions` block)."""
    scope = _SCOPE.get()
    return dict(scope.pins) if scope else {}


def resolve_version(table: str, latest: Callable[[str], int | None]) -> int:
    """The version to read ``table`` at now: its pin, else ``latest(table)``; recorded.

    ``latest`` is passed in (``Lakehouse.version``) so this module stays free of storage code.
    Raises ``LookupError`` for a table that does not exist, instead of letting Feast return
    an all-null frame that looks like "no data".
    """
    scope = _SCOPE.get()
    version = scope.pins.get(table) if scope else None
    if version is None:
        version = latest(table)
        if version is None:
            raise LookupError(f"Delta table {table!r} does not exist in the lakehouse")
    if scope:
        for log in scope.logs:
            log.record(table, version)
    return version

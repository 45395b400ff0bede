"""The online aggregator's contract, and the one place that picks an implementation.

``apply(event)`` returns the event's window features computed from the state *before* it, then
adds the event to the state, atomically (Redis: one Lua script; embedded: one SQLite
transaction; ``apply_many`` batches several events into one such step) and idempotently by
event id: a redelivered event changes nothing and is answered
from the same earlier events, so it gets the features it got the first time.

Callers that must never fail (the online scorer) catch :class:`WindowStoreUnavailable`: the
store is down or timed out; everything else is a bug or a bad event
(:class:`~slipway.windows.semantics.InvalidWindowEvent`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from slipway.usecase import WindowFeatureSet


class WindowStoreUnavailable(RuntimeError):
    """The aggregator's state store failed or did not answer in time."""


@dataclass
class WindowResult:
    """One event's window features, as computed from the events that arrived before it.

    ``duplicate``: the event id was already applied (a redelivery); the state is unchanged.
    ``complete``: False when the event is later than the set's allowed lateness and state it
    needed may already have been pruned (its features then count only what was kept).
    ``incremental``: answered from the running aggregates (``slipway.windows.running``), not by
    re-reducing the entity's kept events; the same value either way (tests compare them).
    """

    event_id: str
    features: dict[str, Any]
    duplicate: bool
    complete: bool = True
    incremental: bool = False


class WindowAggregator(Protocol):
    feature_set: WindowFeatureSet

    def apply(self, event: Mapping[str, Any]) -> WindowResult:
        """Features for ``event`` (state before it), then add it; idempotent by event id."""
        ...

    def apply_many(self, events: Sequence[Mapping[str, Any]]) -> list[WindowResult]:
        """``apply`` for each event in order: each event's features are what ``apply`` would
        give it after the earlier events of the call. Cheaper per event than ``apply``, and
        atomic in larger steps: embedded, the whole call is one SQLite transaction (all its
        events or none); Redis, one script call per 100 events (each call all or none). A
        redelivered event is still answered as first computed and changes nothing."""
        ...

    def seed(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Add historical events to the state without computing features; returns how many
        were new. Order does not matter (features filter on arrival), duplicates are skipped."""
        ...

    def close(self) -> None: ...


def open_aggregator(
    feature_set: WindowFeatureSet,
    url: str | None = None,
    *,
    namespace: str | None = None,
    path: Path | None = None,
    incremental: bool = True,
) -> WindowAggregator:
    """The aggregator for ``url``: ``redis://host:port/db`` -> Redis, None/"" -> embedded SQLite.

    ``namespace`` prefixes every Redis key (``slipway:win`` by default; tests use a unique one).
    ``path`` is the embedded SQLite file (default ``$SLIPWAY_WINDOWS_DIR/<feature set>.sqlite``,
    i.e. ``<data dir>/windows/``). ``incremental=False`` answers every event by re-reducing the
    entity's kept events (the exact path only: for comparisons, see ``slipway.windows.running``).
    """
    if url:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"unsupported window store URL {url!r}: use redis://host:port/db")
        from slipway.windows.redis_aggregator import RedisAggregator

        return RedisAggregator(
            feature_set, url, namespace=namespace or "slipway:win", incremental=incremental
        )
    from slipway.windows.embedded import EmbeddedAggregator

    if path is None:
        from slipway.settings import load_settings

        settings = load_settings()
        folder = settings.windows_dir or settings.data_dir / "windows"
        path = folder / f"{feature_set.name}.sqlite"
    return EmbeddedAggregator(feature_set, path, incremental=incremental)


def aggregator_from_settings(
    feature_set: WindowFeatureSet, settings: Any = None
) -> WindowAggregator:
    """The aggregator this environment configures (``SLIPWAY_WINDOWS_URL``, ``_DIR``,
    ``_NAMESPACE``; see ``slipway.settings``)."""
    if settings is None:
        from slipway.settings import load_settings

        settings = load_settings()
    path = None
    if not settings.windows_url and settings.windows_dir is not None:
        path = settings.windows_dir / f"{feature_set.name}.sqlite"
    return open_aggregator(
        feature_set, settings.windows_url or None, namespace=settings.windows_namespace, path=path
    )

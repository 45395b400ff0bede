"""The live path's logs for one use case, named once: events in, dead letters, served decisions.

``<prefix>:<usecase>:<stream>:events`` (the use case's scoped prefix, see
``Settings.scoped``, then its primary stream) is the live entrance (the upstream appends one entry per
event, the event as JSON in the ``event`` field), ``...:dead`` holds rejected events with their
reasons, ``...:served`` the decisions. All three live where ``SLIPWAY_STREAM_URL`` says (Redis),
or in SQLite files under ``SLIPWAY_STREAM_DIR`` when it is empty. On Redis, the served log gets a
local SQLite spool for the time its Redis is down.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.settings import load_settings, scoped_prefix
from slipway.streaming.log import (
    EventLog,
    PartitionedAppender,
    entity_of_event,
    open_log,
    partition_name,
)
from slipway.streaming.served import ServedLog
from slipway.usecase import UseCase

EVENT_FIELD = "event"


@dataclass(frozen=True)
class StreamNames:
    events: str
    dead_letters: str
    served: str
    spool: str


def stream_names(usecase: UseCase, prefix: str) -> StreamNames:
    """The logs of ``usecase`` under the deployment's ``prefix`` (scoped here to the use case)."""
    base = f"{scoped_prefix(prefix, usecase.name)}:{usecase.primary.name}"
    return StreamNames(f"{base}:events", f"{base}:dead", f"{base}:served", f"{base}:served-spool")


@dataclass
class LiveStreams:
    """The opened logs of one use case's live path."""

    names: StreamNames
    events: EventLog  # the partition this process consumes (``partitions[partition]``)
    dead_letters: EventLog
    served: ServedLog
    url: str
    partitions: tuple[EventLog, ...] = ()  # every partition of the event stream, in order
    partition: int = 0
    appender: PartitionedAppender | None = None  # routes new events to their partition

    def close(self) -> None:
        for one in {id(x): x for x in (self.events, *self.partitions)}.values():
            one.close()
        self.dead_letters.close()
        self.served.close()

    def delete(self) -> None:
        """Drop every log (scratch replays and tests only)."""
        logs = (self.events, *self.partitions, self.dead_letters, *self.served.logs)
        for one in {id(x): x for x in logs}.values():
            one.delete()


def open_streams(
    usecase: UseCase,
    url: str | None = None,
    prefix: str | None = None,
    directory: str | Path | None = None,
    partitions: int | None = None,
    partition: int = 0,
) -> LiveStreams:
    """The live logs of ``usecase``; arguments left out come from the settings (the stream
    directory from the use case's scoped ones, ``<stream_dir>/<usecase>``).

    ``partitions`` (``SLIPWAY_STREAM_PARTITIONS``, default 1): the event stream's partitions,
    routed by the entity (``partition_key``); ``events`` is partition ``partition``'s log.
    """
    base = load_settings()
    url = base.stream_url if url is None else url
    prefix = prefix or base.stream_prefix
    directory = Path(directory) if directory is not None else base.scoped(usecase.name).stream_dir
    partitions = base.stream_partitions if partitions is None else partitions
    if not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} outside 0..{partitions - 1}")
    names = stream_names(usecase, prefix)
    primary = open_log(url, names.served, directory)
    spool = open_log("", names.spool, directory) if url else None
    logs = tuple(
        open_log(url, partition_name(names.events, p), directory) for p in range(partitions)
    )
    return LiveStreams(
        names=names,
        events=logs[partition],
        dead_letters=open_log(url, names.dead_letters, directory),
        served=ServedLog(primary, spool),
        url=url or f"sqlite:{directory}",
        partitions=logs,
        partition=partition,
        appender=PartitionedAppender(logs, entity_of_event(EVENT_FIELD, partition_key(usecase))),
    )


def partition_key(usecase: UseCase) -> str:
    """What the event stream is partitioned by: the window features' entity (their per-entity
    order is what exactness needs), else the stream's key."""
    entities = {fs.entity for fs in usecase.window_features}
    if len(entities) > 1:
        # One key cannot keep two entities' orders: partition by the first, and say so.
        import logging

        logging.getLogger(__name__).warning(
            "%s: window features of several entities (%s): partitioned by %s only",
            usecase.name,
            ", ".join(sorted(entities)),
            usecase.window_features[0].entity,
        )
    if usecase.window_features:
        return usecase.window_features[0].entity
    return usecase.streams[0].key


def encode_event(record: Mapping[str, Any] | str) -> dict[str, str]:
    """One stream entry for an event: the landed record as JSON (a string is taken as is)."""
    text = record if isinstance(record, str) else json.dumps(dict(record), separators=(",", ":"))
    return {EVENT_FIELD: text}


def append_events(
    log: EventLog | LiveStreams, records: Iterable[Mapping[str, Any] | str]
) -> list[str]:
    """Append events in order (what the upstream does); returns their positions. Given the
    ``LiveStreams``, each event goes to its entity's partition."""
    items = [encode_event(r) for r in records]
    if isinstance(log, LiveStreams):
        if log.appender is None:
            return log.events.append_many(items)
        return [position for _, position in log.appender.append_many(items)]
    return log.append_many(items)

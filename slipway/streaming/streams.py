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
from slipway.streaming.log import EventLog, open_log
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
    events: EventLog
    dead_letters: EventLog
    served: ServedLog
    url: str

    def close(self) -> None:
        self.events.close()
        self.dead_letters.close()
        self.served.close()

    def delete(self) -> None:
        """Drop every log (scratch replays and tests only)."""
        for one in (self.events, self.dead_letters, *self.served.logs):
            one.delete()


def open_streams(
    usecase: UseCase,
    url: str | None = None,
    prefix: str | None = None,
    directory: str | Path | None = None,
) -> LiveStreams:
    """The live logs of ``usecase``; arguments left out come from the settings (the stream
    directory from the use case's scoped ones, ``<stream_dir>/<usecase>``)."""
    base = load_settings()
    url = base.stream_url if url is None else url
    prefix = prefix or base.stream_prefix
    directory = Path(directory) if directory is not None else base.scoped(usecase.name).stream_dir
    names = stream_names(usecase, prefix)
    primary = open_log(url, names.served, directory)
    spool = open_log("", names.spool, directory) if url else None
    return LiveStreams(
        names=names,
        events=open_log(url, names.events, directory),
        dead_letters=open_log(url, names.dead_letters, directory),
        served=ServedLog(primary, spool),
        url=url or f"sqlite:{directory}",
    )


def encode_event(record: Mapping[str, Any] | str) -> dict[str, str]:
    """One stream entry for an event: the landed record as JSON (a string is taken as is)."""
    text = record if isinstance(record, str) else json.dumps(dict(record), separators=(",", ":"))
    return {EVENT_FIELD: text}


def append_events(log: EventLog, records: Iterable[Mapping[str, Any] | str]) -> list[str]:
    """Append events in order (what the upstream does); returns their positions."""
    return log.append_many([encode_event(r) for r in records])

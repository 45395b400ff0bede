"""Loading the online store from the offline Delta tables (Feast materialization).

A partition run for days ``[start, end]`` materializes up to the end of the latest feature data,
not only to ``end``: the SQLite online store keeps whatever is written last, so a backfill of an
old day that stopped at that day would put stale state online. Each view's window also starts one
TTL before ``start`` (at the beginning of time for views without TTL): a customer profile stamped
at signup months ago is still the current profile and must be online.

Views are loaded one after another, so a process that dies half-way leaves some views with the
new load and others with the previous one (and the view it was writing ``MATERIALIZING``, which
Feast refuses to serve). That is never silent: a load marker in the lakehouse says a load began
and did not finish, and :func:`online_consistency` reports it with each view's state and window.
A re-run recovers by itself: Feast treats a view left ``MATERIALIZING`` as not yet loaded, and
every run loads every view to the newest data.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow.compute as pc

from slipway.featurestore.versions import pinned_versions
from slipway.lakehouse import Lakehouse

log = logging.getLogger(__name__)
LOAD_MARKER = "feast/online_load.json"  # under the lakehouse root: the last load and its state


@dataclass
class MaterializeReport:
    start: dt.datetime
    end: dt.datetime
    feature_views: list[str]
    versions: dict[str, int]
    seconds: float
    recovered: list[str] = field(default_factory=list)  # views a dead load left MATERIALIZING


def latest_feature_time(lakehouse: Lakehouse, tables: Mapping[str, str]) -> dt.datetime | None:
    """The newest row time over ``tables`` (table -> its timestamp column, as each source says)."""
    latest = None
    for name, column in tables.items():
        if not lakehouse.exists(name):
            continue
        value = pc.max(lakehouse.read(name, columns=[column])[column]).as_py()
        if value is not None and (latest is None or value > latest):
            latest = value
    return latest


def materialize_online(
    store,
    lakehouse: Lakehouse,
    start: dt.date | None,
    feature_views: Sequence[str] | None = None,
    progress: Callable[[str], None] = log.info,
) -> MaterializeReport:
    """Write the latest feature values of ``[start, newest data]`` to the online store.

    Only online views: per-event window features (``online=False``) are served by the window
    aggregator, not materialized.
    """
    views = [
        fv
        for fv in store.list_feature_views()
        if fv.online and (feature_views is None or fv.name in feature_views)
    ]
    tables = {
        fv.batch_source.table: fv.batch_source.timestamp_field
        for fv in views
        if hasattr(fv.batch_source, "table")
    }
    newest = latest_feature_time(lakehouse, tables)
    if newest is None:
        raise ValueError(f"no feature rows in {tables}: nothing to materialize")
    end = newest + dt.timedelta(microseconds=1)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    requested = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC) if start is not None else epoch
    started = time.perf_counter()
    recovered = online_consistency(store).interrupted
    for name in recovered:
        progress(f"{name} was left MATERIALIZING by a load that died: loading it again")
    _write_marker(
        lakehouse,
        {"state": "loading", "views": [v.name for v in views], "end": end.isoformat()},
    )
    with pinned_versions() as versions:
        for view in views:
            # A row still valid at `requested` may be older than it: reach back one TTL (all the
            # way for views without TTL, such as profiles stamped at signup).
            begin = max(epoch, requested - view.ttl) if view.ttl else epoch
            progress(f"materializing {view.name} for {begin.isoformat()} .. {end.isoformat()}")
            store.materialize(start_date=begin, end_date=end, feature_views=[view.name])
    _write_marker(
        lakehouse,
        {
            "state": "complete",
            "views": [v.name for v in views],
            "end": end.isoformat(),
            "versions": dict(versions.versions),
        },
    )
    return MaterializeReport(
        requested,
        end,
        [v.name for v in views],
        dict(versions.versions),
        time.perf_counter() - started,
        recovered,
    )


def _write_marker(lakehouse: Lakehouse, record: dict) -> None:
    record = {**record, "at": dt.datetime.now(dt.UTC).isoformat()}
    lakehouse.write_bytes(LOAD_MARKER, json.dumps(record, sort_keys=True).encode())


def load_marker(lakehouse: Lakehouse) -> dict | None:
    """The last load's record: ``state`` is ``loading`` until every view was written."""
    if not lakehouse.file_exists(LOAD_MARKER):
        return None
    return json.loads(lakehouse.read_bytes(LOAD_MARKER))


@dataclass
class OnlineConsistency:
    """Whether the online store holds one materialization's load, from the Feast registry.

    ``ends`` is where each view's latest materialized interval ends; ``interrupted`` lists the
    views a materialization left ``MATERIALIZING`` (its process died): Feast refuses to serve
    them, and the other views may hold a newer load than they do.
    """

    ends: dict[str, dt.datetime | None]
    interrupted: list[str]
    unfinished_load: dict | None = None  # the load marker, when a load began and never ended

    @property
    def consistent(self) -> bool:
        return (
            not self.interrupted
            and self.unfinished_load is None
            and len(set(self.ends.values())) <= 1
        )

    def describe(self) -> str:
        if self.consistent:
            end = next(iter(self.ends.values()), None)
            return f"every view holds the load up to {end}"
        parts = [f"{name} up to {end}" for name, end in sorted(self.ends.items())]
        text = "views may hold different loads: " + ", ".join(parts)
        if self.unfinished_load is not None:
            text += f"; a load begun at {self.unfinished_load.get('at')} never finished"
        if self.interrupted:
            text += (
                f"; interrupted while materializing: {', '.join(self.interrupted)} "
                "(re-run feast/online_store)"
            )
        return text


def online_consistency(store, lakehouse: Lakehouse | None = None) -> OnlineConsistency:
    """Each view's state and latest materialized interval (registry), and the load marker.

    With the lakehouse, a load that began and never finished is reported even when every view's
    window looks alike (a rebuilt day changes values, not the newest timestamp).
    """
    from feast.feature_view import FeatureViewState

    ends: dict[str, dt.datetime | None] = {}
    interrupted = []
    for view in store.list_feature_views():
        if not view.online:  # offline-only views (e.g. per-event window features) are never loaded
            continue
        intervals = view.materialization_intervals
        ends[view.name] = max((end for _, end in intervals), default=None)
        if getattr(view, "state", None) == FeatureViewState.MATERIALIZING:
            interrupted.append(view.name)
    marker = load_marker(lakehouse) if lakehouse is not None else None
    unfinished = marker if marker is not None and marker.get("state") != "complete" else None
    return OnlineConsistency(ends, sorted(interrupted), unfinished)

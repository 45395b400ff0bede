"""Loading the online store from the offline Delta tables (Feast materialization).

A partition run for days ``[start, end]`` materializes up to the end of the latest feature data,
not only to ``end``: the SQLite online store keeps whatever is written last, so a backfill of an
old day that stopped at that day would put stale state online. Each view's window also starts one
TTL before ``start`` (at the beginning of time for views without TTL): a customer profile stamped
at signup months ago is still the current profile and must be online.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow.compute as pc

from slipway.featurestore.versions import pinned_versions
from slipway.lakehouse import Lakehouse

log = logging.getLogger(__name__)


@dataclass
class MaterializeReport:
    start: dt.datetime
    end: dt.datetime
    feature_views: list[str]
    versions: dict[str, int]
    seconds: float


def latest_feature_time(
    lakehouse: Lakehouse, tables: Sequence[str], column: str = "feature_ts"
) -> dt.datetime | None:
    latest = None
    for name in tables:
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
    """Write the latest feature values of ``[start, newest data]`` to the online store."""
    views = [
        fv for fv in store.list_feature_views() if feature_views is None or fv.name in feature_views
    ]
    tables = [fv.batch_source.table for fv in views if hasattr(fv.batch_source, "table")]
    newest = latest_feature_time(lakehouse, tables)
    if newest is None:
        raise ValueError(f"no feature rows in {tables}: nothing to materialize")
    end = newest + dt.timedelta(microseconds=1)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    requested = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC) if start is not None else epoch
    started = time.perf_counter()
    with pinned_versions() as versions:
        for view in views:
            # A row still valid at `requested` may be older than it: reach back one TTL (all the
            # way for views without TTL, such as profiles stamped at signup).
            begin = max(epoch, requested - view.ttl) if view.ttl else epoch
            progress(f"materializing {view.name} for {begin.isoformat()} .. {end.isoformat()}")
            store.materialize(start_date=begin, end_date=end, feature_views=[view.name])
    return MaterializeReport(
        requested,
        end,
        [v.name for v in views],
        dict(versions.versions),
        time.perf_counter() - started,
    )


@dataclass
class OnlineConsistency:
    """Whether the online store holds one materialization's load, from the Feast registry.

    ``ends`` is where each view's latest materialized interval ends; ``interrupted`` lists the
    views a materialization left ``MATERIALIZING`` (its process died): Feast refuses to serve
    them, and the other views may hold a newer load than they do.
    """

    ends: dict[str, dt.datetime | None]
    interrupted: list[str]

    @property
    def consistent(self) -> bool:
        return not self.interrupted and len(set(self.ends.values())) <= 1

    def describe(self) -> str:
        if self.consistent:
            end = next(iter(self.ends.values()), None)
            return f"every view holds the load up to {end}"
        parts = [f"{name} up to {end}" for name, end in sorted(self.ends.items())]
        text = "views hold different loads: " + ", ".join(parts)
        if self.interrupted:
            text += (
                f"; interrupted while materializing: {', '.join(self.interrupted)} "
                "(re-run feast/online_store)"
            )
        return text


def online_consistency(store) -> OnlineConsistency:
    """Read each view's state and latest materialized interval from the registry."""
    from feast.feature_view import FeatureViewState

    ends: dict[str, dt.datetime | None] = {}
    interrupted = []
    for view in store.list_feature_views():
        intervals = view.materialization_intervals
        ends[view.name] = max((end for _, end in intervals), default=None)
        if getattr(view, "state", None) == FeatureViewState.MATERIALIZING:
            interrupted.append(view.name)
    return OnlineConsistency(ends, sorted(interrupted))

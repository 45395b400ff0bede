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
    """Write the latest feature values of ``[start, newest data]`` to the online store.

    Only online views: per-event window features (``online=False``) are served by the window
    aggregator, not materialized.
    """
    views = [
        fv
        for fv in store.list_feature_views()
        if fv.online and (feature_views is None or fv.name in feature_views)
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

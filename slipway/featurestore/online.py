"""Loading the online store from the offline Delta tables (Feast materialization).

A partition run for days ``[start, end]`` materializes from ``start`` up to the end of the latest
feature data, not only to ``end``: the SQLite online store keeps whatever is written last, so a
backfill of an old day that stopped at that day would put stale state online. Extending the
window to the newest data makes every run leave the online store at the latest state.
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
    begin = (
        dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
        if start is not None
        else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    )
    progress(
        f"materializing {[v.name for v in views]} for {begin.isoformat()} .. {end.isoformat()}"
    )
    started = time.perf_counter()
    with pinned_versions() as versions:
        store.materialize(start_date=begin, end_date=end, feature_views=[v.name for v in views])
    return MaterializeReport(
        begin, end, [v.name for v in views], dict(versions.versions), time.perf_counter() - started
    )

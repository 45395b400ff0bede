"""Bootstrapping a fresh aggregator from the lakehouse: the history a live day needs.

A new consumer (or a Redis that lost its data) starts with no state, and the first event of each
customer would then see empty windows. ``seed_until`` loads the feature set's source table for
the days before ``day`` that any of ``day``'s events can still reach (the horizon plus the
allowed lateness, whole days) into the state. Seeding is idempotent by event id, so running it
over a state that already holds some of those events adds only the missing ones.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from slipway.lakehouse import Lakehouse
from slipway.usecase import WindowFeatureSet

log = logging.getLogger(__name__)
BATCH_ROWS = 50_000


@dataclass(frozen=True)
class SeedReport:
    table: str
    version: int
    start: dt.date
    end: dt.date
    rows: int
    added: int
    seconds: float


def history_days(fs: WindowFeatureSet, day: dt.date) -> tuple[dt.date, dt.date]:
    """The dates whose events ``day``'s events may aggregate: ``[day - reach, day - 1]``."""
    reach = math.ceil((fs.horizon + fs.allowed_lateness) / dt.timedelta(days=1))
    return day - dt.timedelta(days=reach), day - dt.timedelta(days=1)


def seed_until(
    aggregator,
    lakehouse: Lakehouse,
    day: dt.date,
    version: int | None = None,
    progress: Callable[[str], None] = log.info,
) -> SeedReport:
    """Load every event dated before ``day`` (within reach) of the source into the state."""
    import time

    fs: WindowFeatureSet = aggregator.feature_set
    start, end = history_days(fs, day)
    ref = lakehouse.ref(fs.source, version)
    columns = list(dict.fromkeys([fs.entity, fs.event_id, fs.event_time, fs.arrival, *fs.inputs]))
    started = time.perf_counter()
    table = lakehouse.read(fs.source, version=ref.version, dates=(start, end), columns=columns)
    added = 0
    for offset in range(0, table.num_rows, BATCH_ROWS):
        added += aggregator.seed(table.slice(offset, BATCH_ROWS).to_pylist())
    report = SeedReport(
        fs.source, ref.version, start, end, table.num_rows, added, time.perf_counter() - started
    )
    progress(
        f"{fs.name}: seeded {added} of {table.num_rows} events from {fs.source}@v{ref.version} "
        f"({start}..{end}) in {report.seconds:.1f}s"
    )
    return report

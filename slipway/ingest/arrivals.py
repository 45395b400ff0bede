"""What changed in the landing zone since the last look: new days, and late files for old days.

A day is *ready* once its transactions manifest exists (the upstream's done-marker). A ready day
not processed before is new. A file that appears or changes under a day already processed (a
late part, a re-delivery, chargebacks that came late) makes that day late: it and everything
after it must be rebuilt, because features look back over previous days.

The state is plain JSON (a sensor cursor): file fingerprints and the processed days.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from slipway.ingest.landing import MANIFEST_NAME, fingerprint, list_days


@dataclass
class Arrivals:
    """What to run: the new days (as one-day ranges), and the first late day (if any)."""

    new_ranges: list[tuple[dt.date, dt.date]] = field(default_factory=list)
    late_from: dt.date | None = None
    late_files: list[str] = field(default_factory=list)
    ready_days: list[dt.date] = field(default_factory=list)
    digest: str = ""

    @property
    def empty(self) -> bool:
        return not self.new_ranges and self.late_from is None


def _day_of(key: str) -> dt.date | None:
    parts = key.split("/")
    try:
        return dt.date.fromisoformat(parts[1])
    except (IndexError, ValueError):
        return None


def detect_arrivals(
    landing_root: str | Path,
    streams: list[str],
    state: str | None,
    primary: str,
    processed_before: set[dt.date] | None = None,
) -> tuple[Arrivals, str]:
    """Compare the landing zone with ``state`` (a previous return value); returns (arrivals, new state).

    Without a state (a sensor's first tick), ``processed_before`` says which days the lakehouse
    already holds (e.g. from its ingestion audit): they are taken as processed, with their
    current files, instead of being run again.
    """
    current = fingerprint(landing_root, streams)
    if state:
        previous = json.loads(state)
    else:
        known = processed_before or set()
        previous = {
            "files": {k: v for k, v in current.items() if _day_of(k) in known},
            "processed": [d.isoformat() for d in known],
        }
    seen: dict[str, str] = previous.get("files", {})
    processed = {dt.date.fromisoformat(d) for d in previous.get("processed", [])}
    ready = [
        d
        for d in list_days(landing_root, primary)
        if (Path(landing_root) / primary / d.isoformat() / MANIFEST_NAME).exists()
    ]
    new_days = [d for d in ready if d not in processed]
    late_files = sorted(
        key
        for key, value in current.items()
        if (day := _day_of(key)) is not None and day in processed and seen.get(key) != value
    )
    arrivals = Arrivals(ready_days=ready, late_files=late_files)
    if late_files:
        late_from = min(d for d in (_day_of(k) for k in late_files) if d is not None)
        arrivals.late_from = late_from
        # One rebuild from the first late day to the newest ready day covers the new days too.
        arrivals.new_ranges = []
    else:
        # One run per new day: a day held back by the circuit breaker must not block the others.
        arrivals.new_ranges = [(d, d) for d in sorted(new_days)]
    arrivals.digest = hashlib.sha256(
        json.dumps({k: current[k] for k in sorted(current)}).encode()
    ).hexdigest()[:16]
    new_state = json.dumps(
        {"files": current, "processed": sorted(d.isoformat() for d in processed | set(ready))},
        sort_keys=True,
    )
    return arrivals, new_state

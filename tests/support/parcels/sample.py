"""The toy parcels upstream: a few hundred scans a day and a depot snapshot, seeded, in the
landing layout every use case shares (``<landing>/<stream>/<day>/`` + ``_manifest.json``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEPOTS = [("D1", "north"), ("D2", "north"), ("D3", "south"), ("D4", "south")]


def _write_day(folder: Path, stream: str, day: dt.date, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
    name = f"{stream}_{day.isoformat()}_part-001.jsonl"
    (folder / name).write_bytes(data)
    manifest = {
        "stream": stream,
        "date": day.isoformat(),
        "generated_at": f"{day + dt.timedelta(days=1)}T01:00:00Z",
        "files": [{"name": name, "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()}],
    }
    (folder / "_manifest.json").write_text(json.dumps(manifest))


def write_sample(
    landing_root: str | Path,
    start: str,
    days: int,
    progress: Callable[[str], None] | None = None,
    per_day: int = 200,
    seed: int = 11,
) -> list[dt.date]:
    """``days`` days of scans from ``start`` and one depot snapshot; returns the landed days."""
    root = Path(landing_root)
    first = dt.date.fromisoformat(start)
    rng = np.random.default_rng(seed)
    snapshot = root / "reference" / "depots"
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / f"depots_{first.isoformat()}.jsonl").write_text(
        "".join(json.dumps({"depot_id": d, "region": r}) + "\n" for d, r in DEPOTS)
    )
    landed = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        rows = []
        for i in range(per_day):
            depot = DEPOTS[int(rng.integers(len(DEPOTS)))][0]
            weight = float(np.round(rng.gamma(2.0, 2.0) + 0.1, 3))
            distance = float(np.round(rng.uniform(1, 400), 2))
            express = bool(rng.random() < 0.3)
            # heavier, farther parcels of the busy southern depots run late more often
            late_odds = 0.05 + 0.004 * weight + 0.0006 * distance + (0.1 if depot in "D3D4" else 0)
            delay = float(
                np.round(rng.exponential(30) + (90 if rng.random() < late_odds else 0), 1)
            )
            stamp = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(
                seconds=int(rng.integers(86_400))
            )
            rows.append(
                {
                    "scan_id": f"S{offset:02d}{i:05d}",
                    "parcel_id": f"P{offset:02d}{i:05d}",
                    "depot_id": depot,
                    "event_time": stamp.isoformat().replace("+00:00", "Z"),
                    "weight_kg": weight,
                    "distance_km": distance,
                    "service": "express" if express else "standard",
                    "delay_minutes": delay,
                    "status": "lost" if rng.random() < 0.03 else "delivered",
                }
            )
        _write_day(root / "scans" / day.isoformat(), "scans", day, rows)
        landed.append(day)
        if progress is not None:
            progress(f"parcels: {day} {len(rows)} scans")
    return landed

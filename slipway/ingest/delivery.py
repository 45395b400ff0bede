"""Write records into the landing zone the way an upstream delivers them (for dataset adapters).

A use case whose sample data is a real dataset (not a simulator) needs to land it day by day in
the layout :mod:`slipway.ingest.landing` reads: ``{root}/{stream}/{YYYY-MM-DD}/`` part files
written atomically, then ``_manifest.json`` (row count and sha256 per file) written last as the
done-marker; reference snapshots as ``{root}/reference/{name}/{name}_{YYYY-MM-DD}.jsonl``.

Writing the same frame twice gives the same bytes (``generated_at`` is derived from the day, not
the wall clock), so an adapter re-run over a landing area changes no file's content.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from slipway.ingest.landing import MANIFEST_NAME, day_dir


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def jsonl_bytes(frame: pd.DataFrame) -> bytes:
    """One JSON object per row (missing values as JSON null), newline-terminated."""
    if frame.empty:
        return b""
    data = frame.to_json(orient="records", lines=True, date_format="iso").encode("utf-8")
    return data if data.endswith(b"\n") else data + b"\n"


def write_day(
    root: str | Path,
    stream: str,
    day: dt.date,
    frame: pd.DataFrame,
    parts: int = 1,
    generated_at: dt.datetime | None = None,
) -> list[Path]:
    """Land one stream's records for ``day`` as ``parts`` files plus the manifest (written last).

    ``generated_at`` (default: 06:00 UTC the morning after ``day``) is what the manifest says the
    upstream produced the files at.
    """
    folder = day_dir(root, stream, day)
    folder.mkdir(parents=True, exist_ok=True)
    chunks: Sequence[np.ndarray] = np.array_split(np.arange(len(frame)), max(1, parts))
    entries: list[dict[str, object]] = []
    written: list[Path] = []
    for number, rows in enumerate(chunks, start=1):
        name = f"{stream}_{day.isoformat()}_part-{number:03d}.jsonl"
        data = jsonl_bytes(frame.iloc[rows])
        atomic_write(folder / name, data)
        entries.append(
            {"name": name, "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()}
        )
        written.append(folder / name)
    at = generated_at or dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)
    manifest = {
        "stream": stream,
        "date": day.isoformat(),
        "generated_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "files": entries,
    }
    atomic_write(folder / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    written.append(folder / MANIFEST_NAME)
    return written


def write_snapshot(root: str | Path, name: str, day: dt.date, frame: pd.DataFrame) -> Path:
    """Land a full snapshot of reference table ``name`` as of ``day`` (latest snapshot wins)."""
    path = Path(root) / "reference" / name / f"{name}_{day.isoformat()}.jsonl"
    atomic_write(path, jsonl_bytes(frame))
    return path

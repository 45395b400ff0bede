"""Turn generated records into landing files exactly as the processor delivers them.

Files are written atomically (a hidden temp name in the same folder, then ``os.replace``), so a
reader never sees half a file, except the deliberate ``truncated`` scenario. The day's
``_manifest.json`` is written last: it is the done-marker sensors wait for, and it lists each
delivered file with the row count and sha256 the upstream *intended*, which is how a damaged
delivery is told apart from a small one.

``generated_at`` in manifests is simulated time (the morning after the day, one hour later per
part delivered before), not the wall clock, so writing the same day twice is byte-identical.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from slipway.ingest.delivery import atomic_write
from slipway.usecases.fraud.simulator.broken import (
    LINE_KINDS,
    RECORD_KINDS,
    damage_lines,
    damage_records,
    to_lines,
    truncate,
)
from slipway.usecases.fraud.simulator.config import TRANSACTION_FIELDS, SimConfig
from slipway.usecases.fraud.simulator.scenarios import broken_on

MANIFEST_NAME = "_manifest.json"
TRANSACTIONS = "transactions"
CHARGEBACKS = "chargebacks"


@dataclass(frozen=True)
class PartFile:
    """One landing file: the bytes the upstream meant to deliver and the bytes that land."""

    name: str
    part: int
    intended: bytes
    landed: bytes
    rows: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.intended).hexdigest()

    def entry(self) -> dict[str, object]:
        return {"name": self.name, "rows": self.rows, "sha256": self.sha256}


def _encode(lines: np.ndarray, compress: bool) -> bytes:
    data = b"\n".join(lines.tolist()) + b"\n" if len(lines) else b""
    return gzip.compress(data, compresslevel=6, mtime=0) if compress else data


def _clean_bytes(frame: pd.DataFrame, compress: bool) -> tuple[bytes, int]:
    if frame.empty:
        data = b""
    else:
        data = frame.to_json(orient="records", lines=True).encode("utf-8")
        if not data.endswith(b"\n"):
            data += b"\n"
    return (gzip.compress(data, compresslevel=6, mtime=0) if compress else data), len(frame)


def part_name(stream: str, day: dt.date, part: int, compress: bool) -> str:
    suffix = ".jsonl.gz" if compress else ".jsonl"
    return f"{stream}_{day.isoformat()}_part-{part:03d}{suffix}"


def render_transactions(cfg: SimConfig, day: dt.date, frame: pd.DataFrame) -> list[PartFile]:
    """The day's transaction parts (contract fields only; broken scenarios applied)."""
    records = frame[list(TRANSACTION_FIELDS)]
    broken = broken_on(cfg.scenarios, day)
    names = [part_name(TRANSACTIONS, day, p, cfg.compress) for p in range(1, cfg.parts_per_day + 1)]
    if not broken:
        # Fast path: serialise each part straight from the frame.
        chunks = np.array_split(np.arange(len(records)), cfg.parts_per_day)
        payloads = [_clean_bytes(records.iloc[c], cfg.compress) for c in chunks]
    else:
        records = damage_records(
            cfg, day, records, tuple(b for b in broken if b.kind in RECORD_KINDS)
        )
        lines = to_lines(records)
        lines = damage_lines(
            cfg, day, lines, records, tuple(b for b in broken if b.kind in LINE_KINDS)
        )
        payloads = [
            (_encode(c, cfg.compress), len(c)) for c in np.array_split(lines, cfg.parts_per_day)
        ]
    files = [
        PartFile(n, i + 1, data, data, rows)
        for i, (n, (data, rows)) in enumerate(zip(names, payloads, strict=True))
    ]
    for b in broken:
        if b.kind == "truncated":
            last = files[-1]
            files[-1] = PartFile(
                last.name,
                last.part,
                last.intended,
                truncate(last.intended, b.fraction, cfg.compress),
                last.rows,
            )
    return files


def render_chargebacks(cfg: SimConfig, day: dt.date, frame: pd.DataFrame) -> PartFile:
    """The chargebacks reported on ``day`` as one file (empty when there are none)."""
    data, rows = _clean_bytes(frame, compress=False)
    return PartFile(f"{CHARGEBACKS}_{day.isoformat()}.jsonl", 1, data, data, rows)


def render_reference(frame: pd.DataFrame) -> bytes:
    return _clean_bytes(frame, compress=False)[0]


def _generated_at(day: dt.date, hours_later: int) -> str:
    at = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(1), tzinfo=dt.UTC)
    at += dt.timedelta(hours=hours_later)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _previously_delivered(folder: Path, names: set[str]) -> set[str]:
    """Files of this day already delivered: listed in the old manifest or present on disk."""
    found = {n for n in names if (folder / n).exists()}
    manifest = folder / MANIFEST_NAME
    if manifest.exists():
        try:
            doc = json.loads(manifest.read_text())
            found |= {f["name"] for f in doc.get("files", []) if f.get("name") in names}
        except (ValueError, TypeError, KeyError, AttributeError):
            pass
    return found


def deliver(
    landing: Path, stream: str, day: dt.date, files: list[PartFile], parts: list[int] | None = None
) -> list[Path]:
    """Write the chosen parts, then rewrite the manifest to list every part delivered so far."""
    folder = landing / stream / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {f.part for f in files} if parts is None else set(parts)
    unknown = wanted - {f.part for f in files}
    if unknown:
        raise ValueError(f"no such part(s) {sorted(unknown)}; the day has {len(files)} part(s)")
    earlier = _previously_delivered(folder, {f.name for f in files if f.part not in wanted})
    written: list[Path] = []
    for f in files:
        if f.part not in wanted:
            continue
        path = folder / f.name
        if f.landed == f.intended:
            atomic_write(path, f.landed)
        else:  # the deliberate truncated delivery: a plain, non-atomic write of the cut bytes
            with open(path, "wb") as handle:
                handle.write(f.landed)
        written.append(path)
    listed = [f for f in files if f.part in wanted or f.name in earlier]
    manifest = {
        "stream": stream,
        "date": day.isoformat(),
        "generated_at": _generated_at(day, len(earlier)),
        "files": [f.entry() for f in listed],
    }
    path = folder / MANIFEST_NAME
    atomic_write(path, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    written.append(path)
    return written

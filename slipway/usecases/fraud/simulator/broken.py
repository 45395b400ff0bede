"""Damage a day's delivery the way real upstreams do, deterministically.

Record-level damage (cents, a renamed field, nulls) changes the records before serialisation;
line-level damage (duplicates, garbage) adds lines to the serialised day; truncation cuts the
last part's bytes after its manifest entry was computed (see ``writer.render_transactions``).
Each kind draws from its own seeded generator, so the same config damages the same rows.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from slipway.usecases.fraud.simulator.config import SimConfig
from slipway.usecases.fraud.simulator.scenarios import BROKEN_KINDS, BrokenUpstream

NULLABLE_TARGETS: tuple[str, ...] = (
    "customer_id",
    "merchant_id",
    "amount",
    "event_time",
    "currency",
)
RECORD_KINDS = ("cents", "renamed_field", "nulls")
LINE_KINDS = ("duplicates", "garbage")
RENAMED_TO = "amount_value"
S_BROKEN = 100  # random stream base; + index of the kind

_HTML = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    b"</center><hr><center>nginx</center></body></html>"
)
_TEXT = b"ERROR 500: upstream export job failed (connection reset by peer)"
# Noise bytes exclude anything a reader could take as a line break (\n, \r, \v, \f, \x1c-\x1e,
# NEL, and the lead byte of U+2028/2029), so one garbage line stays one line for every reader.
_NOISE_BYTES = np.array(
    [b for b in range(256) if b not in (0x0A, 0x0D, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0xE2)],
    dtype=np.uint8,
)


def _rng(cfg: SimConfig, day: dt.date, kind: str) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, day.toordinal(), S_BROKEN + BROKEN_KINDS.index(kind)])


def _amount_column(frame: pd.DataFrame) -> str:
    return RENAMED_TO if RENAMED_TO in frame.columns else "amount"


def damage_records(
    cfg: SimConfig, day: dt.date, frame: pd.DataFrame, broken: tuple[BrokenUpstream, ...]
) -> pd.DataFrame:
    """Apply the record-level kinds (in ``BROKEN_KINDS`` order) to the contract columns."""
    out = frame.copy()
    for scenario in broken:
        if scenario.kind == "cents":
            out["amount"] = (out["amount"] * 100).round().astype("Int64")
        elif scenario.kind == "renamed_field":
            out = out.rename(columns={"amount": RENAMED_TO})
        elif scenario.kind == "nulls" and len(out):
            rng = _rng(cfg, day, "nulls")
            k = max(1, round(scenario.fraction * len(out)))
            rows = np.sort(rng.choice(len(out), size=k, replace=False))
            target = rng.integers(0, len(NULLABLE_TARGETS), size=k)
            for i, name in enumerate(NULLABLE_TARGETS):
                column = _amount_column(out) if name == "amount" else name
                hit = rows[target == i]
                if out[column].dtype == object:
                    out.loc[hit, column] = None
                else:
                    if out[column].dtype != "Int64":
                        out[column] = out[column].astype("Float64")
                    out.loc[hit, column] = pd.NA
    return out


def _insert(lines: np.ndarray, extra: list[bytes], rng: np.random.Generator) -> np.ndarray:
    positions = np.sort(rng.integers(0, len(lines) + 1, size=len(extra)))
    payload = np.empty(len(extra), dtype=object)
    payload[:] = extra
    return np.insert(lines, positions, payload)


def _duplicates(
    cfg: SimConfig, day: dt.date, lines: np.ndarray, records: pd.DataFrame, fraction: float
) -> np.ndarray:
    """Exact repeats of a ``fraction`` of lines, plus a few same-id rows with another amount."""
    rng = _rng(cfg, day, "duplicates")
    n = len(lines)
    k = max(1, round(fraction * n))
    exact = [bytes(b) for b in lines[rng.choice(n, size=k, replace=False)]]
    n_conflict = max(2, k // 20)
    picked = records.iloc[np.sort(rng.choice(n, size=min(n_conflict, n), replace=False))].copy()
    column = _amount_column(picked)
    factor = rng.uniform(1.5, 3.0, size=len(picked))
    amount = pd.to_numeric(picked[column], errors="coerce").astype(float).fillna(10.0).to_numpy()
    if str(picked[column].dtype) == "Int64":
        picked[column] = pd.array(np.round(amount * factor).astype(np.int64), dtype="Int64")
    else:
        picked[column] = np.round(amount * factor, 2)
    conflicting = to_lines(picked).tolist()
    return _insert(lines, exact + conflicting, rng)


def _garbage(cfg: SimConfig, day: dt.date, lines: np.ndarray, fraction: float) -> np.ndarray:
    """A ``fraction`` of extra lines that no JSON parser accepts."""
    rng = _rng(cfg, day, "garbage")
    n = len(lines)
    k = max(1, round(fraction * n))
    extra: list[bytes] = []
    for i, kind in enumerate(rng.integers(0, 4, size=k)):
        if kind == 0 or n == 0:
            noise = _NOISE_BYTES[
                rng.integers(0, _NOISE_BYTES.size, size=int(rng.integers(16, 120)))
            ]
            extra.append(b"\xff" + noise.tobytes())
        elif kind == 1:
            whole = bytes(lines[int(rng.integers(0, n))])
            extra.append(whole[: int(rng.integers(8, len(whole) - 2))])
        elif kind == 2:
            extra.append(_HTML)
        else:
            extra.append(_TEXT + f" #{i}".encode())
    return _insert(lines, extra, rng)


def damage_lines(
    cfg: SimConfig,
    day: dt.date,
    lines: np.ndarray,
    records: pd.DataFrame,
    broken: tuple[BrokenUpstream, ...],
) -> np.ndarray:
    """Apply the line-level kinds to the serialised lines (object array of bytes, no newline)."""
    for scenario in broken:
        if scenario.kind == "duplicates" and len(lines):
            lines = _duplicates(cfg, day, lines, records, scenario.fraction)
        elif scenario.kind == "garbage":
            lines = _garbage(cfg, day, lines, scenario.fraction)
    return lines


def truncate(data: bytes, fraction: float, compressed: bool) -> bytes:
    """Cut ``data`` at about ``1 - fraction`` of its length, in the middle of a line."""
    if not data:
        return data
    cut = max(1, min(len(data) - 1, round(len(data) * (1.0 - fraction))))
    if compressed:
        return data[:cut]
    line_start = data.rfind(b"\n", 0, cut) + 1
    line_end = data.find(b"\n", cut)
    line_end = len(data) if line_end < 0 else line_end
    middle = (line_start + line_end) // 2
    return data[: max(line_start + 1, middle)]


def to_lines(frame: pd.DataFrame) -> np.ndarray:
    """Serialise records to JSON lines (object array of bytes, without newlines)."""
    if frame.empty:
        return np.empty(0, dtype=object)
    text = frame.to_json(orient="records", lines=True, date_format="iso")
    parts = text.encode("utf-8").split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    out = np.empty(len(parts), dtype=object)
    out[:] = parts
    return out

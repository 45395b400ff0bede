"""Hand-made landed records for unit tests of parsing and contracts."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa

DAY = dt.date(2026, 8, 1)


def tx(i: int, **overrides: object) -> dict[str, object]:
    """A clean transaction record on ``DAY`` (override or set a key to ``...`` to drop it)."""
    rec: dict[str, object] = {
        "transaction_id": f"tx_{i:06d}",
        "event_time": f"2026-08-01T{(i // 60) % 24:02d}:{i % 60:02d}:00.000001Z",
        "received_at": f"2026-08-01T{(i // 60) % 24:02d}:{i % 60:02d}:00.040001Z",
        "customer_id": f"C{i % 50:06d}",
        "merchant_id": f"M{i % 20:05d}",
        "amount": round(10 + (i * 7.31) % 90, 2),
        "currency": "EUR",
        "channel": "pos",
        "country": "DE",
        "merchant_category": "5411",
        "device_id": f"D{i % 50:04x}",
    }
    for key, value in overrides.items():
        if value is ...:
            rec.pop(key, None)
        else:
            rec[key] = value
    return rec


def line(record: dict[str, object]) -> str:
    return json.dumps(record)


def bronze(
    lines: list[str],
    day: dt.date = DAY,
    source_file: str = "transactions/2026-08-01/part-001.jsonl",
) -> pa.Table:
    n = len(lines)
    return pa.table(
        {
            "date": pa.array([day] * n, pa.date32()),
            "source_file": [source_file] * n,
            "source_line": list(range(1, n + 1)),
            "raw": lines,
            "ingest_run_id": ["run-1"] * n,
            "ingested_at": pa.array(
                [dt.datetime(2026, 8, 2, tzinfo=dt.UTC)] * n, pa.timestamp("us", tz="UTC")
            ),
        }
    )


def landed_transaction(row: dict) -> dict:
    """A silver transaction row as the upstream lands it: JSON types, ISO UTC times."""
    import pandas as pd

    from slipway.usecases.fraud.landing import TRANSACTION_FIELDS

    out = {f.name: row[f.name] for f in TRANSACTION_FIELDS}
    for f in TRANSACTION_FIELDS:
        if f.dtype == "timestamp" and out[f.name] is not None:
            out[f.name] = pd.Timestamp(out[f.name]).isoformat()
    out["amount"] = float(row["amount"])
    return out

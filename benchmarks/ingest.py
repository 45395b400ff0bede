"""Landing -> bronze -> silver throughput and peak memory at 1M and 10M transactions.

Each measured run ingests a fresh lakehouse in a child process (so peak RSS is the whole step,
the embedded Sail server included) through the same functions the assets call. The baseline is a
plain-pandas parse of the same bronze lines (json, typing, normalising, exact-duplicate removal;
no contract), timed in the same child beside the Sail path.

Uniqueness of the transaction id across the whole table (the default) is measured against the
per-day scope in the same session, runs alternating: a whole range from a fresh lakehouse (the
key ledger carried across chunks), then one more day re-run on top of the published range (the
daily case: every published key is read to check the day against).

``SLIPWAY_BENCH_INGEST_SIZES=1m`` limits the sizes (e.g. on a shared machine).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, run_child

BENCH = ROOT / "data" / "bench"
DAYS = 30

CHILD = r"""
import datetime as dt, json, os, shutil, sys, time, warnings
warnings.filterwarnings("ignore")
from slipway.lakehouse import Lakehouse
from slipway.ingest.pipeline import land_to_bronze, bronze_to_silver
from slipway.spark import get_spark
from slipway.usecases import get_usecase
import dataclasses
landing, lakehouse_root, start, days, baseline, scope = sys.argv[1], sys.argv[2], dt.date.fromisoformat(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1", sys.argv[6]
shutil.rmtree(lakehouse_root, ignore_errors=True)
uc = get_usecase(); stream = uc.stream("transactions")
policy = dataclasses.replace(uc.ingest, unique_key_scope=scope)
lh = Lakehouse(lakehouse_root); spark = get_spark()
end = start + dt.timedelta(days=days - 1)
t0 = time.perf_counter()
bronze = land_to_bronze(lh, landing, stream, start, end, run_id="bench", progress=lambda m: None)
t1 = time.perf_counter()
silver = bronze_to_silver(lh, spark, stream, policy, start, end, run_id="bench", progress=lambda m: None)
t2 = time.perf_counter()
bronze_to_silver(lh, spark, stream, policy, end, end, run_id="bench-day", progress=lambda m: None)
t3 = time.perf_counter()
out = {"rows": bronze.rows, "bronze_s": t1 - t0, "silver_s": t2 - t1, "total_s": t2 - t0, "day_s": t3 - t2, **silver.totals()}
if baseline:
    import pandas as pd, pyarrow.compute as pc
    from slipway.ingest.parse import silver_candidates
    from slipway.usecases.fraud.landing import FX_TO_EUR
    day = start + dt.timedelta(days=days // 2)
    raw = lh.read("bronze.transactions", dates=(day, day))
    s0 = time.perf_counter()
    silver_candidates(spark.read.format("delta").load(lh.uri("bronze.transactions")).where(f"date = '{day}'"), stream).toArrow()
    s1 = time.perf_counter()
    frame = pd.read_json(__import__("io").StringIO("\n".join(raw["raw"].to_pylist())), lines=True, dtype=False)
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True, errors="coerce")
    frame["amount"] = pd.to_numeric(frame["amount"], errors="coerce")
    for c in ("currency", "country", "customer_id", "merchant_id"):
        frame[c] = frame[c].astype(str).str.strip().str.upper()
    frame["channel"] = frame["channel"].astype(str).str.strip().str.lower()
    frame["amount_eur"] = (frame["amount"] * frame["currency"].map(FX_TO_EUR)).round(4)
    frame = frame.drop_duplicates()
    s2 = time.perf_counter()
    out |= {"one_day_rows": raw.num_rows, "sail_parse_s": s1 - s0, "pandas_parse_s": s2 - s1}
print(json.dumps(out))
"""


def _world(label: str, total: int, progress=print) -> tuple[Path, Any]:
    from slipway.usecases.fraud.simulator import SimConfig, Simulator

    landing = BENCH / f"ingest_{label}" / "landing" / "fraud"  # fraud's own landing area
    config = SimConfig(
        days=DAYS,
        transactions_per_day=total // DAYS,
        customers=max(2000, total // 300),
        merchants=2000,
    )
    marker = landing / ".complete"
    if not marker.exists():
        shutil.rmtree(landing, ignore_errors=True)
        started = time.perf_counter()
        summary = Simulator(config).write_range(landing)
        marker.write_text(
            json.dumps(
                {"transactions": summary.transactions, "seconds": time.perf_counter() - started}
            )
        )
        progress(f"simulated {summary.transactions:,} transactions into {landing}")
    return landing, config


SCOPES = {"table": "across the whole table", "day": "within each day (baseline)"}


def _measure(label: str, total: int, repeats: int, baseline: bool) -> list[dict[str, Any]]:
    landing, config = _world(label, total)
    runs: dict[str, list[dict[str, Any]]] = {scope: [] for scope in SCOPES}
    for i in range(repeats):
        for scope in SCOPES:  # alternating, so both see the same machine load
            lakehouse = BENCH / f"ingest_{label}" / "lakehouse"
            result = run_child(
                CHILD,
                argv=[
                    str(landing),
                    str(lakehouse),
                    config.start_date.isoformat(),
                    str(DAYS),
                    "1" if baseline and i == 0 and scope == "table" else "0",
                    scope,
                ],
            )
            print(
                f"  {label} run {i + 1} ({scope}): {result['total_s']:.1f}s, one more day "
                f"{result['day_s']:.1f}s, peak {result['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
            runs[scope].append(result)
    out = []
    for scope, measured in runs.items():
        rows = measured[0]["rows"]
        med = statistics.median(r["total_s"] for r in measured)
        out.append(
            {
                "transactions": rows,
                "id unique": SCOPES[scope],
                "runs": repeats,
                "bronze_s (median)": round(statistics.median(r["bronze_s"] for r in measured), 1),
                "silver_s (median)": round(statistics.median(r["silver_s"] for r in measured), 1),
                "landing->silver s (median)": round(med, 1),
                "rows/s": int(rows / med),
                "one more day's silver s (median)": round(
                    statistics.median(r["day_s"] for r in measured), 2
                ),
                "peak RSS MiB (max)": max(r["peak_rss_mib"] for r in measured),
                "silver rows": measured[0]["rows_silver"],
                "quarantined": measured[0]["rows_quarantined"],
            }
        )
    base = next((r for r in runs["table"] if "pandas_parse_s" in r), None)
    if base:
        out.append(
            {
                "transactions": base["one_day_rows"],
                "runs": 1,
                "measure": "one day's parse+type+dedup, Sail vs plain pandas",
                "sail_s": round(base["sail_parse_s"], 2),
                "pandas_s": round(base["pandas_parse_s"], 2),
            }
        )
    return out


def table_of(row: dict[str, Any]) -> str:
    """Which table of docs/benchmarks.md a result row belongs to."""
    if "Sail vs plain pandas" in str(row.get("measure", "")):
        return "One day's parse + type + dedup: Sail against a plain pandas implementation"
    return "Landing -> bronze -> silver, 30 days per size"


def run(quick: bool = False) -> dict[str, Any]:
    sizes = [("100k", 100_000, 2)] if quick else [("1m", 1_000_000, 3), ("10m", 10_000_000, 2)]
    wanted = os.environ.get("SLIPWAY_BENCH_INGEST_SIZES")
    if wanted:
        sizes = [s for s in sizes if s[0] in wanted.split(",")]
    rows: list[dict[str, Any]] = []
    for label, total, repeats in sizes:
        rows += _measure(label, total, repeats, baseline=True)
    ten = next(
        (
            r
            for r in rows
            if r["transactions"] >= 9_000_000
            and "rows/s" in r
            and r["id unique"] == SCOPES["table"]
        ),
        None,
    )
    notes = [
        f"{DAYS} simulated days per size, clean data; one run = bronze (raw lines + lineage) then silver "
        "(Sail parse/type/dedup, Pandera contract, quarantine split), each streamed into one Delta commit.",
        "Peak RSS is sampled every 50 ms over the child process and its children (Sail runs in-process).",
        "'id unique across the whole table' is the default: the key ledger carries every key of the "
        "range across chunks and checks the range against the keys published on other days; the "
        "baseline keeps the id unique within each day only. 'One more day' re-runs the last day's "
        "silver on top of the published range, which reads every published key once.",
    ]
    if wanted:
        notes.append(f"Sizes limited to {wanted} by SLIPWAY_BENCH_INGEST_SIZES.")
    day_key = "one more day's silver s (median)"
    range_key = "landing->silver s (median)"
    for a, b in zip(
        [r for r in rows if r.get("id unique") == SCOPES["table"]],
        [r for r in rows if r.get("id unique") == SCOPES["day"]],
        strict=True,
    ):
        notes.append(
            f"Cost of table-wide uniqueness at {a['transactions']:,} transactions: range "
            f"{a[range_key] - b[range_key]:+.1f} s ({a[range_key] / b[range_key] - 1:+.0%}), "
            f"one more day {a[day_key] - b[day_key]:+.2f} s, "
            f"peak RSS {a['peak RSS MiB (max)'] - b['peak RSS MiB (max)']:+.0f} MiB."
        )
    if ten:
        notes.append(
            f"Target 10M in < 10 min with < 8 GB: {ten['landing->silver s (median)']:.0f} s, "
            f"{ten['peak RSS MiB (max)'] / 1024:.1f} GiB -> "
            + (
                "met"
                if ten["landing->silver s (median)"] < 600 and ten["peak RSS MiB (max)"] < 8192
                else "NOT met"
            )
        )
    return {"title": "Landing -> silver throughput", "rows": rows, "notes": notes}

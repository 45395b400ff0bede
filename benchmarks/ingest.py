"""Landing -> bronze -> silver throughput and peak memory at 1M and 10M transactions.

Each measured run ingests a fresh lakehouse in a child process (so peak RSS is the whole step,
the embedded Sail server included) through the same functions the assets call. The baseline is a
plain-pandas parse of the same bronze lines (json, typing, normalising, exact-duplicate removal;
no contract), timed in the same child beside the Sail path.
"""

from __future__ import annotations

import json
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
landing, lakehouse_root, start, days, baseline = sys.argv[1], sys.argv[2], dt.date.fromisoformat(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
shutil.rmtree(lakehouse_root, ignore_errors=True)
uc = get_usecase(); stream = uc.stream("transactions")
lh = Lakehouse(lakehouse_root); spark = get_spark()
end = start + dt.timedelta(days=days - 1)
t0 = time.perf_counter()
bronze = land_to_bronze(lh, landing, stream, start, end, run_id="bench", progress=lambda m: None)
t1 = time.perf_counter()
silver = bronze_to_silver(lh, spark, stream, uc.ingest, start, end, run_id="bench", progress=lambda m: None)
t2 = time.perf_counter()
out = {"rows": bronze.rows, "bronze_s": t1 - t0, "silver_s": t2 - t1, "total_s": t2 - t0, **silver.totals()}
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
    from slipway.simulator import SimConfig, Simulator

    landing = BENCH / f"ingest_{label}" / "landing"
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


def _measure(label: str, total: int, repeats: int, baseline: bool) -> list[dict[str, Any]]:
    landing, config = _world(label, total)
    runs = []
    for i in range(repeats):
        lakehouse = BENCH / f"ingest_{label}" / "lakehouse"
        result = run_child(
            CHILD,
            argv=[
                str(landing),
                str(lakehouse),
                config.start_date.isoformat(),
                str(DAYS),
                "1" if baseline and i == 0 else "0",
            ],
        )
        print(
            f"  {label} run {i + 1}: {result['total_s']:.1f}s, peak {result['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
        runs.append(result)
    rows = [r["rows"] for r in runs]
    totals = [r["total_s"] for r in runs]
    med = statistics.median(totals)
    out = [
        {
            "transactions": rows[0],
            "runs": repeats,
            "bronze_s (median)": round(statistics.median(r["bronze_s"] for r in runs), 1),
            "silver_s (median)": round(statistics.median(r["silver_s"] for r in runs), 1),
            "landing->silver s (median)": round(med, 1),
            "rows/s": int(rows[0] / med),
            "peak RSS MiB (max)": max(r["peak_rss_mib"] for r in runs),
            "silver rows": runs[0]["rows_silver"],
            "quarantined": runs[0]["rows_quarantined"],
        }
    ]
    base = next((r for r in runs if "pandas_parse_s" in r), None)
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
    rows: list[dict[str, Any]] = []
    for label, total, repeats in sizes:
        rows += _measure(label, total, repeats, baseline=True)
    ten = next((r for r in rows if r["transactions"] >= 9_000_000 and "rows/s" in r), None)
    notes = [
        f"{DAYS} simulated days per size, clean data; one run = bronze (raw lines + lineage) then silver "
        "(Sail parse/type/dedup, Pandera contract, quarantine split), each streamed into one Delta commit.",
        "Peak RSS is sampled every 50 ms over the child process and its children (Sail runs in-process).",
    ]
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

"""Landing -> bronze -> silver throughput and peak memory at 1M and 10M transactions.

Each measured run ingests a fresh lakehouse in a child process (so peak RSS is the whole step,
the embedded Sail server included) through the same functions the assets call. The baseline is a
lean DuckDB path over the same landing files producing the same Delta tables (bronze and its
files record, silver, quarantine, audit) with the same rules (``benchmarks/ingest_baseline.py``,
held to the project's tables by a test), run in its own child after each run of the project's
path, so the ratio compares like with like under the same machine load.

Uniqueness of the transaction id across the whole table (the default) is measured against the
per-day scope in the same session, runs alternating: a whole range from a fresh lakehouse (the
key ledger carried across chunks), then one more day re-run on top of the published range (the
daily case: every published key is read to check the day against).

``SLIPWAY_BENCH_INGEST_SIZES=1m`` limits the sizes, ``SLIPWAY_BENCH_INGEST_REPEATS=1`` the runs
and ``SLIPWAY_BENCH_INGEST_SCOPES=table`` the scopes (e.g. on a shared machine).
``SLIPWAY_BENCH_INGEST_BASELINE_REF=<git ref>`` adds that commit's ``slipway`` package as a
same-run baseline of the project's path (table-wide scope), alternating with the current code
(extracted with ``git archive`` and put first on the child's ``sys.path``; each child reports
which code it ran).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, code_at, run_child

BENCH = ROOT / "data" / "bench"
DAYS = 30

CHILD = r"""
import datetime as dt, json, os, shutil, sys, time, warnings
warnings.filterwarnings("ignore")
code = os.environ.get("SLIPWAY_BENCH_INGEST_CODE")  # a baseline's slipway, ahead of the venv's
if code:
    sys.path.insert(0, code)
import slipway
from slipway.lakehouse import Lakehouse
from slipway.ingest.pipeline import land_to_bronze, bronze_to_silver
from slipway.spark import get_spark
from slipway.usecases import get_usecase
import dataclasses
landing, lakehouse_root, start, days, scope = sys.argv[1], sys.argv[2], dt.date.fromisoformat(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
shutil.rmtree(lakehouse_root, ignore_errors=True)
uc = get_usecase(); stream = uc.stream("transactions")
policy = dataclasses.replace(uc.ingest, unique_key_scope=scope)
lh = Lakehouse(lakehouse_root); spark = get_spark()
end = start + dt.timedelta(days=days - 1)
t0 = time.perf_counter()
bronze = land_to_bronze(lh, landing, stream, start, end, run_id="bench")
t1 = time.perf_counter()
silver = bronze_to_silver(lh, spark, stream, policy, start, end, run_id="bench")
t2 = time.perf_counter()
bronze_to_silver(lh, spark, stream, policy, end, end, run_id="bench-day")
t3 = time.perf_counter()
out = {"code": os.path.dirname(os.path.dirname(slipway.__file__)), "rows": bronze.rows, "bronze_s": t1 - t0, "silver_s": t2 - t1, "total_s": t2 - t0, "day_s": t3 - t2, **silver.totals()}
print(json.dumps(out))
"""

# The lean engine path the project is measured against (issue 14), in its own module so that a
# test can hold it to the project's rules (benchmarks/ingest_baseline.py says what it does and
# tests/integration/test_ingest_baseline_parity.py compares its tables with the project's). The
# child runs that module's __main__ in a fresh process, so peak RSS is the baseline's alone.
BASELINE = (
    "import runpy, sys; sys.path.insert(0, " + repr(str(ROOT)) + "); "
    "runpy.run_module('benchmarks.ingest_baseline', run_name='__main__')"
)


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


def _measure(
    label: str, total: int, repeats: int, baseline: bool, earlier: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    """``earlier`` = (git ref, extracted code): that commit's path runs beside the current one."""
    landing, config = _world(label, total)
    wanted = os.environ.get("SLIPWAY_BENCH_INGEST_SCOPES")  # e.g. "table": skip the per-day run
    scopes = [s for s in SCOPES if not wanted or s in wanted.split(",")]
    if earlier is not None:
        scopes.append("table@base")
    runs: dict[str, list[dict[str, Any]]] = {scope: [] for scope in scopes}
    lean: list[dict[str, Any]] = []
    for i in range(repeats):
        for scope in scopes:  # alternating, so both see the same machine load
            lakehouse = BENCH / f"ingest_{label}" / "lakehouse"
            code = earlier[1] if scope == "table@base" and earlier else None
            result = run_child(
                CHILD,
                argv=[
                    str(landing),
                    str(lakehouse),
                    config.start_date.isoformat(),
                    str(DAYS),
                    scope.split("@")[0],
                ],
                env={"SLIPWAY_BENCH_INGEST_CODE": code} if code else None,
            )
            expected = Path(code) if code else ROOT
            if Path(result["code"]).resolve() != expected.resolve():
                raise RuntimeError(f"{scope} ran {result['code']}, not {expected}")
            print(
                f"  {label} run {i + 1} ({scope}): {result['total_s']:.1f}s, one more day "
                f"{result['day_s']:.1f}s, peak {result['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
            runs[scope].append(result)
        if baseline:
            result = run_child(
                BASELINE, argv=[str(landing), str(BENCH / f"ingest_{label}" / "baseline")]
            )
            print(
                f"  {label} run {i + 1} (DuckDB baseline): {result['total_s']:.1f}s, "
                f"peak {result['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
            lean.append(result)
    out = []
    for scope, measured in runs.items():
        rows = measured[0]["rows"]
        med = statistics.median(r["total_s"] for r in measured)
        out.append(
            {
                "transactions": rows,
                "id unique": SCOPES[scope]
                if scope in SCOPES
                else f"{SCOPES['table']} (the project's path as of {earlier[0] if earlier else '?'})",
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
    if lean:
        rows = lean[0]["rows"]
        med = statistics.median(r["total_s"] for r in lean)
        project = statistics.median(r["total_s"] for r in runs.get("table") or runs[scopes[0]])
        out.append(
            {
                "transactions": rows,
                "id unique": "across the whole table (DuckDB baseline, same rules)",
                "runs": len(lean),
                "bronze_s (median)": round(statistics.median(r["bronze_s"] for r in lean), 1),
                "silver_s (median)": round(statistics.median(r["silver_s"] for r in lean), 1),
                "landing->silver s (median)": round(med, 1),
                "rows/s": int(rows / med),
                "peak RSS MiB (max)": max(r["peak_rss_mib"] for r in lean),
                "silver rows": lean[0]["rows_silver"],
                "quarantined": lean[0]["rows_quarantined"],
                "project / baseline": round(project / med, 2),
            }
        )
    return out


def table_of(row: dict[str, Any]) -> str:
    """Which table of docs/benchmarks.md a result row belongs to."""
    return "Landing -> bronze -> silver, 30 days per size"


def run(quick: bool = False) -> dict[str, Any]:
    sizes = [("100k", 100_000, 2)] if quick else [("1m", 1_000_000, 3), ("10m", 10_000_000, 2)]
    repeats = os.environ.get("SLIPWAY_BENCH_INGEST_REPEATS")  # fewer runs on a shared machine
    if repeats:
        sizes = [(label, total, int(repeats)) for label, total, _ in sizes]
    wanted = os.environ.get("SLIPWAY_BENCH_INGEST_SIZES")
    if wanted:
        sizes = [s for s in sizes if s[0] in wanted.split(",")]
    rows: list[dict[str, Any]] = []
    ref = os.environ.get("SLIPWAY_BENCH_INGEST_BASELINE_REF", "")
    earlier = None
    if ref:
        earlier = (ref, code_at(ref))
    for label, total, repeats in sizes:
        rows += _measure(label, total, repeats, baseline=True, earlier=earlier)
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
        "per-day scope keeps the id unique within each day only. 'One more day' re-runs the last day's "
        "silver on top of the published range, which reads every published key once.",
    ]
    if wanted:
        notes.append(f"Sizes limited to {wanted} by SLIPWAY_BENCH_INGEST_SIZES.")
    day_key = "one more day's silver s (median)"
    range_key = "landing->silver s (median)"
    for a, b in zip(
        [r for r in rows if r.get("id unique") == SCOPES["table"]],
        [r for r in rows if r.get("id unique") == SCOPES["day"]],
        strict=False,
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

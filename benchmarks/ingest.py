"""Landing -> bronze -> silver throughput and peak memory at 1M and 10M transactions.

Each measured run ingests a fresh lakehouse in a child process (so peak RSS is the whole step,
the embedded Sail server included) through the same functions the assets call. The baseline is a
lean DuckDB script over the same landing files producing the same three Delta tables with the
same rules (``BASELINE``), run in its own child after each run of the project's path, so the
ratio compares like with like under the same machine load.

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

# The lean engine path the project is measured against (issue 14): the same landing files, the
# same outputs (bronze with raw line, file and line; silver parsed with json_extract_string,
# typed with TRY_CAST, normalised, deduplicated by id with a window, the transactions contract's
# rules as SQL with rejects to quarantine naming the rule; all three date-partitioned Delta
# written with deltalake), in one DuckDB query and no framework around it.
BASELINE = r"""
import datetime as dt, glob, json, os, shutil, sys, time, warnings
warnings.filterwarnings("ignore")
import duckdb, pyarrow as pa
from deltalake import write_deltalake
from slipway.usecases import get_usecase
from slipway.usecases.fraud.contracts import MAX_AMOUNT_EUR, MIN_ROWS_FOR_BATCH_RULES, PLAUSIBLE_MEDIAN_EUR
from slipway.usecases.fraud.landing import CHANNELS, FX_TO_EUR
landing, root = sys.argv[1], sys.argv[2]
shutil.rmtree(root, ignore_errors=True)
stream = get_usecase().stream("transactions")
t0 = time.perf_counter()
now = pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", tz="UTC"))
# bronze: every non-blank line with its file and physical line number
parts = []
for path in sorted(glob.glob(os.path.join(landing, "transactions", "*", "*.jsonl"))):
    day = dt.date.fromisoformat(os.path.basename(os.path.dirname(path)))
    lines = open(path, "rb").read().decode("utf-8", errors="backslashreplace").split("\n")
    numbers = [i for i, line in enumerate(lines, 1) if line.strip()]
    raw = [lines[i - 1].rstrip("\r") for i in numbers]
    n = len(raw)
    parts.append(pa.table({
        "date": pa.array([day] * n, pa.date32()), "source_file": pa.array([path] * n),
        "source_line": pa.array(numbers, pa.int64()), "raw": pa.array(raw),
        "ingest_run_id": pa.array(["baseline"] * n), "ingested_at": pa.array([now] * n, now.type),
    }))
bronze = pa.concat_tables(parts); del parts
write_deltalake(os.path.join(root, "bronze"), bronze, partition_by=["date"], mode="overwrite")
t1 = time.perf_counter()
con = duckdb.connect(); con.execute("SET TimeZone='UTC'")
con.register("bronze", bronze)
con.execute("CREATE TABLE fx AS SELECT * FROM (VALUES " + ",".join(f"('{k}', {v})" for k, v in FX_TO_EUR.items()) + ") t(code, rate)")
cast = {"string": None, "double": "DOUBLE", "timestamp": "TIMESTAMPTZ"}
cols = []
for f in stream.fields:
    e = f"trim(json_extract_string(raw, '$.{f.name}'))"
    if f.normalise == "upper": e = f"upper({e})"
    if f.normalise == "lower": e = f"lower({e})"
    if cast[f.dtype]: e = f"TRY_CAST({e} AS {cast[f.dtype]})"
    cols.append(f"{e} AS {f.name}")
names = [f.name for f in stream.fields]
channels = ",".join(f"'{c}'" for c in CHANNELS); currencies = ",".join(f"'{c}'" for c in FX_TO_EUR)
low, high = PLAUSIBLE_MEDIAN_EUR
con.execute(f'''
CREATE TABLE checked AS
WITH parsed AS (
  SELECT date, source_file, source_line, raw, ingest_run_id, ingested_at, json_valid(raw) AS json_ok, {", ".join(cols)}
  FROM bronze),
typed AS (
  SELECT p.*, round(amount * fx.rate, 4) AS amount_eur, hash({", ".join(names)}) AS payload
  FROM parsed p LEFT JOIN fx ON fx.code = p.currency),
ranked AS (
  SELECT *, row_number() OVER (PARTITION BY transaction_id ORDER BY date, source_file, source_line) AS rn_key,
            row_number() OVER (PARTITION BY transaction_id, payload ORDER BY date, source_file, source_line) AS rn_values,
            count(*) OVER (PARTITION BY date) AS day_rows,
            median(amount_eur) OVER (PARTITION BY date) AS day_median
  FROM typed)
SELECT *, rn_values > 1 AND transaction_id IS NOT NULL AS exact_duplicate,
  CASE
    WHEN NOT json_ok THEN 'valid_json'
    WHEN transaction_id IS NULL OR event_time IS NULL OR received_at IS NULL OR customer_id IS NULL
      OR merchant_id IS NULL OR amount IS NULL OR currency IS NULL OR channel IS NULL OR country IS NULL
      OR merchant_category IS NULL OR device_id IS NULL OR amount_eur IS NULL THEN 'not_nullable'
    WHEN rn_key > 1 AND rn_values = 1 THEN 'unique'
    WHEN length(transaction_id) NOT BETWEEN 1 AND 64 THEN 'str_length'
    WHEN NOT regexp_full_match(customer_id, 'C\\d+') THEN 'str_matches customer_id'
    WHEN NOT regexp_full_match(merchant_id, 'M\\d+') THEN 'str_matches merchant_id'
    WHEN NOT (amount > 0 AND amount <= {MAX_AMOUNT_EUR * 20}) THEN 'amount range'
    WHEN currency NOT IN ({currencies}) THEN 'isin currency'
    WHEN channel NOT IN ({channels}) THEN 'isin channel'
    WHEN NOT regexp_full_match(country, '[A-Z]{{2}}') THEN 'str_matches country'
    WHEN NOT regexp_full_match(merchant_category, '\\d{{4}}') THEN 'str_matches merchant_category'
    WHEN length(device_id) NOT BETWEEN 1 AND 128 THEN 'str_length device_id'
    WHEN NOT (amount_eur > 0) THEN 'amount_eur gt'
    WHEN amount_eur > {MAX_AMOUNT_EUR} THEN 'amount_eur_at_most_25000'
    WHEN day_rows >= {MIN_ROWS_FOR_BATCH_RULES} AND NOT (day_median BETWEEN {low} AND {high}) THEN 'batch_median_amount_eur_plausible'
    WHEN CAST(event_time AS DATE) <> date THEN 'event_time_in_partition_day'
    WHEN received_at < event_time THEN 'received_at_not_before_event_time'
    WHEN CAST(received_at AS DATE) <> date THEN 'received_at_in_partition_day'
  END AS rule
FROM ranked WHERE NOT (rn_values > 1 AND transaction_id IS NOT NULL AND rn_key > 1 AND json_ok)
''')
keep = ", ".join(["date", *names, "amount_eur", "source_file", "source_line", "ingest_run_id", "ingested_at"])
silver = con.execute(f"SELECT {keep} FROM checked WHERE rule IS NULL").to_arrow_table()
quarantine = con.execute(
    "SELECT date, 'transactions' AS stream, transaction_id AS record_key, source_file, source_line, rule, raw, ingest_run_id, now() AS quarantined_at FROM checked WHERE rule IS NOT NULL"
).to_arrow_table()
write_deltalake(os.path.join(root, "silver"), silver, partition_by=["date"], mode="overwrite")
write_deltalake(os.path.join(root, "quarantine"), quarantine, partition_by=["date"], mode="overwrite")
t2 = time.perf_counter()
print(json.dumps({"rows": bronze.num_rows, "bronze_s": t1 - t0, "silver_s": t2 - t1, "total_s": t2 - t0,
                  "rows_silver": silver.num_rows, "rows_quarantined": quarantine.num_rows}))
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
                "id unique": "across the whole table (lean DuckDB baseline)",
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

"""Feature tables at 1M and 10M transactions, a 1M-row point-in-time training set, online lookups.

The worlds are the ingestion benchmark's simulated landing zones (``data/bench/ingest_*``),
taken through ingestion and gold (dbt) once, untimed. Each measured step runs in a child process
so its peak memory is its own. The point-in-time join is Feast's ``get_historical_features``
through the Delta offline store (DuckDB ASOF join over pinned versions), side by side with a
plain pandas ``merge_asof`` of the same entity rows and tables. Online lookup latencies are
measured by the serving benchmark (Feast's own online read beside the serving path) and copied
here.

Switches for the point-in-time part alone (``make bench-pit``, ``BENCH_FEATURES_PIT_ONLY=1``):
``SLIPWAY_BENCH_PIT_WORLD=1m`` joins over the 1M world instead of the 10M one (the 10M world
takes ~100 min to build here; its feature tables are built once if missing), and
``SLIPWAY_BENCH_PIT_BASELINE_REF=<git ref>`` adds that commit's ``slipway`` package as a
same-run baseline of the streamed path (extracted with ``git archive``, put first on the
child's ``sys.path``; each child reports which code it ran). Rows of other worlds from the last
run are kept, marked with their date.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
from pathlib import Path
from typing import Any

from benchmarks.harness import RESULTS, ROOT, code_at, run_child
from benchmarks.ingest import DAYS, _world

BENCH = ROOT / "data" / "bench"

PREPARE = r"""
import datetime as dt, json, os, sys, warnings
warnings.filterwarnings("ignore")
os.environ["SLIPWAY_DATA_DIR"] = sys.argv[1]
os.environ["SLIPWAY_LANDING_ROOT"] = os.path.dirname(sys.argv[2])  # the world is <root>/fraud
os.environ["SLIPWAY_LAKEHOUSE_ROOT"] = sys.argv[1] + "/lakehouse"
os.environ["SLIPWAY_FEAST_DIR"] = sys.argv[1] + "/feast"
import dagster as dg
from orchestration.definitions import build_definitions
defs = build_definitions()
start, end = sys.argv[3], sys.argv[4]
tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
inst = dg.DagsterInstance.ephemeral()
ok = defs.get_job_def("fraud_ingestion").execute_in_process(instance=inst, tags=tags, raise_on_error=False).success
gold = [dg.AssetKey(["fraud", "gold", "enriched_transactions"])]
job = defs.resolve_implicit_global_asset_job_def()
ok2 = job.execute_in_process(instance=inst, tags=tags, asset_selection=gold, raise_on_error=False).success
print(json.dumps({"ingestion": ok, "gold": ok2}))
"""

BUILD = r"""
import datetime as dt, json, sys, time, warnings
warnings.filterwarnings("ignore")
from slipway.lakehouse import Lakehouse
from slipway.features.build import build_feature_table
from slipway.spark import get_spark
from slipway.usecases import get_usecase
lh = Lakehouse(sys.argv[1]); uc = get_usecase(); spark = get_spark()
start, end = dt.date.fromisoformat(sys.argv[2]), dt.date.fromisoformat(sys.argv[3])
out = {}
for name in ("customer_behaviour", "merchant_risk", "customer_profile"):
    table = uc.feature_table(name)
    t = time.perf_counter()
    r = build_feature_table(lh, spark, table, start if table.partitioned else None, end if table.partitioned else None)
    out[name] = {"s": time.perf_counter() - t, "rows": r.rows}
print(json.dumps(out))
"""

PIT = r"""
import datetime as dt, json, os, sys, time, warnings
warnings.filterwarnings("ignore")
code = os.environ.get("SLIPWAY_BENCH_PIT_CODE")  # a baseline's slipway, ahead of `python -c`'s cwd
if code:
    sys.path.insert(0, code)
os.environ["SLIPWAY_DATA_DIR"] = sys.argv[1]
os.environ["SLIPWAY_LAKEHOUSE_ROOT"] = sys.argv[1] + "/lakehouse"
os.environ["SLIPWAY_FEAST_DIR"] = sys.argv[1] + "/feast"
n, path, everything = int(sys.argv[2]), sys.argv[3], sys.argv[4] == "all"
import pandas as pd, pyarrow.compute as pc
from slipway.lakehouse import Lakehouse
from slipway.featurestore.store import apply_repo, open_store
from slipway.training.dataset import feature_parts, historical_features, historical_job, matured_entities
from slipway.usecases import get_usecase
uc = get_usecase(); lh = Lakehouse(sys.argv[1] + "/lakehouse/fraud")
as_of = None
if everything:  # every transaction of the world as an entity row (10M), not only matured ones
    last = pc.max(lh.read("gold.enriched_transactions", columns=["date"])["date"]).as_py()
    as_of = last + dt.timedelta(days=uc.label.maturity_days)
entities = matured_entities(lh, uc, as_of=as_of).frame
if n < len(entities):
    entities = entities.sample(n=n, random_state=7).sort_values(["event_timestamp", "transaction_id"]).reset_index(drop=True)
import slipway
out = {"entity_rows": len(entities), "code": os.path.dirname(os.path.dirname(slipway.__file__))}
if path in ("feast", "feast_df"):
    store = open_store(); apply_repo(store)
    t, cpu = time.perf_counter(), time.process_time()
    if path == "feast":  # what build_training_set does: streamed join into one Delta commit
        job, versions = historical_job(store, entities, uc.model.feature_service)
        parts = feature_parts(job)
        first = next(parts)
        import itertools
        written = lh.write_batches("training.pit_bench", first.schema, itertools.chain([first], parts), mode="overwrite")
        rows = written.rows_written
        columns = len(first.schema)
    else:  # Feast's API: the whole frame in memory
        frame, versions = historical_features(store, entities, uc.model.feature_service)
        rows, columns = len(frame), len(frame.columns)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
else:
    # Baseline: pandas merge_asof of the same three tables (no TTL, no on-demand features),
    # on the entity frame as plain numpy/object columns, as pandas users hold it.
    entities = entities.astype({c: object for c, t in entities.dtypes.items() if isinstance(t, pd.ArrowDtype)})
    t, cpu = time.perf_counter(), time.process_time()
    base = entities.copy()
    # customer_behaviour is keyed by the transaction (its row stamped at event_time), merchant_risk
    # by merchant and day (feature_ts): each an as-of merge on its own key and time column.
    for name, key, ts in (("features.customer_behaviour", "transaction_id", "event_time"), ("features.merchant_risk", "merchant_id", "feature_ts")):
        f = lh.read(name).to_pandas()
        f = f.drop(columns=[c for c in ("date", "received_at", "customer_id", "transaction_id", "merchant_id") if c != key and c in f.columns]).sort_values(ts)
        base = pd.merge_asof(base.sort_values("event_timestamp"), f, left_on="event_timestamp", right_on=ts, by=key, direction="backward", suffixes=("", "_" + key))
    prof = lh.read("features.customer_profile").to_pandas()
    base = base.merge(prof, on="customer_id", how="left", suffixes=("", "_p"))
    seconds, rows, columns = time.perf_counter() - t, len(base), len(base.columns)
    cpu = time.process_time() - cpu
print(json.dumps(out | {"rows": rows, "seconds": seconds, "cpu_s": cpu, "columns": columns}))
"""


def _prepared(label: str, total: int) -> tuple[str, str, str]:
    """A world for ``label`` with silver and gold built (once; reused afterwards)."""
    landing, config = _world(label, total)
    data = BENCH / f"features_{label}"
    start = config.start_date
    end = config.start_date.fromordinal(start.toordinal() + DAYS - 1)
    marker = data / ".prepared"
    if not marker.exists():
        data.mkdir(parents=True, exist_ok=True)
        result = run_child(
            PREPARE,
            argv=[str(data), str(landing), start.isoformat(), end.isoformat()],
            timeout=7200,
        )
        if not (result.get("ingestion") and result.get("gold")):
            raise RuntimeError(f"preparing the {label} world failed: {result}")
        marker.write_text(json.dumps(result))
    return str(data), start.isoformat(), end.isoformat()


def _with_features(data: str, start: str, end: str) -> None:
    """The world's feature tables, built once (the point-in-time-only run needs them)."""
    marker = Path(data) / ".features"
    if not marker.exists():
        result = run_child(BUILD, argv=[data + "/lakehouse/fraud", start, end], timeout=7200)
        marker.write_text(json.dumps(result))


LOOKUP = "feature lookup"


def table_of(row: dict[str, Any]) -> str:
    """Which table of docs/benchmarks.md a result row belongs to."""
    measure = str(row.get("measure", ""))
    if measure.startswith("feature table"):
        return "Feature tables (Sail, the whole range in one call)"
    if measure.startswith(LOOKUP):
        return "Online feature lookups, in process (measured by the serving benchmark)"
    return "Point-in-time training set against a plain pandas merge_asof"


def doc_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This benchmark's rows plus the serving benchmark's current online lookups.

    The lookups are measured where the serving world exists; they are read at render time so
    the two sections can never disagree.
    """
    own = [r for r in rows if not str(r.get("measure", "")).startswith(LOOKUP)]
    serving = RESULTS / "serving.json"
    if serving.exists():
        own += [
            r
            for r in json.loads(serving.read_text()).get("rows", [])
            if str(r.get("measure", "")).startswith(LOOKUP)
        ]
    return own


PIT_LABELS = {
    "feast": "point-in-time training set (Feast, Delta offline store), streamed into one Delta commit",
    "feast@base": "same-run baseline: the streamed path as of {ref}",
    "feast_df": "the same through Feast's to_df (whole frame in memory, no write)",
    "pandas": "baseline: plain pandas merge_asof (no TTL, no on-demand features)",
}


def _pit_rows(
    data: str,
    entity_rows: int,
    repeats: int,
    paths: list[str],
    everything: bool = False,
    world: str = "",
    baseline: tuple[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Each path in its own child, alternating, so each peak RSS is that path's alone.

    ``feast@base`` is the ``feast`` path run on ``baseline`` = (git ref, extracted code).
    """
    pits: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    for _ in range(repeats):
        for path, results in pits.items():
            env = None
            if path == "feast@base":
                assert baseline is not None, "feast@base needs SLIPWAY_BENCH_PIT_BASELINE_REF"
                env = {"SLIPWAY_BENCH_PIT_CODE": baseline[1]}
            result = run_child(
                PIT,
                argv=[
                    data,
                    str(entity_rows),
                    path.split("@")[0],
                    "all" if everything else "matured",
                ],
                env=env,
                timeout=7200,
            )
            expected_code = baseline[1] if path == "feast@base" else str(ROOT)
            if Path(result["code"]).resolve() != Path(expected_code).resolve():
                raise RuntimeError(f"{path} ran {result['code']}, not {expected_code}")
            result["load_avg_1m"] = round(os.getloadavg()[0], 2)
            print(
                f"  pit {path} {result['entity_rows']:,}: {result['seconds']:.1f}s, "
                f"{result['cpu_s']:.1f} CPU s, {result['peak_rss_mib']:.0f} MiB, "
                f"load {result['load_avg_1m']}",
                flush=True,
            )
            results.append(result)
    rows = []
    for path, results in pits.items():
        times = sorted(r["seconds"] for r in results)
        loads = sorted(r["load_avg_1m"] for r in results)
        rows.append(
            {
                "measure": PIT_LABELS[path].format(ref=baseline[0] if baseline else ""),
                "world": world,
                "load avg 1m (min-max)": f"{loads[0]:.1f}-{loads[-1]:.1f}",
                "entity rows": results[0]["entity_rows"],
                "rows out": results[0]["rows"],
                "runs": len(results),
                "seconds (median)": round(statistics.median(times), 1),
                "seconds (min-max)": f"{times[0]:.1f}-{times[-1]:.1f}",
                "CPU seconds (median)": round(statistics.median(r["cpu_s"] for r in results), 1),
                "peak RSS MiB (max)": max(r["peak_rss_mib"] for r in results),
            }
        )
    return rows


def _verdict(rows: list[dict[str, Any]], world: str) -> str:
    """Issue 14's point-in-time targets against this run's streamed row, met or not."""
    row = next(r for r in rows if r["measure"] == PIT_LABELS["feast"])
    seconds, mib = row["seconds (median)"], row["peak RSS MiB (max)"]
    base = next((r for r in rows if r["measure"].startswith("same-run baseline")), None)
    against = (
        f" (same-run baseline {base['seconds (median)']} s, {base['peak RSS MiB (max)']:,.0f} MiB)"
        if base
        else ""
    )
    return (
        f"Targets, this run over the {world} world: 1M entity rows < 10 s: "
        f"{'met' if seconds < 10 else 'NOT met'} (median {seconds} s, runs "
        f"{row['seconds (min-max)']} s); < 3 GiB peak: {'met' if mib < 3072 else 'NOT met'} "
        f"({mib:,.0f} MiB){against}. 10M entity rows on 24 GiB: "
        + ("see the 10M-entity-row run." if world == "10m" else "needs the 10m world; not run.")
    )


def run(quick: bool = False) -> dict[str, Any]:
    sizes = [("100k", 100_000, 2)] if quick else [("1m", 1_000_000, 3), ("10m", 10_000_000, 2)]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    pit_only = os.environ.get("BENCH_FEATURES_PIT_ONLY", "") == "1"
    pit_world = os.environ.get("SLIPWAY_BENCH_PIT_WORLD", "")  # e.g. "1m": the PIT over that world
    baseline_ref = os.environ.get("SLIPWAY_BENCH_PIT_BASELINE_REF", "")
    if pit_only:  # `make bench-pit`: keep the feature-table rows of the last full run
        previous = json.loads((RESULTS / "features.json").read_text())
        when = previous.get("measured_at", "?")
        rows = [r for r in previous["rows"] if str(r["measure"]).startswith("feature table")]
        notes.append(
            f"Feature-table rows are from the full run of {when} "
            f"({previous.get('machine', 'machine not recorded')}); the point-in-time rows "
            "marked '(this run)' were re-measured alone (BENCH_FEATURES_PIT_ONLY=1), the others "
            "are kept from the run their 'measured' column names, on that run's machine."
        )
        sizes = [s for s in sizes if s[0] == pit_world] if pit_world else sizes[-1:]
        if not sizes:
            raise ValueError(f"SLIPWAY_BENCH_PIT_WORLD={pit_world!r}: not one of 1m, 10m")
        # Point-in-time rows over other worlds stay, marked as not re-measured in this run.
        for r in previous["rows"]:
            if str(r["measure"]).startswith("feature table") or r.get("world") == sizes[-1][0]:
                continue
            world = r.get("world") or "10m"  # rows before the world column were over 10m
            measured = (r.get("measured") or when).replace(" (this run)", "")  # not this one
            rows.append(r | {"world": world, "measured": measured})
    for label, total, repeats in [] if pit_only else sizes:
        data, start, end = _prepared(label, total)
        runs = [
            run_child(BUILD, argv=[data + "/lakehouse/fraud", start, end], timeout=7200)
            for _ in range(repeats)
        ]
        for name in ("customer_behaviour", "merchant_risk", "customer_profile"):
            times = [r[name]["s"] for r in runs]
            rows.append(
                {
                    "measure": f"feature table {name}",
                    "transactions": total,
                    "rows out": runs[0][name]["rows"],
                    "runs": repeats,
                    "seconds (median)": round(statistics.median(times), 1),
                    "peak RSS MiB (all three tables)": max(r["peak_rss_mib"] for r in runs),
                }
            )
        print(
            f"  features {label}: {[round(r[n]['s'], 1) for r in runs for n in ('customer_behaviour',)]}",
            flush=True,
        )
        Path(data, ".features").write_text(json.dumps(runs[-1]))
    pit_label, pit_total = sizes[-1][0], sizes[-1][1]
    data, start, end = _prepared(pit_label, pit_total)
    _with_features(data, start, end)
    entity_rows = 20_000 if quick else 1_000_000
    # Over the 1M world, 1M matured transactions do not exist (the last 7 days are not matured):
    # every transaction of the world is an entity row, as on the 10M-entity-row run.
    every = pit_label == "1m"
    baseline = (baseline_ref, code_at(baseline_ref)) if baseline_ref else None
    paths = ["feast", *(["feast@base"] if baseline else []), "pandas"]
    measured_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    new_rows = _pit_rows(
        data, entity_rows, 3, paths, everything=every, world=pit_label, baseline=baseline
    )
    new_rows += _pit_rows(data, entity_rows, 1, ["feast_df"], everything=every, world=pit_label)
    if pit_label == "10m" and not quick and os.environ.get("BENCH_PIT_10M", "1") != "0":
        # Every transaction of the 10M world as an entity row; pandas cannot hold it here.
        new_rows += _pit_rows(data, 10**9, 1, ["feast"], everything=True, world=pit_label)
    rows += [r | {"measured": f"{measured_at} (this run)"} for r in new_rows]
    notes.append(_verdict(new_rows, pit_label))
    sampled = (
        "transactions (every one of the 1m world's, as_of past the last day)"
        if every
        else "matured transactions (and, on the last row, every transaction)"
    )
    notes.append(
        f"Point-in-time join: {entity_rows:,} {sampled} sampled from the {pit_label} world as "
        "entity rows, joined to "
        "customer_behaviour, merchant_risk and customer_profile, plus the on-demand request-time "
        "features; the pandas baseline does the same three joins without TTL or on-demand "
        "features. Target: 1M entity rows in < 10 s at < 3 GiB peak, 10M completing on 24 GiB. "
        "The 'world' and 'measured' columns say over which world and in which run a row was taken."
    )
    notes.append(
        "Each point-in-time path runs in its own process (alternating, 3 each), so a peak RSS is "
        "that path's alone; it includes reading the world's transactions to sample the "
        "entity rows (untimed). The streamed path is build_training_set's: a two-pass join (keys "
        "and times, then each row group's feature columns once) consumed 200k entity rows at a "
        "time and written with Lakehouse.write_batches as one Delta commit; its seconds include "
        "that write. The load average is the machine's 1-minute figure when each run ended "
        "(2 cores, shared with other jobs); CPU seconds (user + system, all threads of the "
        "child, over the timed part) are less sensitive to that load than wall seconds."
    )
    if baseline:
        notes.append(
            f"Same-run baseline: the streamed path with slipway as of {baseline_ref} "
            "(SLIPWAY_BENCH_PIT_BASELINE_REF), alternating with the current code."
        )
    notes.append(
        "Online lookup rows come from benchmarks/results/serving.json (same machine, measured there)."
    )
    notes.append(
        "Feature tables are built by Sail over the whole 30-day range in one call, as a single-run backfill does."
    )
    switches = " ".join(
        f"{k}={os.environ[k]}"
        for k in (
            "BENCH_FEATURES_PIT_ONLY",
            "SLIPWAY_BENCH_PIT_WORLD",
            "SLIPWAY_BENCH_PIT_BASELINE_REF",
            "BENCH_PIT_10M",
        )
        if os.environ.get(k)
    )
    return {
        "command": f"{switches} python -m benchmarks features".strip()
        + (" --quick" if quick else ""),
        "title": "Feature tables, point-in-time join, online lookups",
        "rows": rows,
        "notes": notes,
    }

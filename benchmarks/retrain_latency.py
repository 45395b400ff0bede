"""Detect-to-retrain time: from the first drifted file landing to a new champion.

On the default data (40 simulated days x ~3,000 transactions, covariate drift from day 41): the
champion is trained once as of day 20 (a stale model), days 21..40 are processed by the daily job
as they would have been, then day 41's drifted files land and the clock starts. The real sensors
are ticked back to back and their runs executed in process (what the daemon does, minus its
polling intervals, which are added in the notes): landing sensor -> daily run (ingest, gold,
features, online store, scoring, drift) -> drift sensor -> retrain (training set, candidate,
gate, champion).
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from benchmarks.harness import ROOT, run_child

WORLD = ROOT / "data" / "bench" / "retrain"

CHILD = r"""
import datetime as dt, json, sys, time, warnings
from pathlib import Path
warnings.filterwarnings("ignore")
from tests.support.pipeline import slipway_env, run_graph
world = Path(sys.argv[1]); quick = sys.argv[2] == "1"
from slipway.usecases.fraud.simulator import CovariateDrift, SimConfig, Simulator
base = dict(days=40) if not quick else dict(days=24, transactions_per_day=1000, customers=600, merchants=60)
start = SimConfig().start_date
drift_day = start + dt.timedelta(days=base["days"])
stale_until = start + dt.timedelta(days=base["days"] // 2 - 1)
config = SimConfig(**base, scenarios=(CovariateDrift(drift_day),))
timings = {}
with slipway_env(world):
    sim = Simulator(config)
    sim.write_range(world / "landing" / "fraud")
    t = time.perf_counter()
    assert run_graph(start, stale_until).success
    assert run_graph(stale_until + dt.timedelta(days=1), drift_day - dt.timedelta(days=1), job="daily_ingest_and_score").success
    timings["setup_s"] = time.perf_counter() - t
    from slipway.lakehouse import Lakehouse
    from slipway.registry import ModelRegistry
    from slipway.registry.store import CHAMPION
    from tests.support.automation import Automation
    registry = ModelRegistry(Lakehouse(world / "lakehouse" / "fraud"))
    champion = registry.alias("fraud_lgbm", CHAMPION)
    auto = Automation()
    auto.tick("drift_sensor")  # prime: alerts before the drift are not the clock's business
    t0 = time.perf_counter()
    sim.deliver(world / "landing" / "fraud", drift_day)
    daily = auto.tick_and_run("landing_sensor")
    t1 = time.perf_counter()
    retrains = auto.tick_and_run("drift_sensor")
    t2 = time.perf_counter()
    new = registry.alias("fraud_lgbm", CHAMPION)
    decision = registry.decisions("fraud_lgbm")[-1] if registry.decisions("fraud_lgbm") else {}
    print(json.dumps({
        **timings, "landing_to_drift_s": t1 - t0, "drift_to_champion_s": t2 - t1, "total_s": t2 - t0,
        "daily_ok": all(r.success for r in daily), "retrains": len(retrains),
        "old_champion": champion, "new_champion": new, "gate": decision.get("reason"),
    }))
"""


def run(quick: bool = False) -> dict[str, Any]:
    rows = []
    for i in range(1 if quick else 3):
        world = WORLD / f"run{i}"
        shutil.rmtree(world, ignore_errors=True)
        world.mkdir(parents=True)
        r = run_child(CHILD, argv=[str(world), "1" if quick else "0"], timeout=7200)
        print(
            f"  detect-to-retrain run {i + 1}: {r['total_s']:.0f}s, champion v{r['old_champion']} -> v{r['new_champion']}",
            flush=True,
        )
        rows.append(
            {
                "run": i + 1,
                "landing -> drift evaluated s": round(r["landing_to_drift_s"], 1),
                "drift -> gate/champion s": round(r["drift_to_champion_s"], 1),
                "landing -> new champion s": round(r["total_s"], 1),
                "champion before": r["old_champion"],
                "champion after": r["new_champion"],
                "retrains requested": r["retrains"],
                "gate": r["gate"],
            }
        )
    return {"rows": rows}


def detect_to_retrain_rows(quick: bool) -> tuple[list[dict[str, Any]], list[str]]:
    result = run(quick)
    rows = result["rows"]
    totals = sorted(r["landing -> new champion s"] for r in rows)
    median = totals[len(totals) // 2]
    promoted = all(r["champion after"] != r["champion before"] for r in rows)
    notes = [
        f"detect-to-retrain (scenario 4): median {median:.0f} s from the drifted day's files landing to "
        + ("the new champion" if promoted else "the gate's decision (not every run promoted)")
        + " with sensors ticked back to back; under the daemon add up to 30 s (landing sensor interval) "
        "+ 60 s (drift sensor interval). Target < 5 minutes: "
        + ("met" if median + 90 < 300 else "NOT met")
        + ".",
    ]
    return rows, notes


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=2, default=str))

"""Scenarios that drive the real sensors and runs on small simulated data.

1. covariate drift: the drift sensor fires on the first drifted day, a retrain runs, a challenger
   is registered and the gate promotes or rejects it with the reason recorded;
2. broken upstream: the contract stops the partition, quarantine holds the rows, the champion
   keeps scoring the good days, no retrain is triggered;
3. late files for an old day: the landing sensor rebuilds that day and its downstream, and the
   tables converge to what on-time files would have produced.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.compute as pc
import pytest

from assets.automation.sensors import RANGE_START
from slipway.lakehouse import Lakehouse
from slipway.registry import ModelRegistry
from slipway.registry.store import CHAMPION
from slipway.usecases.fraud.simulator import BrokenUpstream, CovariateDrift
from tests.scenario.conftest import copy_world, next_day, simulator
from tests.support.automation import Automation
from tests.support.pipeline import slipway_env

pytestmark = pytest.mark.scenario
MODEL = "fraud_lgbm"


def _daily(runs) -> dict[str, object]:
    return {
        r.request.tags[RANGE_START]: r
        for r in runs
        if r.request.job_name == "fraud_daily_ingest_and_score"
    }


def _dates(lakehouse: Lakehouse, name: str, **filters) -> dict[dt.date, int]:
    table = lakehouse.read(name, columns=["date", *filters])
    for column, value in filters.items():
        table = table.filter(pc.equal(table[column], value))
    return {c["values"]: c["counts"] for c in pc.value_counts(table["date"]).to_pylist()}


def test_broken_upstream_is_held_quarantined_and_never_retrains(pipeline, tmp_path: Path) -> None:
    world = copy_world(pipeline, tmp_path / "world")
    d1, d2, d3 = next_day(pipeline, 1), next_day(pipeline, 2), next_day(pipeline, 3)
    sim = simulator(scenarios=(BrokenUpstream(d1, "cents"), BrokenUpstream(d2, "renamed_field")))
    with slipway_env(world):
        lakehouse = Lakehouse(world / "lakehouse" / "fraud")
        champion = ModelRegistry(lakehouse).alias(MODEL, CHAMPION)
        for d in (d1, d2, d3):
            sim.deliver(world / "landing" / "fraud", d)
        auto = Automation()
        daily = _daily(auto.tick_and_run("landing_sensor"))
        assert sorted(daily) == [d1.isoformat(), d2.isoformat(), d3.isoformat()]  # one run per day
        for held, rule in (
            (d1, "batch_median_amount_eur_plausible"),
            (d2, "required_field_present"),
        ):
            run = daily[held.isoformat()]
            assert not run.success
            check = run.checks()["fraud/silver/transactions:contract"]
            assert (
                not check.passed
                and "circuit breaker" in check.description
                and rule in check.description
            )
            assert "fraud__scoring__predictions" not in run.executed_steps()
        assert daily[d3.isoformat()].success
        # quarantine holds every landed row of the held days; silver has none of them
        silver = _dates(lakehouse, "silver.transactions")
        quarantined = _dates(lakehouse, "quarantine.transactions")
        assert d1 not in silver and d2 not in silver
        for d in (d1, d2):
            assert quarantined[d] == len(sim.transactions(d))
        # the champion kept scoring the good day, and only it
        scored = _dates(lakehouse, "scoring.predictions", role="champion")
        assert scored.get(d3) == silver[d3] and d1 not in scored and d2 not in scored
        assert ModelRegistry(lakehouse).alias(MODEL, CHAMPION) == champion
        # no retrain: the drift sensor has nothing to act on (bad data is not drift)
        drift = auto.tick("drift_sensor")
        assert not drift.run_requests, [r.tags for r in drift.run_requests]
        assert [v.version for v in ModelRegistry(lakehouse).versions(MODEL)] == [champion]


def test_covariate_drift_fires_the_drift_sensor_and_a_gated_retrain(
    pipeline, tmp_path: Path
) -> None:
    world = copy_world(pipeline, tmp_path / "world")
    d1 = next_day(pipeline, 1)
    sim = simulator(scenarios=(CovariateDrift(d1, amount_factor=2.5, ecom_share_shift=0.3),))
    with slipway_env(world):
        lakehouse = Lakehouse(world / "lakehouse" / "fraud")
        registry = ModelRegistry(lakehouse)
        champion = registry.alias(MODEL, CHAMPION)
        auto = Automation()
        assert not auto.tick("drift_sensor").run_requests  # quiet before the drift
        sim.deliver(world / "landing" / "fraud", d1)
        daily = _daily(auto.tick_and_run("landing_sensor"))
        assert daily[d1.isoformat()].success, daily[d1.isoformat()].failures()
        retrains = auto.tick_and_run("drift_sensor")
        assert len(retrains) == 1, "the first drifted day must trigger exactly one retrain"
        tags = retrains[0].request.tags
        assert tags["slipway/trigger"] == "drift" and d1.isoformat() in tags["slipway/reason"]
        assert tags["slipway/report"].endswith(".html") and Path(tags["slipway/report"]).exists()
        challenger = max(v.version for v in registry.versions(MODEL))
        assert challenger > champion
        (decision,) = registry.decisions(MODEL, challenger)
        assert decision["reason"] and decision["champion_version"] == champion
        gate = retrains[0].checks()["fraud/training/model_candidate:promotion_gate"]
        assert gate.passed == decision["passed"] and gate.description == decision["reason"]
        expected = challenger if decision["passed"] else champion
        assert registry.alias(MODEL, CHAMPION) == expected
        # the same evidence never retrains twice
        assert not auto.tick("drift_sensor").run_requests


def _table(
    lakehouse: Lakehouse, name: str, days: tuple[dt.date, dt.date], drop: list[str], key: list[str]
) -> list[dict]:
    table = lakehouse.read(name, dates=days)
    table = table.drop_columns([c for c in drop if c in table.column_names])
    return sorted(table.to_pylist(), key=lambda r: tuple(str(r[k]) for k in key))


def test_late_files_rebuild_the_day_and_converge_with_on_time_delivery(
    pipeline, tmp_path: Path
) -> None:
    d1, d2 = next_day(pipeline, 1), next_day(pipeline, 2)
    sim = simulator(parts_per_day=2)
    late = copy_world(pipeline, tmp_path / "late")
    on_time = copy_world(pipeline, tmp_path / "on_time")
    with slipway_env(late):
        sim.write_reference(
            late / "landing" / "fraud", as_of=d1
        ) if d1 in sim.reference_dates() else None
        sim.write_day(late / "landing" / "fraud", d1, parts=[1])
        sim.write_chargebacks(late / "landing" / "fraud", d1)
        sim.deliver(late / "landing" / "fraud", d2)
        auto = Automation()
        assert all(r.success for r in auto.tick_and_run("landing_sensor"))
        partial = _dates(Lakehouse(late / "lakehouse" / "fraud"), "silver.transactions")[d1]
        sim.write_day(
            late / "landing" / "fraud", d1, parts=[2]
        )  # the missing part arrives two days late
        rebuild = auto.tick_and_run("landing_sensor")
        daily = _daily(rebuild)
        assert list(daily) == [d1.isoformat()]
        run = daily[d1.isoformat()]
        assert run.success and run.request.tags["slipway/trigger"] == "late_landing"
        assert run.request.tags["dagster/asset_partition_range_end"] == d2.isoformat()
        assert "part-002" in run.request.tags["slipway/reason"]
        assert not auto.tick("landing_sensor").run_requests  # converged: nothing new
    with slipway_env(on_time):
        for d in (d1, d2):
            sim.deliver(on_time / "landing" / "fraud", d)
        assert all(r.success for r in Automation().tick_and_run("landing_sensor"))
    a, b = Lakehouse(late / "lakehouse" / "fraud"), Lakehouse(on_time / "lakehouse" / "fraud")
    assert _dates(a, "silver.transactions")[d1] > partial
    lineage = ["ingest_run_id", "ingested_at"]
    comparisons = {
        "silver.transactions": (lineage, ["transaction_id"]),
        "gold.enriched_transactions": (lineage, ["transaction_id"]),
        "features.customer_behaviour": ([], ["transaction_id"]),
        "features.merchant_risk": ([], ["merchant_id", "date"]),
        "scoring.predictions": (
            ["run_id", "scored_at", "inputs_version", "source_versions"],
            ["prediction_id"],
        ),
    }
    for name, (drop, key) in comparisons.items():
        ours, theirs = _table(a, name, (d1, d2), drop, key), _table(b, name, (d1, d2), drop, key)
        assert ours and ours == theirs, name

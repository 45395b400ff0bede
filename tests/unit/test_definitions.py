"""The code location loads, and its graph is pinned: an accidental change shows up in review.

The snapshot covers every deployed use case (``deployed_usecases()``: all registered ones unless
``SLIPWAY_USECASES`` narrows them), side by side in one code location. After an intended change
(or after registering a use case) rewrite it with

    SLIPWAY_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_definitions.py

and commit the diff of tests/snapshots/asset_graph.json with the change.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg

from orchestration.definitions import defs
from slipway.usecases import deployed_usecases

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "asset_graph.json"


def _graph() -> dict[str, object]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "partitioned": node.partitions_def is not None,
            "automation": type(node.automation_condition).__name__
            if node.automation_condition
            else None,
            "checks": sorted(c.name for c in node.check_keys),
        }
    return {
        "assets": assets,
        "usecases": sorted(u.name for u in deployed_usecases()),
        "jobs": sorted(j.name for j in defs.jobs),
        "sensors": sorted(s.name for s in defs.sensors),
        "schedules": sorted(s.name for s in defs.schedules),
    }


def test_the_code_location_loads_and_validates() -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    for usecase in deployed_usecases():
        keys = [k for k in defs.resolve_all_asset_keys() if k.path[0] == usecase.name]
        groups = {graph.get(k).group_name for k in keys}
        capabilities = {"ingestion", "features", "feast", "training", "registry", "scoring"}
        capabilities |= {"monitoring"} | ({"gold"} if usecase.dbt else set())
        assert {f"{usecase.name}_{c}" for c in capabilities} <= groups
    # Every asset, group, job, sensor and schedule belongs to exactly one use case.
    names = {u.name for u in deployed_usecases()}
    assert all(k.path[0] in names for k in defs.resolve_all_asset_keys())
    for item in [*defs.jobs, *defs.sensors, *defs.schedules]:
        assert item.name.split("_", 1)[0] in names, item.name


def test_the_asset_graph_matches_its_snapshot() -> None:
    current = _graph()
    if os.environ.get("SLIPWAY_UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_blocking_gates_guard_what_follows_them() -> None:
    graph = defs.resolve_asset_graph()
    specs = {key: graph.get_check_spec(key) for key in graph.asset_check_keys}
    blocking = {k.asset_key.to_user_string() + ":" + k.name for k, s in specs.items() if s.blocking}
    assert {
        "fraud/silver/transactions:contract",
        "fraud/silver/chargebacks:contract",
        "fraud/features/customer_behaviour:contract",
        "fraud/features/merchant_risk:contract",
        "fraud/training/model_candidate:promotion_gate",
    } <= blocking


def test_the_daily_schedule_waits_for_late_upstreams_and_runs_otherwise(tmp_path: Path) -> None:
    from orchestration.resources import LandingResource

    schedule = defs.get_schedule_def("fraud_daily_ingestion")
    when = dt.datetime(2026, 8, 3, 3, 0, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=when,
            resources={"landing": LandingResource(root=str(tmp_path))},
            repository_def=defs.get_repository_def(),
        )
        result = schedule.evaluate_tick(context)
        assert not result.run_requests and "upstream late" in (result.skip_message or "")
        folder = tmp_path / "fraud" / "transactions" / "2026-08-02"
        folder.mkdir(parents=True)
        (folder / "_manifest.json").write_text('{"files": []}')
        result = schedule.evaluate_tick(context)
        assert [r.partition_key for r in result.run_requests] == ["2026-08-02"]

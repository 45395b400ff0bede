"""Use cases side by side: a toy third declaration, loaded by module path, beside fraud.

``tests.support.parcels`` names nothing the way fraud or flights do (scans, depots, a rule label
with exclusions, no dbt models). Its definitions load in the same code location as fraud's
without a shared key, group, job, sensor, schedule or pool, and its loop runs for real through
Dagster (ingest -> silver -> features -> Feast -> training set) in its own scoped storage.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg
import pytest

from tests.support.parcels import LATE_MINUTES, PARCELS
from tests.support.pipeline import slipway_env

TOY = "tests.support.parcels:PARCELS"


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory: pytest.TempPathFactory):
    from orchestration.definitions import build_definitions

    warnings.filterwarnings("ignore")
    data = tmp_path_factory.mktemp("side_by_side")
    with slipway_env(data, {"SLIPWAY_USECASES": f"fraud,{TOY}"}):
        yield data, build_definitions()


def test_the_toy_loads_beside_fraud_with_nothing_shared(side_by_side) -> None:
    _, defs = side_by_side
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    by_usecase = {name: {k for k in keys if k.path[0] == name} for name in ("fraud", "parcels")}
    assert all(by_usecase.values()) and set().union(*by_usecase.values()) == keys
    assert dg.AssetKey(["parcels", "silver", "scans"]) in by_usecase["parcels"]
    assert dg.AssetKey(["parcels", "training", "training_set"]) in by_usecase["parcels"]
    # its keys mirror fraud's shape, but no parcels asset depends on a fraud one
    for key in by_usecase["parcels"]:
        assert all(p.path[0] == "parcels" for p in graph.get(key).parent_keys), key
    groups = {graph.get(k).group_name for k in by_usecase["parcels"]}
    assert groups == {
        f"parcels_{g}"
        for g in ("ingestion", "features", "feast", "training", "registry", "scoring", "monitoring")
    }  # no dbt models: no gold group; not served online: no live group
    names = [j.name for j in defs.jobs] + [s.name for s in defs.sensors]
    names += [s.name for s in defs.schedules]
    assert len(names) == len(set(names))
    assert {"parcels_end_to_end", "parcels_landing_sensor", "parcels_daily_ingestion"} <= set(names)
    # a reference feeds a feature table whole; the stream feeds it by its lookback window
    deps = {
        d.asset_key: d
        for d in graph.get(dg.AssetKey(["parcels", "features", "depot_load"]))
        .assets_def.specs_by_key[dg.AssetKey(["parcels", "features", "depot_load"])]
        .deps
    }
    assert deps[dg.AssetKey(["parcels", "silver", "depots"])].partition_mapping is None
    window = deps[dg.AssetKey(["parcels", "silver", "scans"])].partition_mapping
    assert isinstance(window, dg.TimeWindowPartitionMapping) and window.start_offset == -3


def test_the_toy_loop_runs_ingest_to_training_set_in_its_own_storage(side_by_side) -> None:
    from slipway.lakehouse import Lakehouse
    from slipway.settings import load_settings
    from slipway.training.dataset import training_table

    data, defs = side_by_side
    with slipway_env(data, {"SLIPWAY_USECASES": f"fraud,{TOY}"}):
        scoped = load_settings("parcels")
        days = PARCELS.sample_data.write(scoped.landing_root, "2026-03-01", 5, per_day=150)
        graph = defs.resolve_asset_graph()
        wanted = dg.AssetSelection.groups("parcels_ingestion", "parcels_features") | (
            dg.AssetSelection.assets(
                dg.AssetKey(["parcels", "feast", "registry"]),
                dg.AssetKey(["parcels", "training", "training_set"]),
            )
        )
        result = defs.get_job_def("parcels_end_to_end").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=sorted(wanted.resolve(graph)),
            tags={
                "dagster/asset_partition_range_start": days[0].isoformat(),
                "dagster/asset_partition_range_end": days[-1].isoformat(),
            },
            raise_on_error=False,
        )
        assert result.success, [
            e.event_specific_data.error.message.splitlines()[0]
            for e in result.all_events
            if e.event_type_value == "STEP_FAILURE"
        ]
        checks = result.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks)

        assert Path(scoped.lakehouse_root) == data / "lakehouse" / "parcels"
        assert not (data / "lakehouse" / "fraud").exists()  # nothing of fraud's was touched
        lakehouse = Lakehouse(scoped.lakehouse_root)
        scans = lakehouse.read("silver.scans").to_pandas()
        training = lakehouse.read(training_table(PARCELS)).to_pandas()

    # matured (the last day is not), lost parcels excluded, the rule's label on every other scan
    matured = scans[scans["date"] < days[-1]]
    labelled = matured[matured["status"] != "lost"]
    assert (matured["status"] == "lost").any()
    assert set(training["scan_id"]) == set(labelled["scan_id"])
    expected = (labelled.set_index("scan_id")["delay_minutes"] > LATE_MINUTES).astype(int)
    got = training.set_index("scan_id")["is_late"]
    assert (got.loc[expected.index] == expected).all() and 0 < got.sum() < len(got)
    # features came through Feast point in time: the first day has no earlier scans
    first = training[training["date"] == days[0]]
    later = training[training["date"] > days[0]]
    assert (first["depot_scans_3d"].fillna(0) == 0).all()
    assert (later["depot_scans_3d"] > 0).all() and later["region"].notna().all()

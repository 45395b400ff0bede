"""A Feast materialization killed half-way: the online store says so, and a re-run recovers.

On a copy of the session's built world, a process materializes the online store and is killed
(SIGKILL) while writing the second feature view: the first view holds the new load, the second
is left `MATERIALIZING` in the registry, which makes Feast refuse to serve it. The consistency
report names the interrupted view instead of letting a mix pass for one load; re-running the
online-store materialization recovers without anyone resetting anything, and afterwards every
view holds the same load and serves again.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.pipeline import PipelineData, copy_world, slipway_env

ROOT = Path(__file__).resolve().parents[2]

KILLED = textwrap.dedent(
    """
    import os, signal, warnings
    warnings.filterwarnings("ignore")
    from feast.infra.passthrough_provider import PassthroughProvider
    real = PassthroughProvider.materialize_single_feature_view
    calls = []

    def dying(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # half-way: the second view
        return real(self, *args, **kwargs)

    PassthroughProvider.materialize_single_feature_view = dying
    from slipway.featurestore.online import materialize_online
    from slipway.featurestore.store import open_store
    from slipway.lakehouse import Lakehouse
    from slipway.settings import load_settings
    import datetime as dt
    store = open_store()
    materialize_online(store, Lakehouse(load_settings("fraud").lakehouse_root), dt.date(2026, 8, 10))
    print("NOT KILLED")
    """
)


def _online_read(store, view: str, entity: dict) -> dict:
    features = [f"{view}:{f.name}" for f in store.get_feature_view(view).features[:1]]
    return store.get_online_features(features=features, entity_rows=[entity]).to_dict()


def test_a_killed_materialization_is_reported_and_a_rerun_recovers(
    pipeline: PipelineData, tmp_path: Path
) -> None:
    from slipway.featurestore.online import materialize_online, online_consistency
    from slipway.featurestore.store import open_store
    from slipway.lakehouse import Lakehouse

    world = copy_world(pipeline.data_dir, tmp_path / "world", ignore=("landing",))
    with slipway_env(world):
        store = open_store()
        assert online_consistency(store).consistent, online_consistency(store)
        proc = subprocess.run(
            [sys.executable, "-c", KILLED], capture_output=True, text=True, timeout=600, cwd=ROOT
        )
        assert proc.returncode == -9, proc.stderr[-2000:]

        store = open_store()
        lakehouse = Lakehouse(world / "lakehouse" / "fraud")
        report = online_consistency(store, lakehouse)
        assert not report.consistent
        assert len(report.interrupted) == 1, report
        assert report.interrupted[0] in report.describe()
        assert report.unfinished_load and "never finished" in report.describe()

        # the re-run, nothing reset by hand
        rerun = materialize_online(store, lakehouse, pipeline.start)
        assert rerun.recovered == report.interrupted
        store = open_store()
        after = online_consistency(store, lakehouse)
        assert after.consistent and not after.interrupted, after.describe()
        assert len(set(after.ends.values())) == 1, after.ends
        customer = lakehouse.read("features.customer_behaviour", columns=["customer_id"])[
            "customer_id"
        ][0].as_py()
        for view in after.ends:
            fv = store.get_feature_view(view)
            keys = [c.name for c in fv.entity_columns]
            if keys == ["customer_id"]:
                values = _online_read(store, view, {"customer_id": customer})
                assert values["customer_id"] == [customer]

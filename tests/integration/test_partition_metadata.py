"""A run over a partition range tells the truth per partition, and its data versions are Delta's.

The small world is copied and its last two days are run again through the daily job (landing to
drift) in one run (a single-run backfill, as ``make run`` and the UI's backfills do). Dagster makes one
materialization per day of the range; each day's event must carry that day's figures (the rows
the commit holds for that date, counted here from the table itself), never the range's total,
which is labelled ``range_rows_written``. Each asset that writes one Delta table has that
table's version as its data version, so Dagster's staleness view follows the data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from slipway.lakehouse import Lakehouse
from slipway.usecases.fraud import FRAUD
from tests.support.pipeline import PipelineData, copy_world, run_graph, slipway_env

DATA_VERSION_TAG = "dagster/data_version"


@dataclass(frozen=True)
class Rerun:
    lakehouse: Lakehouse
    days: list[dt.date]
    results: list[Any]

    def events(self, *path: str) -> dict[str, Any]:
        """partition key -> materialization of ``fraud/<path>`` in the runs."""
        found = {}
        for result in self.results:
            for event in result.get_asset_materialization_events():
                m = event.materialization
                if list(m.asset_key.path) == ["fraud", *path]:
                    found[m.partition] = m
        return found


def _failures(result: Any) -> list[str]:
    return [
        f"{e.step_key}: {e.event_specific_data.error.message.splitlines()[0]}"
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]


@pytest.fixture(scope="module")
def rerun(pipeline: PipelineData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rerun]:
    """The daily job (landing to drift) over the world's last two days, then the training set.

    The daily job, not end_to_end: a retrain on unchanged data fails its promotion gate (as it
    should), and the gate's failure would skip scoring and monitoring.
    """
    import dagster as dg

    from orchestration.definitions import build_definitions

    data_dir = tmp_path_factory.mktemp("partition_metadata") / "data"
    copy_world(pipeline.data_dir, data_dir)
    days = [pipeline.end - dt.timedelta(days=1), pipeline.end]
    with slipway_env(data_dir):
        daily = run_graph(days[0], days[1], job="daily_ingest_and_score")
        assert daily.success, _failures(daily)
        training = (
            build_definitions()
            .get_job_def("fraud_retrain")
            .execute_in_process(
                instance=dg.DagsterInstance.ephemeral(),
                asset_selection=[dg.AssetKey(["fraud", "training", "training_set"])],
                raise_on_error=False,
            )
        )
        assert training.success, _failures(training)
        yield Rerun(Lakehouse(data_dir / "lakehouse" / "fraud"), days, [daily, training])


def _rows_on(uri: str, version: int, day: dt.date, column: str = "date") -> int:
    """Rows of ``day`` in the table at ``version``, counted straight from Delta."""
    dates = DeltaTable(uri, version=version).to_pyarrow_table(columns=[column])[column]
    if str(dates.type).startswith("timestamp"):
        dates = pc.cast(dates, "date32")
    return pc.sum(pc.equal(dates, day)).as_py() or 0


PARTITIONED_WRITES = [
    ("bronze", "transactions"),
    ("silver", "transactions"),
    ("quarantine", "transactions"),
    ("gold", "enriched_transactions"),
    ("scoring", "predictions"),
    ("monitoring", "drift"),
    *[("features", t.name) for t in FRAUD.feature_tables if t.partitioned],
]


@pytest.mark.parametrize("path", PARTITIONED_WRITES, ids=lambda p: "/".join(p))
def test_each_partition_carries_its_own_rows(rerun: Rerun, path: tuple[str, str]) -> None:
    events = rerun.events(*path)
    assert set(events) == {d.isoformat() for d in rerun.days}
    versions = {m.metadata["table_version"].value for m in events.values()}
    assert len(versions) == 1, "one commit for the whole range"
    (version,) = versions
    per_day = []
    for key, m in events.items():
        meta = {k: v.value for k, v in m.metadata.items()}
        uri = meta["table_uri"]
        expected = _rows_on(uri, version, dt.date.fromisoformat(key))
        assert meta["rows_written"] == meta["dagster/row_count"] == expected, key
        per_day.append(expected)
        # the range's figure is labelled as the range's, with its bounds
        assert meta["range_start"] == rerun.days[0].isoformat()
        assert meta["range_end"] == rerun.days[1].isoformat()
        assert meta["range_rows_written"] >= expected
        # the data version is the Delta version the step committed
        assert m.tags[DATA_VERSION_TAG] == str(version)
    assert sum(per_day) == meta["range_rows_written"]


def test_days_of_different_sizes_show_different_counts(rerun: Rerun) -> None:
    """The simulator lands a different number of lines each day: a range total copied onto
    both days would show the same number twice."""
    for layer in ("bronze", "silver"):
        events = rerun.events(layer, "transactions")
        counts = [events[d.isoformat()].metadata["rows_written"].value for d in rerun.days]
        assert counts[0] != counts[1], (layer, counts)
        assert all(
            events[d.isoformat()].metadata["range_rows_written"].value == sum(counts)
            for d in rerun.days
        )


def test_silver_day_figures_are_that_days_verdict(rerun: Rerun) -> None:
    audit = {
        r["date"]: r
        for r in rerun.lakehouse.read("audit.transactions", dates=tuple(rerun.days)).to_pylist()
    }
    for key, m in rerun.events("silver", "transactions").items():
        day = audit[dt.date.fromisoformat(key)]
        for figure in ("rows_landed", "rows_silver", "rows_quarantined", "duplicates_dropped"):
            assert m.metadata[figure].value == day[figure], (key, figure)


def test_unpartitioned_writes_have_their_delta_version_as_data_version(rerun: Rerun) -> None:
    (event,) = rerun.events("training", "training_set").values()
    version = event.metadata["table_version"].value
    assert event.tags[DATA_VERSION_TAG] == str(version)
    uri = event.metadata["table_uri"].value
    assert DeltaTable(uri).version() == version
    assert Path(uri).exists()

"""Monitoring on the small real world: the Dagster assets materialise a range of scored days into
the metric tables and HTML reports; performance covers matured days only; a strongly shifted day
raises a drift alert once, and a day whose silver contract failed raises none.

The session ``pipeline`` world is read-only, so everything here runs on a copy of it.
"""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from slipway.ingest.contract import AUDIT_SCHEMA
from slipway.lakehouse import Lakehouse
from slipway.monitoring.alerts import pending_alerts, scan_alerts, training_window_end
from slipway.monitoring.performance import latest_label_day
from slipway.monitoring.reference import load_reference, monitored_columns, reference_path
from slipway.monitoring.tables import (
    DRIFT_METRICS,
    DRIFT_SHARE,
    EVALUATED,
    PERFORMANCE,
    PREDICTION_DRIFT,
    TOO_FEW_POSITIVES,
    VALUE_DRIFT,
)
from slipway.registry.store import CHAMPION, ModelRegistry
from slipway.scoring.batch import INPUTS, PREDICTIONS
from slipway.usecases.fraud import FRAUD
from tests.support.pipeline import PipelineData, copy_world, slipway_env

DAYS = 10  # the last DAYS scored days: some with matured labels, the latest ones without
AMOUNT_FEATURES = (
    "amount_eur",
    "amount_sum_1h",
    "amount_sum_24h",
    "amount_sum_7d",
    "amount_avg_30d",
    "amount_max_30d",
    "amount_to_avg_30d",  # today's amount tripled against an unchanged habit
)


@dataclass
class World:
    data_dir: Path
    lakehouse: Lakehouse
    start: dt.date
    end: dt.date
    result: object
    champion: int


def materialize(data_dir: Path, start: dt.date, end: dt.date):
    import dagster as dg

    from assets.monitoring.assets import monitoring_definitions
    from orchestration.resources import LakehouseResource

    warnings.filterwarnings("ignore")
    assets, checks = monitoring_definitions(FRAUD)
    return dg.materialize(
        [*assets, *checks],
        resources={"lakehouse": LakehouseResource(root=str(data_dir / "lakehouse"))},
        tags={
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat(),
        },
        raise_on_error=False,
    )


def failures(result) -> str:
    return "; ".join(
        f"{e.step_key}: {e.event_specific_data.error.message.splitlines()[0]}"
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    )


@pytest.fixture(scope="module")
def world(pipeline: PipelineData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("monitoring") / "data"
    copy_world(pipeline.data_dir, data_dir, ignore=("landing",))
    # start monitoring from scratch (the end_to_end job may already have run it on the world)
    for leftover in ("lakehouse/fraud/monitoring", "lakehouse/fraud/reports/monitoring"):
        shutil.rmtree(data_dir / leftover, ignore_errors=True)
    start = pipeline.end - dt.timedelta(days=DAYS - 1)
    with slipway_env(data_dir):
        result = materialize(data_dir, start, pipeline.end)
        assert result.success, failures(result)
        lakehouse = Lakehouse(data_dir / "lakehouse" / "fraud")
        champion = ModelRegistry(lakehouse).alias(FRAUD.model.name, CHAMPION)
        yield World(data_dir, lakehouse, start, pipeline.end, result, champion)


def materializations(result, name: str) -> list:
    return [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key.path == ["fraud", "monitoring", name]
    ]


def test_drift_rows_reports_and_reference(world: World) -> None:
    lh, spec = world.lakehouse, FRAUD.model
    rows = lh.read_pandas(DRIFT_METRICS)
    features = monitored_columns(FRAUD).all
    assert sorted(rows["date"].unique()) == [
        world.start + dt.timedelta(days=i) for i in range(DAYS)
    ]
    for day, group in rows.groupby("date"):
        assert sorted(group.loc[group["metric"] == VALUE_DRIFT, "feature"]) == sorted(features)
        assert (group["metric"] == DRIFT_SHARE).sum() == 1
        assert (group["metric"] == PREDICTION_DRIFT).sum() == 1
        assert set(group["model_version"]) == {world.champion}
        day_rows = lh.read(INPUTS, dates=(day, day), columns=["transaction_id"]).num_rows
        assert set(group["rows"]) == {day_rows}
        assert set(group["sample_size"]) == {min(day_rows, FRAUD.monitoring.sample_size)}
        share = group[group["metric"] == DRIFT_SHARE].iloc[0]
        value = group[group["metric"] == VALUE_DRIFT]
        evaluated = value[value["stattest"].notna() | value["drifted"]]
        assert share["statistic"] == pytest.approx(value["drifted"].sum() / len(evaluated))
    tested = rows[rows["stattest"].notna() & (rows["metric"] == VALUE_DRIFT)]
    # every column is tested with the use case's declared test and threshold
    m = FRAUD.monitoring
    assert set(tested.loc[tested["feature"] == "channel", "threshold"]) == {m.categorical_threshold}
    assert set(tested.loc[tested["feature"] == "amount_eur", "threshold"]) == {m.numeric_threshold}
    assert set(tested.loc[tested["feature"] == "channel", "stattest"]) == {m.categorical_stattest}
    assert set(tested.loc[tested["feature"] == "amount_eur", "stattest"]) == {m.numeric_stattest}
    # the reference: stored once for the champion, the last reference_days of its training
    # window (not its validation window), recorded on every row
    record = ModelRegistry(lh).get(spec.name, world.champion)
    assert lh.file_exists(reference_path(spec.name, world.champion))
    profile = load_reference(lh, FRAUD, world.champion)
    ts = lh.read_pandas(
        record.training_set["table"],
        version=int(record.training_set["version"]),
        columns=["event_timestamp"],
    )
    days = sorted(pd.to_datetime(ts["event_timestamp"], utc=True).dt.date.unique())
    chosen = days[-m.reference_days :] if m.reference_days else days
    in_window = pd.to_datetime(ts["event_timestamp"], utc=True).dt.date.isin(set(chosen))
    assert profile.rows_available == int(in_window.sum())
    assert set(rows["reference_size"]) == {min(int(in_window.sum()), m.reference_size)}
    assert set(rows["reference_start"]) == {chosen[0]} and set(rows["reference_end"]) == {
        chosen[-1]
    }
    assert set(rows["reference_table"]) == {record.training_set["table"]}
    assert set(rows["reference_version"]) == {int(record.training_set["version"])}
    # one HTML report per day, a real Evidently page naming the features
    for uri in rows["report_uri"].unique():
        html = Path(uri).read_bytes()
        assert html.lstrip().lower().startswith(b"<!doctype html") and len(html) > 500_000
        assert b"amount_eur" in html and b"merchant_category" in html


def test_asset_metadata_and_drift_check(world: World) -> None:
    events = materializations(world.result, "drift")
    assert len(events) == DAYS  # one event per partition of the range
    metrics = world.lakehouse.read_pandas(DRIFT_METRICS)
    for event in events:  # each day's event counts that day's metric rows; the range's is labelled
        day_rows = int((metrics["date"].astype(str) == event.partition).sum())
        assert event.metadata["dagster/row_count"].value == day_rows > 0
        assert event.metadata["range_rows_written"].value == len(metrics)
        assert event.tags["dagster/data_version"] == str(world.lakehouse.version(DRIFT_METRICS))
    meta = events[-1].metadata
    assert meta["days_monitored"].value == DAYS
    assert Path(meta["report_path"].value).exists()
    assert meta["report_url"].value.startswith("file://")
    assert meta["drift_share_chart"].value.startswith(
        "![drift share per day](data:image/png;base64,"
    )
    assert Path(meta["drift_share_png"].value).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert meta["read_versions"].value[PREDICTIONS] == world.lakehouse.version(PREDICTIONS)
    (check,) = world.result.get_asset_check_evaluations()
    assert check.check_name == "no_drift" and check.severity.value == "WARN"
    drifted = world.lakehouse.read_pandas(DRIFT_METRICS)
    # days inside the champion's training data are its reference: the check does not judge them
    trained_through = training_window_end(world.lakehouse, FRAUD.model.name)
    assert trained_through is not None
    assert str(trained_through) in check.description or drifted["date"].min() > trained_through
    drifted = drifted[drifted["date"] > trained_through]
    day_drift = drifted[
        drifted["metric"].isin([DRIFT_SHARE, PREDICTION_DRIFT]) & drifted["drifted"]
    ]
    assert check.passed == day_drift.empty
    named = {f for fs in check.metadata["drifted_features"].value.values() for f in fs}
    value = drifted[(drifted["metric"] == VALUE_DRIFT) & drifted["drifted"]]
    assert named == set(value["feature"])


def test_performance_covers_matured_days_only(world: World) -> None:
    lh = world.lakehouse
    perf = lh.read_pandas(PERFORMANCE)
    latest = latest_label_day(lh, FRAUD, lh.version(f"silver.{FRAUD.label.stream}"))
    matured_until = latest - dt.timedelta(days=FRAUD.label.maturity_days)
    expected = [
        d for d in (world.start + dt.timedelta(days=i) for i in range(DAYS)) if d <= matured_until
    ]
    assert expected, "the range must include matured days for this test to mean anything"
    assert len(expected) < DAYS, "and days whose labels have not matured"
    assert sorted(perf["date"]) == expected
    record = ModelRegistry(lh).get(FRAUD.model.name, world.champion)
    baseline = load_reference(lh, FRAUD, world.champion).baseline
    # the pooled figure recomputed from the validation predictions is the registry's
    assert perf["reference_pooled_pr_auc"].iloc[0] == pytest.approx(record.metrics["pr_auc"])
    # like with like: a day is set against a median validation day, not the pooled figure
    assert (perf["reference_pr_auc"] == baseline.median_daily_pr_auc).all()
    assert (perf["operating_threshold"] == baseline.threshold).all()
    m = FRAUD.monitoring
    for row in perf.itertuples():
        assert row.labels_as_of == row.date + dt.timedelta(days=FRAUD.label.maturity_days)
        if row.positives < m.min_positives_for_performance:
            assert row.status == TOO_FEW_POSITIVES and not row.degraded and pd.isna(row.pr_auc)
        else:
            assert row.status == EVALUATED and 0 < row.pr_auc <= 1
            assert row.pr_auc_drop == pytest.approx(row.reference_pr_auc - row.pr_auc)
            assert row.recall_at_threshold == pytest.approx(row.caught / row.positives)
            assert row.degraded == (
                row.p_value < m.performance_alpha
                and row.reference_recall_at_threshold - row.recall_at_threshold >= m.min_recall_drop
            )
    event = materializations(world.result, "performance")[-1]
    assert event.metadata["skipped_days"].value == [
        str(d)
        for d in (world.start + dt.timedelta(days=i) for i in range(DAYS))
        if d > matured_until
    ]


def test_rerunning_a_day_is_idempotent(world: World) -> None:
    lh = world.lakehouse
    day = world.end
    before = lh.read_pandas(DRIFT_METRICS)
    version = lh.version(DRIFT_METRICS)
    with slipway_env(world.data_dir):
        result = materialize(world.data_dir, day, day)
    assert result.success, failures(result)
    after = lh.read_pandas(DRIFT_METRICS)
    assert lh.version(DRIFT_METRICS) == version + 1
    assert len(after) == len(before)
    assert (after.groupby("date").size() == before.groupby("date").size()).all()
    merged = before[before["date"] == day].merge(
        after[after["date"] == day], on=["feature", "metric"]
    )
    assert (merged["statistic_x"].fillna(-1) == merged["statistic_y"].fillna(-1)).all()
    assert (merged["run_id_x"] != merged["run_id_y"]).all()


def shifted_day(lh: Lakehouse, source: dt.date, day: dt.date) -> None:
    """Write a synthetic scored ``day``: ``source``'s inputs with every amount x3."""
    inputs = lh.read_pandas(INPUTS, dates=(source, source))
    preds = lh.read_pandas(PREDICTIONS, dates=(source, source))
    tag = f"_{day:%Y%m%d}"
    for frame in (inputs, preds):
        frame["date"] = day
        frame["transaction_id"] = frame["transaction_id"] + tag
    for col in AMOUNT_FEATURES:
        inputs[col] = inputs[col] * 3
    preds["prediction_id"] = preds["prediction_id"] + tag
    lh.write(INPUTS, pa.Table.from_pandas(inputs, preserve_index=False), replace_dates=(day, day))
    lh.write(
        PREDICTIONS,
        pa.Table.from_pandas(preds, preserve_index=False),
        replace_dates=(day, day),
    )


def test_shifted_day_alerts_once_and_a_failed_contract_day_never(world: World) -> None:
    lh = world.lakehouse
    cursor = scan_alerts(lh, FRAUD).cursor
    shifted, broken = world.end + dt.timedelta(days=1), world.end + dt.timedelta(days=2)
    shifted_day(lh, world.end, shifted)
    shifted_day(lh, world.end, broken)
    audit = {
        "date": broken,
        "stream": "transactions",
        "run_id": "test",
        "rows_landed": 1000,
        "rows_silver": 0,
        "rows_quarantined": 1000,
        "duplicates_dropped": 0,
        "bad_share": 1.0,
        "breaker_tripped": True,
        "breaker_reason": "bad share 1.00 > 0.05",
        "top_rules": "{}",
        "processed_at": dt.datetime.now(dt.UTC),
    }
    lh.write(
        "audit.transactions",
        pa.Table.from_pylist([audit], schema=AUDIT_SCHEMA),
        replace_dates=(broken, broken),
    )
    with slipway_env(world.data_dir):
        result = materialize(world.data_dir, shifted, broken)
    assert result.success, failures(result)

    alerts = pending_alerts(lh, FRAUD, after=cursor)
    metrics = lh.read_pandas("monitoring.drift_metrics", dates=(shifted, shifted))
    assert [(a.kind, a.date) for a in alerts] == [("drift", shifted)], (
        scan_alerts(lh, FRAUD, after=cursor).suppressed,
        metrics[["feature", "statistic", "drifted"]].to_string(),
    )
    (alert,) = alerts
    assert alert.evidence_key == f"drift:{shifted}:v{world.champion}"
    assert alert.model_version == world.champion and alert.details["dataset_drift"]
    assert "amount_eur" in alert.details["drifted_features"] and "amount_eur" in alert.reason
    assert Path(alert.report_uri).exists()
    scan = scan_alerts(lh, FRAUD, after=cursor)
    assert [(a.date, why) for a, why in scan.suppressed] == [
        (broken, "transactions contract failed: bad share 1.00 > 0.05")
    ]
    # the cursor prevents repeats: nothing is pending after the alert, nor after the scan
    assert pending_alerts(lh, FRAUD, after=alert.cursor) == []
    assert scan_alerts(lh, FRAUD, after=scan.cursor).alerts == []
    assert alert.cursor > cursor if cursor else True
    # without a cursor the whole history comes back, in cursor order, the shifted day included
    everything = pending_alerts(lh, FRAUD)
    assert [a.cursor for a in everything] == sorted(a.cursor for a in everything)
    assert shifted in {a.date for a in everything} and broken not in {a.date for a in everything}


def test_calibration_proposes_thresholds_from_the_reference_and_the_history(world: World) -> None:
    from slipway.monitoring.calibrate import calibrate

    m = FRAUD.monitoring
    result = calibrate(world.lakehouse, FRAUD, source="reference")
    proposals = {p.feature: p for p in result.proposals}
    assert set(proposals) == {*monitored_columns(FRAUD).all, "score"}
    assert proposals["amount_eur"].stattest == m.numeric_stattest
    assert proposals["channel"].stattest == m.categorical_stattest
    assert proposals["score"].stattest == m.prediction_stattest
    for p in proposals.values():  # quiet on the period it was measured on
        assert p.threshold is not None and p.days_over_proposed == 0, p
    assert result.days is not None and "FeatureDrift(" in result.as_python()
    # the history: the monitored days already in monitoring.drift_metrics
    history = calibrate(
        world.lakehouse,
        FRAUD,
        source="history",
        start=world.start,
        end=world.end,
        exclude=[world.end],
    )
    days = {p.feature: p.days for p in history.proposals}
    assert days["amount_eur"] == DAYS - 1 and days["score"] == DAYS - 1

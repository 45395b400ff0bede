"""Drift on synthetic frames with Evidently for real: what drifts is flagged, what does not is not,
and a day's re-run replaces its rows. A toy model (LightGBM on synthetic data, registered in a
temporary lakehouse) stands in for the fraud model so the whole core path runs in seconds."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from slipway.lakehouse import Lakehouse
from slipway.monitoring import reference as reference_module
from slipway.monitoring.daily import monitor_drift
from slipway.monitoring.drift import compute_drift
from slipway.monitoring.reference import MonitoredColumns, seeded_sample
from slipway.monitoring.tables import DRIFT_METRICS, DRIFT_SHARE, PREDICTION_DRIFT, VALUE_DRIFT
from slipway.registry.store import ModelRegistry
from slipway.scoring.batch import INPUTS, PREDICTIONS
from slipway.training.train import predict, time_split, train_model
from slipway.usecase import Examples, LabelSpec, ModelSpec, MonitoringSpec, UseCase

COLUMNS = MonitoredColumns(numeric=("amount", "velocity"), categorical=("channel",))
CHANNELS = ("pos", "ecom", "atm")
SPEC = MonitoringSpec(drift_share=0.3, sample_size=600, reference_size=900)


def frame(n: int, seed: int, amount_shift: float = 0.0, channel_p=(0.5, 0.4, 0.1)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(50 + amount_shift, 10, n),
            "velocity": rng.poisson(3, n).astype(float),
            "channel": rng.choice(CHANNELS, n, p=list(channel_p)).astype(object),
            "score": rng.beta(1, 30, n),
        }
    )


def by_feature(outcome) -> dict[str, object]:
    return {f.feature: f for f in outcome.features}


def test_shifted_numeric_feature_is_flagged_and_unshifted_is_not() -> None:
    out = compute_drift(frame(3000, 1), frame(3000, 2, amount_shift=10.0), COLUMNS, SPEC)
    cols = by_feature(out)
    assert cols["amount"].drifted and cols["amount"].statistic > cols["amount"].threshold
    assert "Wasserstein" in cols["amount"].stattest
    assert not cols["velocity"].drifted and not cols["channel"].drifted
    assert out.drifted_features == ["amount"]
    assert math.isclose(out.share, 1 / 3) and out.dataset_drift  # 1/3 >= 0.3


def test_categorical_shift_is_flagged() -> None:
    out = compute_drift(frame(3000, 1), frame(3000, 2, channel_p=(0.1, 0.3, 0.6)), COLUMNS, SPEC)
    cols = by_feature(out)
    assert cols["channel"].drifted and "Jensen-Shannon" in cols["channel"].stattest
    assert not cols["amount"].drifted
    # a category the reference never saw is drift too, not an error
    current = frame(3000, 2)
    current.loc[: len(current) // 2, "channel"] = "crypto"
    assert by_feature(compute_drift(frame(3000, 1), current, COLUMNS, SPEC))["channel"].drifted


def test_prediction_drift_follows_the_score_distribution() -> None:
    reference = frame(3000, 1)
    same = compute_drift(reference, frame(3000, 2), COLUMNS, SPEC)
    assert same.prediction is not None and not same.prediction.drifted and not same.drifted
    shifted = frame(3000, 2)
    shifted["score"] = np.random.default_rng(3).beta(2, 5, len(shifted))
    out = compute_drift(reference, shifted, COLUMNS, SPEC)
    assert out.prediction.drifted and out.prediction_drift and out.drifted
    assert out.drifted_features == []  # the features did not move; only the scores did


def test_share_is_evidentlys_own_drifted_columns_share() -> None:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount

    ref, cur = frame(3000, 1), frame(3000, 2, amount_shift=10.0, channel_p=(0.1, 0.3, 0.6))
    ours = compute_drift(ref, cur, COLUMNS, SPEC)
    definition = DataDefinition(
        numerical_columns=["amount", "velocity"], categorical_columns=["channel"]
    )
    snap = Report([DriftedColumnsCount(columns=list(COLUMNS.all))]).run(
        Dataset.from_pandas(cur[list(COLUMNS.all)], data_definition=definition),
        Dataset.from_pandas(ref[list(COLUMNS.all)], data_definition=definition),
    )
    theirs = snap.dict()["metrics"][0]["value"]
    assert theirs["count"] == len(ours.drifted_features) == 2
    assert math.isclose(theirs["share"], ours.share)


def test_small_samples_switch_to_p_value_tests_and_keep_the_direction() -> None:
    # Under 1,000 reference rows Evidently picks KS (a p-value: drift is *below* the threshold).
    out = compute_drift(frame(400, 1), frame(400, 2, amount_shift=10.0), COLUMNS, SPEC)
    amount, velocity = by_feature(out)["amount"], by_feature(out)["velocity"]
    assert "K-S" in amount.stattest or "Kolmogorov" in amount.stattest
    assert amount.drifted and amount.statistic < amount.threshold
    assert not velocity.drifted


def test_threshold_from_the_spec_overrides_the_default() -> None:
    lenient = MonitoringSpec(drift_share=0.3, numeric_threshold=5.0)
    out = compute_drift(frame(3000, 1), frame(3000, 2, amount_shift=10.0), COLUMNS, lenient)
    assert by_feature(out)["amount"].threshold == 5.0
    assert not by_feature(out)["amount"].drifted


def test_a_feature_missing_from_the_day_is_drift_not_a_crash() -> None:
    current = frame(3000, 2)
    current["velocity"] = np.nan
    out = compute_drift(frame(3000, 1), current, COLUMNS, SPEC)
    velocity = by_feature(out)["velocity"]
    assert velocity.drifted and velocity.stattest is None and "missing" in velocity.detail
    assert not by_feature(out)["amount"].drifted
    assert "<html" in out.html().lower()


def test_seeded_sample_ignores_read_order() -> None:
    data = frame(2000, 1).assign(transaction_id=[f"t{i:05d}" for i in range(2000)])
    a = seeded_sample(data, 300, 7, "transaction_id")
    b = seeded_sample(data.sample(frac=1.0, random_state=3), 300, 7, "transaction_id")
    assert a["transaction_id"].tolist() == b["transaction_id"].tolist()
    assert len(seeded_sample(data, 5000, 7, "transaction_id")) == 2000


# -- the whole core path on a toy model ----------------------------------------------------------
TOY_MODEL = ModelSpec(
    name="toy",
    target="label",
    feature_service="toy_v1",
    numeric_features=("amount", "velocity"),
    categorical_features={"channel": CHANNELS},
    params={"num_iterations": 30, "num_leaves": 7, "min_data_in_leaf": 10, "num_threads": 1},
    validation_days=3,
)
TOY = UseCase(
    name="toy",
    streams=(),
    references=(),
    label=LabelSpec(
        stream="chargebacks",
        key="transaction_id",
        reported_at="reported_at",
        maturity_days=2,
        target="label",
    ),
    examples=Examples(
        table="gold.toy_examples",
        row_key="transaction_id",
        event_time="event_timestamp",
        entity_columns=(),
    ),
    model=TOY_MODEL,
    monitoring=MonitoringSpec(drift_share=0.3, sample_size=600, reference_size=900),
)
START = dt.date(2026, 8, 1)


def day_frame(day: dt.date, n: int, seed: int, amount_shift: float = 0.0) -> pd.DataFrame:
    df = frame(n, seed, amount_shift).drop(columns="score")
    df["transaction_id"] = [f"tx_{day:%Y%m%d}_{i:05d}" for i in range(n)]
    df["event_timestamp"] = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(
        np.arange(n) * 60, unit="s"
    )
    df["date"] = day
    logits = (df["amount"] - 60) / 5 + (df["channel"] == "atm") * 2
    df["label"] = (np.random.default_rng(seed + 1).random(n) < 1 / (1 + np.exp(-logits))).astype(
        int
    )
    return df


@pytest.fixture
def toy(lakehouse: Lakehouse) -> tuple[Lakehouse, int]:
    """A registered toy model (trained on 10 days) and two scored days after them."""
    train_days = [START + dt.timedelta(days=i) for i in range(10)]
    training = pd.concat(
        [day_frame(d, 400, i) for i, d in enumerate(train_days)], ignore_index=True
    )
    ts = lakehouse.write(
        "training.toy_training_set", pa.Table.from_pandas(training, preserve_index=False)
    )
    train, valid = time_split(training, TOY_MODEL.validation_days)
    model = train_model(train, valid, TOY_MODEL, device="cpu")
    version = (
        ModelRegistry(lakehouse)
        .register(
            "toy",
            model.model_text,
            metrics=model.metrics.as_dict(),
            params={**model.params, "validation_days": TOY_MODEL.validation_days},
            features=list(TOY_MODEL.features),
            device="cpu",
            training_set={"table": "training.toy_training_set", "version": ts.version},
            upstream_versions={},
            run_id=None,
        )
        .version
    )
    scored_days = [START + dt.timedelta(days=10), START + dt.timedelta(days=11)]
    inputs = pd.concat(
        [
            day_frame(scored_days[0], 1500, 100),
            day_frame(scored_days[1], 1500, 101, amount_shift=15),
        ],
        ignore_index=True,
    ).drop(columns="label")
    booster = __import__("lightgbm").Booster(model_str=model.model_text)
    preds = inputs[["date", "transaction_id"]].assign(
        role="champion", model_version=version, score=predict(booster, inputs, TOY_MODEL)
    )
    lakehouse.write(
        INPUTS, pa.Table.from_pandas(inputs, preserve_index=False), partition_by=["date"]
    )
    lakehouse.write(
        PREDICTIONS, pa.Table.from_pandas(preds, preserve_index=False), partition_by=["date"]
    )
    reference_module._CACHE.clear()
    return lakehouse, version


def test_monitor_drift_builds_the_reference_once_and_flags_the_shifted_day(toy) -> None:
    lakehouse, version = toy
    d1, d2 = START + dt.timedelta(days=10), START + dt.timedelta(days=11)
    run = monitor_drift(lakehouse, TOY, d1, d2, run_id="r1")
    assert [d.date for d in run.days] == [d1, d2]
    ref = run.days[0].reference
    assert ref.built_now and ref.size == 900 and ref.rows_available == 4000  # all 10 days
    assert lakehouse.file_exists(reference_module.reference_path("toy", version))
    assert not by_feature(run.days[0].outcome)["amount"].drifted
    assert by_feature(run.days[1].outcome)["amount"].drifted
    rows = lakehouse.read_pandas(DRIFT_METRICS)
    assert len(rows) == 2 * (3 + 2)  # per day: 3 features, the share, the score
    assert set(rows["metric"]) == {VALUE_DRIFT, DRIFT_SHARE, PREDICTION_DRIFT}
    assert (rows["sample_size"] == 600).all() and (rows["reference_size"] == 900).all()
    assert (rows["rows"] == 1500).all() and set(rows["sample_seed"]) == {20260811, 20260812}
    html = lakehouse.read_bytes(run.days[1].report_uri.removeprefix(lakehouse.root + "/"))
    assert len(html) > 100_000 and b"amount" in html
    # a new process finds the stored reference instead of rebuilding it
    reference_module._CACHE.clear()
    again = monitor_drift(lakehouse, TOY, d1, d1, run_id="r2")
    assert not again.days[0].reference.built_now
    assert again.days[0].reference.frame.equals(ref.frame)


def test_rerunning_a_day_replaces_exactly_its_rows(toy) -> None:
    lakehouse, _ = toy
    d1, d2 = START + dt.timedelta(days=10), START + dt.timedelta(days=11)
    first = monitor_drift(lakehouse, TOY, d1, d2, run_id="r1")
    before = lakehouse.read_pandas(DRIFT_METRICS)
    second = monitor_drift(lakehouse, TOY, d1, d1, run_id="r2")
    after = lakehouse.read_pandas(DRIFT_METRICS)
    assert second.written.version == first.written.version + 1
    assert len(after) == len(before)
    assert set(after.loc[after["date"] == d1, "run_id"]) == {"r2"}
    assert set(after.loc[after["date"] == d2, "run_id"]) == {"r1"}  # the other day is untouched
    key = ["date", "feature", "metric"]
    merged = before.merge(after, on=key, suffixes=("_a", "_b"))
    same = merged["statistic_a"].fillna(-1) == merged["statistic_b"].fillna(-1)
    assert same.all(), "the seeded sample must reproduce the numbers"

"""Drift on synthetic frames with Evidently for real: what drifts is flagged, what does not is not,
and a day's re-run replaces its rows. A toy model (LightGBM on synthetic data, registered in a
temporary lakehouse) stands in for the fraud model so the whole core path runs in seconds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path

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
from slipway.usecase import (
    Examples,
    FeatureDrift,
    LabelSpec,
    ModelSpec,
    MonitoringSpec,
    UseCase,
)

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


@pytest.fixture(scope="module")
def toy_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A registered toy model (trained on 10 days) and two scored days after them, built once."""
    root = tmp_path_factory.mktemp("toy")
    lakehouse = Lakehouse(root / "lakehouse")
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
    return root, version


@pytest.fixture
def toy(toy_template: tuple[Path, int], tmp_path: Path) -> tuple[Lakehouse, int]:
    """A private copy of the toy world (its MLflow store relocated), for a test to change."""
    from tests.support.pipeline import copy_world

    root, version = toy_template
    copy_world(root, tmp_path / "toy")
    reference_module._CACHE.clear()
    return Lakehouse(tmp_path / "toy" / "lakehouse"), version


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


# -- per-feature rules and multi-day windows ----------------------------------------------------
def test_a_feature_rule_overrides_its_kinds_test_and_threshold() -> None:
    lenient = MonitoringSpec(
        drift_share=0.3,
        numeric_stattest="wasserstein",
        numeric_threshold=5.0,
        feature_drift={
            "amount": FeatureDrift(threshold=0.05),
            "channel": FeatureDrift(stattest="psi"),
        },
    )
    cur = frame(3000, 2, amount_shift=2.0)
    cols = by_feature(compute_drift(frame(3000, 1), cur, COLUMNS, lenient))
    # amount: the kind's test, its own threshold; velocity keeps the kind's lenient one
    assert cols["amount"].threshold == 0.05 and cols["amount"].stattest == "wasserstein"
    assert cols["amount"].drifted and cols["amount"].statistic > 0.05
    assert cols["velocity"].threshold == 5.0 and not cols["velocity"].drifted
    # channel: another test, so the kind's threshold (on another scale) is not carried over
    assert cols["channel"].stattest == "psi"
    # the same shift under the kind's rule alone does not drift
    kind_only = MonitoringSpec(numeric_stattest="wasserstein", numeric_threshold=5.0)
    assert not by_feature(compute_drift(frame(3000, 1), cur, COLUMNS, kind_only))["amount"].drifted


def daily_rate(days: int, level: float = 1.0, rows: int = 200) -> pd.DataFrame:
    """A feature constant within each day: the day's values spread as N(level, 0.1) across days
    (evenly, by quantile, so the test is exact rather than lucky), and its day."""
    from scipy.stats import norm

    values = norm.ppf((np.arange(days) + 0.5) / days, loc=level, scale=0.1)
    order = np.random.default_rng(days).permutation(days)
    return pd.DataFrame(
        {"rate": np.repeat(values[order], rows), "day": np.repeat(np.arange(days), rows)}
    )


def test_window_days_judge_a_feature_constant_within_a_day_on_trailing_days() -> None:
    columns = MonitoredColumns(numeric=("rate",), categorical=())
    reference = daily_rate(28)[["rate"]]
    trailing = daily_rate(7)[["rate"]]
    # the most normal day there is: the reference's median, on every row of the day
    today = pd.DataFrame({"rate": np.full(200, 1.0)})
    plain = MonitoringSpec(numeric_stattest="wasserstein", numeric_threshold=0.5)
    one_day = by_feature(compute_drift(reference, today, columns, plain))["rate"]
    # a single value is at least ~0.8 std (normed Wasserstein) from a spread: every day drifts
    assert one_day.drifted and one_day.statistic > 0.75 and one_day.window_days == 1
    windowed = MonitoringSpec(
        numeric_stattest="wasserstein",
        numeric_threshold=0.5,
        feature_drift={"rate": FeatureDrift(window_days=7)},
    )
    week = by_feature(compute_drift(reference, today, columns, windowed, windows={7: trailing}))
    assert not week["rate"].drifted and week["rate"].window_days == 7
    assert week["rate"].statistic < 0.2
    # without its window (e.g. one day of served traffic) the feature is not judged at all
    alone = by_feature(compute_drift(reference, today, columns, windowed))["rate"]
    assert alone.stattest is None and not alone.drifted and "7-day window" in alone.detail
    moved = daily_rate(7, level=1.3)[["rate"]]  # three standard deviations up, all week
    shifted = compute_drift(reference, moved.iloc[-200:], columns, windowed, windows={7: moved})
    assert by_feature(shifted)["rate"].drifted


def test_constant_within_day_is_recognised() -> None:
    from slipway.monitoring.calibrate import constant_within_day

    data = daily_rate(20).assign(amount=np.random.default_rng(0).normal(50, 10, 4000))
    assert constant_within_day(data, data["day"], "rate")
    assert not constant_within_day(data, data["day"], "amount")


# -- the reference: the training window, not the validation window ------------------------------
def with_monitoring(usecase: UseCase, **changes) -> UseCase:
    return dataclasses.replace(
        usecase, monitoring=dataclasses.replace(usecase.monitoring, **changes)
    )


def test_the_reference_is_the_last_reference_days_of_the_training_window(toy) -> None:
    lakehouse, version = toy
    usecase = with_monitoring(TOY, reference_days=4)
    ref = reference_module.build_reference(lakehouse, usecase, version)
    # training window START..START+9, validation the last 3 days: the reference is 6..9
    assert ref.window == (str(START + dt.timedelta(days=6)), str(START + dt.timedelta(days=9)))
    assert ref.training_window == (str(START), str(START + dt.timedelta(days=9)))
    assert ref.validation_window == (str(START + dt.timedelta(days=7)), ref.window[1])
    assert ref.rows_available == 4 * 400 and ref.size == 900
    days = set(reference_module.day_of(ref.frame))
    assert days == {START + dt.timedelta(days=i) for i in range(6, 10)}
    # scores for prediction drift only from the validation days (out of sample)
    assert set(reference_module.day_of(ref.score_frame)) == {
        START + dt.timedelta(days=i) for i in range(7, 10)
    }
    # all of the training window when reference_days is None, whatever validation_days is
    full = reference_module.build_reference(lakehouse, TOY, version)
    assert full.window == ref.training_window and full.rows_available == 4000
    # and the per-day validation baseline comes with it
    base = full.baseline
    assert [d.date for d in base.days] == [str(START + dt.timedelta(days=i)) for i in range(7, 10)]
    assert 0 < base.recall <= 1 and base.dispersion >= 1
    assert sum(d.caught for d in base.days) == round(
        base.recall * sum(d.positives for d in base.days)
    )


def test_drift_rows_record_their_reference_and_days_inside_it_never_alert(toy) -> None:
    from slipway.monitoring.alerts import scan_alerts
    from slipway.registry.store import CHAMPION

    lakehouse, version = toy
    usecase = with_monitoring(
        TOY, reference_days=4, feature_drift={"velocity": FeatureDrift(window_days=2)}
    )
    ModelRegistry(lakehouse).set_alias("toy", CHAMPION, version, "test", None)
    inside = START + dt.timedelta(days=8)  # a training day, inside the reference
    shifted = day_frame(inside, 1500, 300, amount_shift=15).drop(columns="label")
    booster = __import__("lightgbm").Booster(
        model_str=ModelRegistry(lakehouse).load_text("toy", version)
    )
    preds = shifted[["date", "transaction_id"]].assign(
        role="champion", model_version=version, score=predict(booster, shifted, TOY_MODEL)
    )
    lakehouse.write(INPUTS, pa.Table.from_pandas(shifted, preserve_index=False))
    lakehouse.write(PREDICTIONS, pa.Table.from_pandas(preds, preserve_index=False))
    run = monitor_drift(lakehouse, usecase, inside, START + dt.timedelta(days=11), run_id="r")
    rows = lakehouse.read_pandas(DRIFT_METRICS)
    assert set(rows["reference_table"]) == {"training.toy_training_set"}
    assert set(rows["reference_start"]) == {START + dt.timedelta(days=6)}
    assert set(rows["reference_end"]) == {START + dt.timedelta(days=9)}
    assert set(rows.loc[rows["feature"] == "velocity", "window_days"]) == {2}
    assert set(rows.loc[rows["feature"] == "amount", "window_days"]) == {1}
    drifted = {d.date for d in run.days if d.outcome.drifted}
    assert inside in drifted and START + dt.timedelta(days=11) in drifted
    scan = scan_alerts(lakehouse, usecase)
    assert inside not in {a.date for a in scan.alerts}
    assert [why for a, why in scan.suppressed if a.date == inside] == [
        f"{inside} is inside the drift reference ({START + dt.timedelta(days=6)}.."
        f"{START + dt.timedelta(days=9)})"
    ]
    assert START + dt.timedelta(days=11) in {a.date for a in scan.alerts}
    # two groups (the day, the trailing 2 days) and the score: one page with every report
    html = lakehouse.read_bytes(run.days[-1].report_uri.removeprefix(lakehouse.root + "/"))
    assert html.count(b"<iframe") == 3 and b"trailing 2 days" in html


# -- performance: like with like ----------------------------------------------------------------
BASELINE = reference_module.PerformanceBaseline(
    threshold=0.5, recall=0.6, pooled_pr_auc=0.55, dispersion=1.0
)


def judged(positives: int, caught: int, rows: int = 2000, baseline=BASELINE, **spec) -> dict:
    """A day with ``positives`` of which ``caught`` score above the operating threshold."""
    from slipway.monitoring.performance import judge_day

    rng = np.random.default_rng(positives * 1000 + caught)
    y = np.zeros(rows, dtype=int)
    y[:positives] = 1
    scores = rng.uniform(0.0, 0.45, rows)
    scores[:caught] = rng.uniform(0.55, 1.0, caught)
    scores[caught:positives] = rng.uniform(0.0, 0.45, positives - caught)
    monitoring = MonitoringSpec(min_positives_for_performance=5, **spec)
    return judge_day(y, scores, baseline, monitoring, 0.9)


def test_a_quiet_day_with_few_positives_does_not_alert() -> None:
    row = judged(positives=5, caught=2)  # recall 0.4 where validation had 0.6: noise
    assert row["status"] == "evaluated" and row["caught"] == 2
    assert row["recall_at_threshold"] == pytest.approx(0.4)
    assert row["p_value"] > 0.2 and not row["degraded"]
    assert row["pr_auc"] < BASELINE.pooled_pr_auc - 0.1  # the old pooled PR-AUC rule would alert


def test_a_genuinely_degraded_day_alerts() -> None:
    row = judged(positives=40, caught=5)
    assert row["p_value"] < 1e-6 and row["degraded"]
    assert row["reference_recall_at_threshold"] == 0.6


def test_a_significant_but_trivial_drop_and_overdispersion_do_not_alert() -> None:
    big = judged(positives=3000, caught=1710, rows=20000)  # 0.57: significant, 3 points
    assert big["p_value"] < 0.01 and not big["degraded"]
    plain = judged(positives=30, caught=12, performance_alpha=0.05)  # 0.4 vs 0.6
    assert plain["p_value"] < 0.05 and plain["degraded"]
    runs = dataclasses.replace(BASELINE, dispersion=3.0)  # positives come in runs of ~3
    clustered = judged(positives=30, caught=12, baseline=runs, performance_alpha=0.05)
    assert clustered["p_value"] > 0.05 and not clustered["degraded"]


def test_shortfall_p_value_matches_the_binomial() -> None:
    from scipy.stats import binom

    from slipway.monitoring.performance import shortfall_p_value

    for n, k, r in [(5, 2, 0.6), (40, 5, 0.6), (30, 12, 0.6), (12, 11, 0.3)]:
        assert shortfall_p_value(k, n, r) == pytest.approx(binom.cdf(k, n, r))
    assert shortfall_p_value(5, 5, 0.9) == 1.0 and shortfall_p_value(0, 0, 0.5) == 1.0


def test_performance_with_a_rule_label_drops_exclusions_and_flags_the_degraded_day(toy) -> None:
    from slipway.monitoring.performance import evaluate_performance
    from slipway.usecase import LabelRule

    lakehouse, _ = toy
    usecase = dataclasses.replace(
        TOY,
        label=LabelSpec(
            maturity_days=0,
            target="label",
            rule=LabelRule(
                columns=("outcome", "cancelled"),
                positive=lambda f: f["outcome"] > 0.5,
                exclude=lambda f: f["cancelled"],
            ),
        ),
    )
    d1, d2 = START + dt.timedelta(days=10), START + dt.timedelta(days=11)
    preds = lakehouse.read_pandas(PREDICTIONS)
    truth = pd.concat([day_frame(d1, 1500, 100), day_frame(d2, 1500, 101, amount_shift=15)])
    examples = preds[["date", "transaction_id", "score"]].merge(
        truth[["transaction_id", "label"]], on="transaction_id"
    )
    examples["outcome"] = examples["label"].astype(float)
    # d2: the positives are the rows the model scores lowest: it misses all of them
    low = examples[examples["date"] == d2].nsmallest(60, "score").index
    examples.loc[examples["date"] == d2, "outcome"] = 0.0
    examples.loc[low, "outcome"] = 1.0
    examples["cancelled"] = False
    examples.loc[examples[examples["date"] == d1].index[:100], "cancelled"] = True
    lakehouse.write(
        "gold.toy_examples",
        pa.Table.from_pandas(
            examples[["date", "transaction_id", "outcome", "cancelled"]], preserve_index=False
        ),
    )
    run = evaluate_performance(lakehouse, usecase, d1, d2, run_id="p")
    by_day = {r["date"]: r for r in run.rows}
    assert by_day[d1]["excluded"] == 100 and by_day[d1]["rows"] == 1400
    assert by_day[d1]["status"] == "evaluated" and not by_day[d1]["degraded"]
    assert by_day[d2]["positives"] == 60 and by_day[d2]["caught"] == 0 and by_day[d2]["degraded"]
    stored = lakehouse.read_pandas("monitoring.performance")
    assert set(stored["labels_table"]) == {"gold.toy_examples"}
    assert stored.set_index("date").loc[d2, "degraded"]


# -- calibration --------------------------------------------------------------------------------
def test_calibration_proposes_thresholds_quiet_on_the_reference_and_alert_on_a_shift(toy) -> None:
    from slipway.monitoring.calibrate import calibrate
    from slipway.registry.store import CHAMPION

    lakehouse, version = toy
    ModelRegistry(lakehouse).set_alias("toy", CHAMPION, version, "test", None)
    result = calibrate(lakehouse, TOY, source="reference")
    proposals = {p.feature: p for p in result.proposals}
    assert set(proposals) == {"amount", "velocity", "channel", "score"}
    assert proposals["amount"].stattest == "wasserstein"
    assert proposals["channel"].stattest == "jensenshannon"
    assert proposals["score"].stattest == "psi" and proposals["score"].days == 3  # valid days
    for p in proposals.values():
        assert p.threshold is not None and p.threshold >= p.high  # no normal day over it
        assert p.days_over_proposed == 0
    assert proposals["amount"].days == 10
    snippet = result.as_python()
    assert 'FeatureDrift(stattest="wasserstein", threshold=' in snippet
    # the proposal, pasted into the declaration: the normal day is quiet, the shifted one drifts
    calibrated = with_monitoring(TOY, feature_drift=result.feature_drift())
    run = monitor_drift(
        lakehouse, calibrated, START + dt.timedelta(days=10), START + dt.timedelta(days=11)
    )
    normal, moved = run.days
    assert not by_feature(normal.outcome)["amount"].drifted
    assert by_feature(moved.outcome)["amount"].drifted
    assert by_feature(moved.outcome)["amount"].threshold == proposals["amount"].threshold
    # history: the rows just measured, with the proposed tests
    history = calibrate(lakehouse, calibrated, source="history")
    assert {p.feature: p.days for p in history.proposals}["amount"] == 2
    assert history.as_dict()["feature_drift"]["amount"]["stattest"] == "wasserstein"


def test_a_metrics_table_written_by_older_code_gains_the_new_columns(lakehouse: Lakehouse) -> None:
    from slipway.monitoring.tables import DRIFT_SCHEMA, replace_days

    old_fields = [f for f in DRIFT_SCHEMA if f.name not in {"window_days", "reference_start"}]
    old = pa.schema(old_fields)
    d1, d2 = dt.date(2026, 8, 1), dt.date(2026, 8, 2)
    row = {"date": d1, "model_name": "m", "model_version": 1, "feature": "a", "metric": "x"}
    lakehouse.write(
        DRIFT_METRICS, pa.Table.from_pylist([row], schema=old), partition_by=["date"], schema=old
    )
    new = {**row, "date": d2, "window_days": 7, "reference_start": d1}
    replace_days(lakehouse, DRIFT_METRICS, [new], DRIFT_SCHEMA, d2, d2)
    stored = lakehouse.read_pandas(DRIFT_METRICS).sort_values("date")
    assert stored["date"].tolist() == [d1, d2]  # the old day survives, with nulls
    assert pd.isna(stored["window_days"].iloc[0]) and stored["window_days"].iloc[1] == 7
    assert stored["reference_start"].iloc[1] == d1

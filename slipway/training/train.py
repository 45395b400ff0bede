"""Train LightGBM reproducibly on a versioned training set, with a time-based split.

The split is by event time, never random: the model is validated on the latest matured days, the
way it will be used (on days after those it learned from). Determinism comes from LightGBM's
``deterministic`` mode, a fixed seed and a fixed thread count, so the same training-set version
and seed give a byte-identical model file.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from slipway.training.device import DeviceChoice, choose_device
from slipway.training.metrics import Metrics, compute_metrics
from slipway.usecase import ModelSpec

log = logging.getLogger(__name__)

TIME_COLUMN = "event_timestamp"
FIXED_PARAMS = {
    "objective": "binary",
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


def _as_float(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values.dtype) and not isinstance(
        values.dtype, pd.CategoricalDtype
    ):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def model_frame(df: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """The model's input matrix: declared features only, in order, with fixed encodings.

    Built from numpy arrays in one constructor call: this runs on every online request, where
    column-by-column pandas assignment cost ~6 ms against ~0.5 ms for this.
    """
    missing = [c for c in spec.features if c not in df.columns]
    if missing:
        raise KeyError(f"model {spec.name} needs columns that are not in the frame: {missing}")
    data: dict[str, object] = {}
    for name in spec.numeric_features:
        values = _as_float(df[name])
        if name in spec.missing_defaults:
            values = np.where(np.isnan(values), spec.missing_defaults[name], values)
        data[name] = values
    for name, categories in spec.categorical_features.items():
        data[name] = pd.Categorical(df[name].to_numpy(dtype=object), categories=list(categories))
    return pd.DataFrame(data, index=df.index)


def time_split(
    df: pd.DataFrame, validation_days: int, time_column: str = TIME_COLUMN
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier days train, the latest ``validation_days`` validate."""
    days = pd.to_datetime(df[time_column], utc=True).dt.floor("D")
    unique = np.sort(days.unique())
    if len(unique) <= validation_days:
        raise ValueError(
            f"need more than {validation_days} days of matured labels to split, have {len(unique)}"
        )
    cut = unique[-validation_days]
    return df[days < cut].copy(), df[days >= cut].copy()


@dataclass
class TrainedModel:
    model_text: str
    device: DeviceChoice
    params: dict[str, Any]
    metrics: Metrics
    train_rows: int
    valid_rows: int
    train_positives: int
    valid_window: tuple[str, str]
    importance: pd.DataFrame
    valid_scores: np.ndarray
    valid_labels: np.ndarray
    seconds: float


def train_model(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    spec: ModelSpec,
    params: Mapping[str, Any] | None = None,
    device: str = "auto",
    seed: int = 7,
) -> TrainedModel:
    """Fit on ``train``, evaluate on ``valid``; returns the model as LightGBM text."""
    import lightgbm as lgb

    choice = choose_device(device)  # type: ignore[arg-type]
    for reason in choice.fallbacks:
        log.info(f"device fallback: {reason}")
    merged: dict[str, Any] = {
        **spec.params,
        **(params or {}),
        **FIXED_PARAMS,
        **choice.params(),
        "seed": seed,
    }
    rounds = int(merged.pop("num_iterations", merged.pop("n_estimators", 200)))
    y_train = train[spec.target].astype(int).to_numpy()
    y_valid = valid[spec.target].astype(int).to_numpy()
    if y_train.sum() == 0:
        raise ValueError("the training window has no positive labels")
    log.info(
        f"training {spec.name} on {len(train)} rows ({int(y_train.sum())} positives), validating on "
        f"{len(valid)} rows ({int(y_valid.sum())} positives), device {choice.device}, {rounds} rounds"
    )
    started = dt.datetime.now()
    dataset = lgb.Dataset(model_frame(train, spec), label=y_train, free_raw_data=True)
    booster = lgb.train(merged, dataset, num_boost_round=rounds)
    seconds = (dt.datetime.now() - started).total_seconds()
    scores = booster.predict(model_frame(valid, spec))
    metrics = compute_metrics(y_valid, scores, spec.precision_target)
    importance = pd.DataFrame(
        {
            "feature": booster.feature_name(),
            "gain": booster.feature_importance("gain"),
            "splits": booster.feature_importance("split"),
        }
    ).sort_values("gain", ascending=False, ignore_index=True)
    importance["gain_share"] = (importance["gain"] / max(importance["gain"].sum(), 1e-12)).round(4)
    window_days = pd.to_datetime(valid[TIME_COLUMN], utc=True)
    log.info(
        f"trained in {seconds:.1f}s: PR-AUC {metrics.pr_auc:.4f}, ROC-AUC {metrics.roc_auc:.4f}"
    )
    return TrainedModel(
        model_text=booster.model_to_string(),
        device=choice,
        params={**merged, "num_iterations": rounds},
        metrics=metrics,
        train_rows=len(train),
        valid_rows=len(valid),
        train_positives=int(y_train.sum()),
        valid_window=(str(window_days.min().date()), str(window_days.max().date())),
        importance=importance,
        valid_scores=scores,
        valid_labels=y_valid,
        seconds=seconds,
    )


def load_booster(model_text: str):
    import lightgbm as lgb

    return lgb.Booster(model_str=model_text)


def predict(booster, df: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """Scores for ``df`` with the model's own feature list and encodings."""
    return booster.predict(model_frame(df, spec))

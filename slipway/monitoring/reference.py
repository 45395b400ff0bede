"""The drift reference of a model version: what "normal" inputs and scores looked like.

Why the last ``MonitoringSpec.reference_days`` of the version's *training window* (its pinned
training set, training and validation days together; all of it when ``reference_days`` is None),
and not its validation window: the validation window is sized for judging a model (often a few
days), not for describing normal inputs. Tying the two made a short validation window a reference
so narrow that every later day drifted, even days inside the training data. The reference is
independent of ``validation_days``; days inside it never alert (see ``slipway.monitoring.alerts``).

Scores are the exception: scores on rows the model was fitted on are more extreme than on new
rows, so prediction drift is measured against the reference rows from the validation split only
(``fitted`` False; out-of-sample scores). The validation split is also where the version's
per-day performance baseline comes from (:class:`PerformanceBaseline`): per validation day, its
positives, PR-AUC, and how many positives the operating threshold caught, the like-with-like
yardstick of ``slipway.monitoring.performance``.

A reference is built once per model version (a seeded sample of ``MonitoringSpec.reference_size``
rows, scored by that version) and stored as one Parquet file under the lakehouse root; later runs,
and later days of the same run, reuse it. The file carries its lineage (training-set table and
version, reference dates, seed) and the baseline in its schema metadata.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from slipway.lakehouse import Lakehouse
from slipway.registry.store import ModelRegistry
from slipway.training.metrics import compute_metrics, recall_at_precision
from slipway.training.train import TIME_COLUMN, load_booster, predict, time_split
from slipway.usecase import ModelSpec, UseCase

log = logging.getLogger(__name__)

REFERENCE_SEED = 20_240_801
SCORE = "score"
FITTED = "_fitted"
"""Reference column: True for rows of the version's training split (their scores are in-sample)."""
FORMAT = 2
"""Bumped when the stored reference changes shape; an older file is rebuilt, not misread."""
_META_KEY = b"slipway.reference"
_CACHE: dict[tuple[Any, ...], ReferenceProfile] = {}


def row_key(usecase: UseCase) -> str:
    """The column that identifies one example (and one prediction) of the use case."""
    if usecase.examples is None:
        raise ValueError(
            f"use case {usecase.name!r} declares no examples: monitoring needs a row key"
        )
    return usecase.examples.row_key


@dataclass(frozen=True)
class MonitoredColumns:
    """The features drift is computed on, split by how Evidently must treat them."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical)

    def subset(self, names: set[str] | frozenset[str]) -> MonitoredColumns:
        return MonitoredColumns(
            tuple(c for c in self.numeric if c in names),
            tuple(c for c in self.categorical if c in names),
        )


def monitored_columns(usecase: UseCase) -> MonitoredColumns:
    """``MonitoringSpec.monitored_features`` (all model features when empty), typed by the model."""
    spec = usecase.model
    assert spec is not None
    wanted = usecase.monitoring.monitored_features or spec.features
    unknown = sorted(set(wanted) - set(spec.features))
    if unknown:
        raise KeyError(f"monitored features that are not model features: {unknown}")
    ruled = sorted(set(usecase.monitoring.feature_drift) - set(wanted) - {SCORE})
    if ruled:
        raise KeyError(f"feature_drift names features that are not monitored: {ruled}")
    return MonitoredColumns(
        numeric=tuple(f for f in spec.numeric_features if f in wanted),
        categorical=tuple(f for f in spec.categorical_features if f in wanted),
    )


def drift_frame(df: pd.DataFrame, spec: ModelSpec, columns: MonitoredColumns) -> pd.DataFrame:
    """The frame Evidently compares: what the model sees, with categoricals kept as raw strings.

    Numerics get the model's own coercion and missing defaults (so an entity without history
    compares as zero recent events on both sides). Categoricals stay strings instead of the
    model's fixed categories: the model turns an unseen value into missing, which would hide a
    brand-new category from drift detection.
    """
    out = pd.DataFrame(index=df.index)
    for name in columns.numeric:
        values = pd.to_numeric(df[name], errors="coerce").astype("float64")
        if name in spec.missing_defaults:
            values = values.fillna(spec.missing_defaults[name])
        out[name] = values
    for name in columns.categorical:
        out[name] = df[name].astype("object").where(df[name].notna(), None)
    if SCORE in df.columns:
        out[SCORE] = pd.to_numeric(df[SCORE], errors="coerce").astype("float64")
    return out.reset_index(drop=True)


def seeded_sample(frame: pd.DataFrame, size: int, seed: int, key: str) -> pd.DataFrame:
    """Up to ``size`` rows, the same ones for the same data and seed whatever the read order."""
    ordered = frame.sort_values(key, kind="stable").reset_index(drop=True)
    if len(ordered) <= size:
        return ordered
    return ordered.sample(n=size, random_state=seed).sort_values(key).reset_index(drop=True)


def day_of(frame: pd.DataFrame) -> pd.Series:
    """The UTC calendar day of each row's event time (how training splits and monitors days)."""
    return pd.to_datetime(frame[TIME_COLUMN], utc=True).dt.date


@dataclass(frozen=True)
class ValidationDay:
    """One validation day of a version: the like-with-like yardstick for a scored day."""

    date: str
    rows: int
    positives: int
    caught: int
    pr_auc: float | None


@dataclass(frozen=True)
class PerformanceBaseline:
    """What the version achieved on its validation days, pooled and per day.

    ``threshold`` is the operating threshold (the lowest score reaching the precision target on
    the pooled validation set) and ``recall`` the share of validation positives scoring at or
    above it. ``dispersion`` is the Pearson dispersion of the per-day caught counts around
    ``recall`` (1: as binomial; 3: positives come in runs of about three that are caught or
    missed together), floored at 1.
    """

    threshold: float
    recall: float
    pooled_pr_auc: float
    dispersion: float
    days: tuple[ValidationDay, ...] = field(default_factory=tuple)

    @property
    def daily_pr_auc(self) -> list[float]:
        return [d.pr_auc for d in self.days if d.pr_auc is not None]

    @property
    def median_daily_pr_auc(self) -> float:
        values = self.daily_pr_auc
        return float(np.median(values)) if values else math.nan

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerformanceBaseline:
        days = tuple(ValidationDay(**d) for d in data.get("days", ()))
        return cls(
            threshold=float(data["threshold"]),
            recall=float(data["recall"]),
            pooled_pr_auc=float(data["pooled_pr_auc"]),
            dispersion=float(data["dispersion"]),
            days=days,
        )


def dispersion(caught: np.ndarray, positives: np.ndarray, recall: float) -> float:
    """Pearson dispersion of per-day caught counts around ``recall`` (floored at 1)."""
    keep = positives > 0
    caught, positives = caught[keep], positives[keep]
    if len(positives) < 2 or not 0 < recall < 1:
        return 1.0
    expected = positives * recall
    chi2 = float(((caught - expected) ** 2 / (expected * (1 - recall))).sum())
    return max(1.0, chi2 / (len(positives) - 1))


def performance_baseline(
    holdout: pd.DataFrame, scores: np.ndarray, spec: ModelSpec, min_positives: int
) -> PerformanceBaseline:
    """The per-day and pooled validation figures of a version (see :class:`PerformanceBaseline`)."""
    y = holdout[spec.target].astype(int).to_numpy()
    recall, threshold = recall_at_precision(y, scores, spec.precision_target)
    pooled = (
        compute_metrics(y, scores, spec.precision_target).pr_auc
        if 0 < y.sum() < len(y)
        else math.nan
    )
    frame = pd.DataFrame({"day": day_of(holdout).to_numpy(), "y": y, "score": scores})
    groups = list(frame.groupby("day", sort=True))
    positives = [int(g["y"].sum()) for _, g in groups]
    # A day's PR-AUC is set beside validation days as well supplied with positives as the days
    # it judges; when fewer than three validation days have that many, any day with two will do.
    floor = max(1, min_positives)
    if sum(n >= floor for n in positives) < 3:
        floor = 2
    days = []
    for (day, group), n_pos in zip(groups, positives, strict=True):
        pr_auc = None
        if n_pos >= floor and n_pos < len(group):
            pr_auc = compute_metrics(group["y"].to_numpy(), group["score"].to_numpy()).pr_auc
        caught = int(((group["score"] >= threshold) & (group["y"] == 1)).sum())
        days.append(ValidationDay(str(day), len(group), n_pos, caught, pr_auc))
    caught_arr = np.array([d.caught for d in days], dtype=float)
    pos_arr = np.array([d.positives for d in days], dtype=float)
    # the pooled recall at the threshold (precision_recall_curve counts score >= threshold)
    total = pos_arr.sum()
    at_threshold = float(caught_arr.sum() / total) if total else 0.0
    return PerformanceBaseline(
        threshold=float(threshold),
        recall=at_threshold if total else float(recall),
        pooled_pr_auc=float(pooled),
        dispersion=dispersion(caught_arr, pos_arr, at_threshold),
        days=tuple(days),
    )


@dataclass(frozen=True)
class ReferenceProfile:
    """A model version's reference sample (raw features + its own scores) and its lineage.

    ``window`` is the reference's first and last day; ``training_window`` the whole training
    set's; ``validation_window`` its validation split's.
    """

    model_name: str
    model_version: int
    frame: pd.DataFrame
    training_set: dict[str, Any]
    window: tuple[str, str]
    rows_available: int
    seed: int
    uri: str
    built_now: bool
    training_window: tuple[str, str] = ("", "")
    validation_window: tuple[str, str] = ("", "")
    baseline: PerformanceBaseline | None = None

    @property
    def size(self) -> int:
        return len(self.frame)

    @property
    def table(self) -> str:
        return str(self.training_set["table"])

    @property
    def table_version(self) -> int:
        return int(self.training_set["version"])

    @property
    def start(self) -> dt.date:
        return dt.date.fromisoformat(self.window[0])

    @property
    def end(self) -> dt.date:
        return dt.date.fromisoformat(self.window[1])

    def contains(self, day: dt.date) -> bool:
        return self.start <= day <= self.end

    @property
    def score_frame(self) -> pd.DataFrame:
        """The reference rows with out-of-sample scores (the validation split's)."""
        if FITTED not in self.frame.columns:
            return self.frame
        return self.frame[~self.frame[FITTED].astype(bool)].reset_index(drop=True)


def reference_path(model_name: str, version: int) -> str:
    """Where a version's reference lives, relative to the lakehouse root."""
    return f"monitoring/reference/{model_name}/v{version:04d}/reference.parquet"


def reference_days(all_days: list[dt.date], wanted: int | None) -> list[dt.date]:
    """The last ``wanted`` days of a training window (all of them when None)."""
    return all_days if wanted is None else all_days[-wanted:]


def load_training_window(
    lakehouse: Lakehouse, usecase: UseCase, version: int
) -> tuple[pd.DataFrame, dict[str, Any], int]:
    """A version's pinned training set (key, time, label, features), lineage, validation days."""
    spec = usecase.model
    assert spec is not None
    record = ModelRegistry(lakehouse).get(spec.name, version)
    ts = record.training_set
    table, ts_version = ts["table"], int(ts["version"])
    key = row_key(usecase)
    columns = list(dict.fromkeys([key, TIME_COLUMN, spec.target, *spec.features]))
    frame = lakehouse.read(table, version=ts_version, columns=columns).to_pandas()
    validation_days = int(record.params.get("validation_days", spec.validation_days))
    return frame, {"table": table, "version": ts_version}, validation_days


def build_reference(
    lakehouse: Lakehouse, usecase: UseCase, version: int, seed: int = REFERENCE_SEED
) -> ReferenceProfile:
    """Sample the last ``reference_days`` of the version's training window and score them."""
    spec = usecase.model
    assert spec is not None
    mon = usecase.monitoring
    key = row_key(usecase)
    registry = ModelRegistry(lakehouse)
    frame, training_set, validation_days = load_training_window(lakehouse, usecase, version)
    _, holdout = time_split(frame, validation_days)
    days = day_of(frame)
    all_days = sorted(days.unique())
    chosen = reference_days(all_days, mon.reference_days)
    pool = frame[days.isin(set(chosen)).to_numpy()]
    first_valid = min(day_of(holdout))
    booster = load_booster(registry.load_text(spec.name, version))
    sample = seeded_sample(pool, mon.reference_size, seed, key)
    sample[SCORE] = predict(booster, sample, spec)
    sample[FITTED] = (day_of(sample) < first_valid).to_numpy()
    baseline = performance_baseline(
        holdout, predict(booster, holdout, spec), spec, mon.min_positives_for_performance
    )
    window = (str(chosen[0]), str(chosen[-1]))
    valid_days = sorted(day_of(holdout).unique())
    meta = {
        "format": FORMAT,
        "model_name": spec.name,
        "model_version": version,
        "training_set": training_set,
        "window": list(window),
        "training_window": [str(all_days[0]), str(all_days[-1])],
        "validation_window": [str(valid_days[0]), str(valid_days[-1])],
        "reference_days": mon.reference_days,
        "validation_days": validation_days,
        "rows_available": len(pool),
        "seed": seed,
        "baseline": baseline.as_dict(),
        "built_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    arrow = pa.Table.from_pandas(sample, preserve_index=False)
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), _META_KEY: json.dumps(meta)}
    )
    buf = io.BytesIO()
    pq.write_table(arrow, buf)
    uri = lakehouse.write_bytes(reference_path(spec.name, version), buf.getvalue())
    return _profile(meta, sample, uri, built_now=True)


def _profile(
    meta: dict[str, Any], frame: pd.DataFrame, uri: str, built_now: bool
) -> ReferenceProfile:
    return ReferenceProfile(
        model_name=meta["model_name"],
        model_version=int(meta["model_version"]),
        frame=frame,
        training_set=meta["training_set"],
        window=tuple(meta["window"]),
        rows_available=int(meta["rows_available"]),
        seed=int(meta["seed"]),
        uri=uri,
        built_now=built_now,
        training_window=tuple(meta["training_window"]),
        validation_window=tuple(meta["validation_window"]),
        baseline=PerformanceBaseline.from_dict(meta["baseline"]),
    )


def _read_reference(
    lakehouse: Lakehouse, usecase: UseCase, version: int
) -> ReferenceProfile | None:
    """The stored reference, or None when it was built by older code or other settings."""
    spec = usecase.model
    assert spec is not None
    relative = reference_path(spec.name, version)
    arrow = pq.read_table(io.BytesIO(lakehouse.read_bytes(relative)))
    meta = json.loads((arrow.schema.metadata or {})[_META_KEY])
    if (
        meta.get("format") != FORMAT
        or meta.get("reference_days") != usecase.monitoring.reference_days
    ):
        return None
    return _profile(meta, arrow.to_pandas(), lakehouse.path(relative), built_now=False)


def load_reference(
    lakehouse: Lakehouse,
    usecase: UseCase,
    version: int,
    rebuild: bool = False,
) -> ReferenceProfile:
    """The version's reference: from this process's cache, else the stored file, else built."""
    spec = usecase.model
    assert spec is not None
    relative = reference_path(spec.name, version)
    mon = usecase.monitoring
    key = (lakehouse.root, relative, mon.reference_days, mon.reference_size)
    if not rebuild and key in _CACHE:
        return _CACHE[key]
    profile = None
    if not rebuild and lakehouse.file_exists(relative):
        profile = _read_reference(lakehouse, usecase, version)
        if profile is not None:
            log.info(f"reference of {spec.name} v{version}: {profile.size} rows, reused")
    if profile is None:
        profile = build_reference(lakehouse, usecase, version)
        log.info(
            f"reference of {spec.name} v{version}: built {profile.size} of "
            f"{profile.rows_available} rows ({profile.window[0]}..{profile.window[1]}, the last "
            f"{usecase.monitoring.reference_days or 'all'} days of the training window "
            f"{profile.training_window[0]}..{profile.training_window[1]}) from "
            f"{profile.table}@v{profile.table_version}"
        )
    _CACHE[key] = profile
    return profile

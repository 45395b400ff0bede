"""Drift of a range of scored days: read, sample, compare with the reference, store.

What makes it fast enough for 100k-row days: each day is read alone (partition pruning), joined
with the champion's scores, and sampled to ``MonitoringSpec.sample_size`` rows with a seed derived
from the date (so a re-run reproduces the same numbers); the reference is built once per model
version and cached; Evidently runs one lean report per day (see ``slipway.monitoring.drift``).

A feature with ``FeatureDrift.window_days`` = w > 1 is compared on the trailing w days (the day
and the w - 1 before it, read once per run for the features that need them, sampled with the
day's seed). Every row records the reference it was judged against (training-set table,
version, first and last day) and the window it covered.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow.dataset as pads

from slipway.lakehouse import Lakehouse, WriteResult, days_between
from slipway.monitoring.drift import ColumnDrift, DriftOutcome, compute_drift
from slipway.monitoring.reference import (
    MonitoredColumns,
    ReferenceProfile,
    drift_frame,
    load_reference,
    monitored_columns,
    row_key,
    seeded_sample,
)
from slipway.monitoring.tables import (
    DATASET_FEATURE,
    DRIFT_METRICS,
    DRIFT_SCHEMA,
    DRIFT_SHARE,
    PREDICTION_DRIFT,
    SCORE_FEATURE,
    VALUE_DRIFT,
    replace_days,
)
from slipway.scoring.batch import INPUTS, PREDICTIONS
from slipway.usecase import UseCase

log = logging.getLogger(__name__)

CHAMPION_ROLE = "champion"


def day_seed(day: dt.date) -> int:
    """The sampling seed of a day: fixed, so re-running a day draws the same rows."""
    return int(day.strftime("%Y%m%d"))


def report_path(model_name: str, version: int, day: dt.date) -> str:
    """Where a day's HTML report lives, relative to the lakehouse root."""
    return f"reports/monitoring/{model_name}/drift/{day.isoformat()}/v{version:04d}.html"


@dataclass
class DayDrift:
    """One scored day x champion version, compared with that version's reference."""

    date: dt.date
    model_version: int
    outcome: DriftOutcome
    rows: int
    sample_size: int
    seed: int
    reference: ReferenceProfile
    report_uri: str
    seconds: float


@dataclass
class DriftRun:
    days: list[DayDrift]
    written: WriteResult
    read_versions: dict[str, int]
    empty_days: list[dt.date] = field(default_factory=list)

    @property
    def references(self) -> dict[int, ReferenceProfile]:
        return {d.model_version: d.reference for d in self.days}


def scored_day(
    lakehouse: Lakehouse,
    day: dt.date,
    inputs_version: int,
    predictions_version: int,
    key: str,
) -> pd.DataFrame:
    """A day's model inputs joined with the champion's score and version (one row each)."""
    inputs = lakehouse.read(INPUTS, version=inputs_version, dates=(day, day)).to_pandas()
    if inputs.empty:
        return inputs
    scores = lakehouse.read(
        PREDICTIONS,
        version=predictions_version,
        dates=(day, day),
        columns=[key, "model_version", "score"],
        filter=pads.field("role") == CHAMPION_ROLE,
    ).to_pandas()
    return inputs.merge(scores, on=key, how="inner", validate="one_to_one")


def windowed_features(usecase: UseCase, columns: MonitoredColumns) -> dict[int, MonitoredColumns]:
    """The monitored features compared on trailing windows, by window length (> 1 only)."""
    by_window: dict[int, set[str]] = {}
    for name in columns.all:
        w = usecase.monitoring.feature_rule(name).window_days
        if w > 1:
            by_window.setdefault(w, set()).add(name)
    return {w: columns.subset(names) for w, names in sorted(by_window.items())}


def trailing_inputs(
    lakehouse: Lakehouse,
    inputs_version: int,
    start: dt.date,
    end: dt.date,
    key: str,
    features: tuple[str, ...],
) -> pd.DataFrame:
    """The windowed features' inputs of ``[start, end]`` (one read for a whole run)."""
    return lakehouse.read(
        INPUTS,
        version=inputs_version,
        dates=(start, end),
        columns=list(dict.fromkeys([key, "date", *features])),
    ).to_pandas()


def window_frames(
    trailing: pd.DataFrame | None,
    day: dt.date,
    windows: dict[int, MonitoredColumns],
    usecase: UseCase,
    key: str,
) -> dict[int, pd.DataFrame]:
    """Per window length, the sampled drift frame of the trailing days ending on ``day``."""
    spec = usecase.model
    assert spec is not None
    if trailing is None or not windows:
        return {}
    out = {}
    for w, cols in windows.items():
        first = day - dt.timedelta(days=w - 1)
        part = trailing[(trailing["date"] >= first) & (trailing["date"] <= day)]
        sample = seeded_sample(part, usecase.monitoring.sample_size, day_seed(day), key)
        out[w] = drift_frame(sample, spec, cols)
    return out


def _row(
    day: DayDrift, base: dict[str, Any], feature: str, metric: str, col: ColumnDrift | None
) -> dict[str, Any]:
    if col is None:  # the dataset-level row
        o = day.outcome
        return {
            **base,
            "feature": feature,
            "metric": metric,
            "stattest": "share of drifted features",
            "statistic": o.share,
            "threshold": o.drift_share_threshold,
            "drifted": o.dataset_drift,
            "detail": o.summary(),
        }
    return {
        **base,
        "feature": feature,
        "metric": metric,
        "stattest": col.stattest,
        "statistic": col.statistic,
        "threshold": col.threshold,
        "drifted": col.drifted,
        "detail": col.detail,
    }


def drift_rows(
    day: DayDrift, model_name: str, computed_at: dt.datetime, run_id: str | None
) -> list[dict[str, Any]]:
    """The ``monitoring.drift_metrics`` rows of one day: per feature, the share, the score."""
    base = {
        "date": day.date,
        "model_name": model_name,
        "model_version": day.model_version,
        "rows": day.rows,
        "sample_size": day.sample_size,
        "sample_seed": day.seed,
        "reference_size": day.reference.size,
        "reference_uri": day.reference.uri,
        "report_uri": day.report_uri,
        "computed_at": computed_at,
        "run_id": run_id,
        "window_days": 1,
        "reference_table": day.reference.table,
        "reference_version": day.reference.table_version,
        "reference_start": day.reference.start,
        "reference_end": day.reference.end,
    }
    rows = [
        {**_row(day, base, f.feature, VALUE_DRIFT, f), "window_days": f.window_days}
        for f in day.outcome.features
    ]
    rows.append(_row(day, base, DATASET_FEATURE, DRIFT_SHARE, None))
    if day.outcome.prediction is not None:
        rows.append(_row(day, base, SCORE_FEATURE, PREDICTION_DRIFT, day.outcome.prediction))
    return rows


def drift_for_day(
    lakehouse: Lakehouse,
    usecase: UseCase,
    day: dt.date,
    frame: pd.DataFrame,
    model_version: int,
    windows: dict[int, pd.DataFrame] | None = None,
) -> DayDrift:
    """Sample one day's scored rows, compare them with the version's reference, store the HTML.

    ``windows`` maps a window length to the drift frame of the trailing days (see
    :func:`window_frames`), for the features declared with ``window_days`` > 1.
    """
    spec = usecase.model
    assert spec is not None
    started = time.perf_counter()
    columns = monitored_columns(usecase)
    reference = load_reference(lakehouse, usecase, model_version)
    seed = day_seed(day)
    sample = seeded_sample(frame, usecase.monitoring.sample_size, seed, row_key(usecase))
    outcome = compute_drift(
        drift_frame(reference.frame, spec, columns),
        drift_frame(sample, spec, columns),
        columns,
        usecase.monitoring,
        windows=windows,
        score_reference=drift_frame(reference.score_frame, spec, columns),
    )
    uri = lakehouse.write_bytes(
        report_path(spec.name, model_version, day), outcome.html().encode("utf-8")
    )
    seconds = time.perf_counter() - started
    log.info(f"drift {day} v{model_version}: {outcome.summary()} [{seconds:.1f}s]")
    return DayDrift(
        day, model_version, outcome, len(frame), len(sample), seed, reference, uri, seconds
    )


def monitor_drift(
    lakehouse: Lakehouse,
    usecase: UseCase,
    start: dt.date,
    end: dt.date,
    run_id: str | None = None,
) -> DriftRun:
    """Drift of every scored day in ``[start, end]``; replaces exactly those days' rows."""
    spec = usecase.model
    assert spec is not None
    key = row_key(usecase)
    inputs_version = lakehouse.version(INPUTS)
    predictions_version = lakehouse.version(PREDICTIONS)
    windows = windowed_features(usecase, monitored_columns(usecase))
    trailing = None
    if windows and inputs_version is not None:
        features = tuple(dict.fromkeys(c for cols in windows.values() for c in cols.all))
        first = start - dt.timedelta(days=max(windows) - 1)
        trailing = trailing_inputs(lakehouse, inputs_version, first, end, key, features)
    days: list[DayDrift] = []
    empty: list[dt.date] = []
    for day in days_between(start, end):
        if inputs_version is None or predictions_version is None:
            empty.append(day)
            continue
        frame = scored_day(lakehouse, day, inputs_version, predictions_version, key)
        if frame.empty:
            empty.append(day)
            continue
        trailing_frames = window_frames(trailing, day, windows, usecase, key)
        for version, part in frame.groupby("model_version", sort=True):
            days.append(drift_for_day(lakehouse, usecase, day, part, int(version), trailing_frames))
    if empty:
        log.info(f"no scored rows for {len(empty)} day(s): {', '.join(map(str, empty))}")
    computed_at = dt.datetime.now(dt.UTC)
    rows = [r for d in days for r in drift_rows(d, spec.name, computed_at, run_id)]
    read_versions = {
        k: v
        for k, v in ((INPUTS, inputs_version), (PREDICTIONS, predictions_version))
        if v is not None
    }
    written = replace_days(
        lakehouse,
        DRIFT_METRICS,
        rows,
        DRIFT_SCHEMA,
        start,
        end,
        commit_metadata={"read_versions": read_versions, "run_id": run_id},
    )
    return DriftRun(days, written, read_versions, empty)

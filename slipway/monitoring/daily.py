"""Drift of a range of scored days: read, sample, compare with the reference, store.

What makes it fast enough for 100k-row days: each day is read alone (partition pruning), joined
with the champion's scores, and sampled to ``MonitoringSpec.sample_size`` rows with a seed derived
from the date (so a re-run reproduces the same numbers); the reference is built once per model
version and cached; Evidently runs one lean report per day (see ``slipway.monitoring.drift``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow.dataset as pads

from slipway.lakehouse import Lakehouse, WriteResult, days_between
from slipway.monitoring.drift import ColumnDrift, DriftOutcome, compute_drift
from slipway.monitoring.reference import (
    ReferenceProfile,
    drift_frame,
    load_reference,
    monitored_columns,
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
    lakehouse: Lakehouse, day: dt.date, inputs_version: int, predictions_version: int
) -> pd.DataFrame:
    """A day's model inputs joined with the champion's score and version (one row each)."""
    inputs = lakehouse.read(INPUTS, version=inputs_version, dates=(day, day)).to_pandas()
    if inputs.empty:
        return inputs
    scores = lakehouse.read(
        PREDICTIONS,
        version=predictions_version,
        dates=(day, day),
        columns=["transaction_id", "model_version", "score"],
        filter=pads.field("role") == CHAMPION_ROLE,
    ).to_pandas()
    return inputs.merge(scores, on="transaction_id", how="inner", validate="one_to_one")


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
    }
    rows = [_row(day, base, f.feature, VALUE_DRIFT, f) for f in day.outcome.features]
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
    progress: Callable[[str], None] = log.info,
) -> DayDrift:
    """Sample one day's scored rows, compare them with the version's reference, store the HTML."""
    spec = usecase.model
    assert spec is not None
    started = time.perf_counter()
    columns = monitored_columns(usecase)
    reference = load_reference(lakehouse, usecase, model_version, progress=progress)
    seed = day_seed(day)
    sample = seeded_sample(frame, usecase.monitoring.sample_size, seed, "transaction_id")
    outcome = compute_drift(
        drift_frame(reference.frame, spec, columns),
        drift_frame(sample, spec, columns),
        columns,
        usecase.monitoring,
    )
    uri = lakehouse.write_bytes(
        report_path(spec.name, model_version, day), outcome.html().encode("utf-8")
    )
    seconds = time.perf_counter() - started
    progress(f"drift {day} v{model_version}: {outcome.summary()} [{seconds:.1f}s]")
    return DayDrift(
        day, model_version, outcome, len(frame), len(sample), seed, reference, uri, seconds
    )


def monitor_drift(
    lakehouse: Lakehouse,
    usecase: UseCase,
    start: dt.date,
    end: dt.date,
    run_id: str | None = None,
    progress: Callable[[str], None] = log.info,
) -> DriftRun:
    """Drift of every scored day in ``[start, end]``; replaces exactly those days' rows."""
    spec = usecase.model
    assert spec is not None
    inputs_version = lakehouse.version(INPUTS)
    predictions_version = lakehouse.version(PREDICTIONS)
    days: list[DayDrift] = []
    empty: list[dt.date] = []
    for day in days_between(start, end):
        if inputs_version is None or predictions_version is None:
            empty.append(day)
            continue
        frame = scored_day(lakehouse, day, inputs_version, predictions_version)
        if frame.empty:
            empty.append(day)
            continue
        for version, part in frame.groupby("model_version", sort=True):
            days.append(drift_for_day(lakehouse, usecase, day, part, int(version), progress))
    if empty:
        progress(f"no scored rows for {len(empty)} day(s): {', '.join(map(str, empty))}")
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

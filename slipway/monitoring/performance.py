"""Realised performance of scored days, once their labels can be trusted.

A scored day D is evaluated only when its labels have matured: ``D + maturity_days`` is on or
before the latest chargeback day present. Its label is "a chargeback reported on or before
``D + maturity_days``": a fixed horizon per day, so every day is judged on the same footing and a
re-run next month reproduces the same figures (late chargebacks do not quietly raise old days'
PR-AUC). The figures are compared with the champion's validation figures from the registry; a day
with fewer than ``min_positives_for_performance`` positives is recorded as such, never as degraded
(PR-AUC on three frauds is noise).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as pads

from slipway.lakehouse import Lakehouse, WriteResult, days_between
from slipway.monitoring.tables import (
    EVALUATED,
    PERFORMANCE,
    PERFORMANCE_SCHEMA,
    TOO_FEW_POSITIVES,
    replace_days,
)
from slipway.registry.store import ModelRegistry
from slipway.scoring.batch import PREDICTIONS
from slipway.training.metrics import compute_metrics
from slipway.usecase import UseCase

log = logging.getLogger(__name__)


@dataclass
class PerformanceRun:
    """What a run evaluated, and which days it had to leave for later."""

    rows: list[dict[str, Any]]
    written: WriteResult | None
    latest_label_day: dt.date | None
    matured_until: dt.date | None
    skipped: list[dt.date] = field(default_factory=list)
    read_versions: dict[str, int] = field(default_factory=dict)

    @property
    def evaluated_days(self) -> list[dt.date]:
        return sorted({r["date"] for r in self.rows})

    @property
    def degraded(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["degraded"]]


def latest_label_day(lakehouse: Lakehouse, usecase: UseCase, version: int) -> dt.date | None:
    """The latest day of the label stream present (what "labels have matured" is measured by)."""
    dates = lakehouse.read(f"silver.{usecase.label.stream}", version=version, columns=["date"])
    return pc.max(dates["date"]).as_py() if dates.num_rows else None


def matured_until(usecase: UseCase, latest: dt.date | None) -> dt.date | None:
    """The last scored day whose labels have matured, given the latest label day."""
    if latest is None:
        return None
    return latest - dt.timedelta(days=usecase.label.maturity_days)


def _evaluate_day(
    usecase: UseCase, frame: Any, positives: set[str], reference: dict[str, float]
) -> dict[str, Any]:
    spec = usecase.model
    assert spec is not None
    y = frame["transaction_id"].isin(positives).astype(int).to_numpy()
    scores = frame["score"].to_numpy()
    n_pos = int(y.sum())
    ref_pr, ref_recall = (
        reference.get("pr_auc", math.nan),
        reference.get("recall_at_precision", math.nan),
    )
    row: dict[str, Any] = {
        "rows": len(y),
        "positives": n_pos,
        "precision_target": spec.precision_target,
        "reference_pr_auc": ref_pr,
        "reference_recall": ref_recall,
        "pr_auc": math.nan,
        "recall_at_precision": math.nan,
        "pr_auc_drop": math.nan,
        "degraded": False,
        "status": TOO_FEW_POSITIVES,
    }
    if n_pos < usecase.monitoring.min_positives_for_performance or n_pos == len(y):
        return row
    m = compute_metrics(y, scores, spec.precision_target)
    drop = ref_pr - m.pr_auc
    row.update(
        pr_auc=m.pr_auc,
        recall_at_precision=m.recall_at_precision,
        pr_auc_drop=drop,
        degraded=bool(drop > usecase.monitoring.max_pr_auc_drop),
        status=EVALUATED,
    )
    return row


def evaluate_performance(
    lakehouse: Lakehouse,
    usecase: UseCase,
    start: dt.date,
    end: dt.date,
    run_id: str | None = None,
    progress: Callable[[str], None] = log.info,
) -> PerformanceRun:
    """Evaluate the matured days of ``[start, end]``; replaces exactly those days' rows."""
    spec = usecase.model
    assert spec is not None
    labels_name = f"silver.{usecase.label.stream}"
    labels_version = lakehouse.version(labels_name)
    predictions_version = lakehouse.version(PREDICTIONS)
    all_days = days_between(start, end)
    latest = (
        latest_label_day(lakehouse, usecase, labels_version) if labels_version is not None else None
    )
    until = matured_until(usecase, latest)
    matured = [d for d in all_days if until is not None and d <= until]
    skipped = [d for d in all_days if d not in matured]
    if skipped:
        progress(
            f"labels not matured for {len(skipped)} day(s) ({skipped[0]}..{skipped[-1]}): "
            f"latest {usecase.label.stream} day is {latest}, a day needs "
            f"{usecase.label.maturity_days} days after it"
        )
    if not matured or predictions_version is None or labels_version is None:
        return PerformanceRun([], None, latest, until, skipped)
    first, last = matured[0], matured[-1]
    scored = lakehouse.read(
        PREDICTIONS,
        version=predictions_version,
        dates=(first, last),
        columns=["date", "transaction_id", "model_version", "score"],
        filter=pads.field("role") == "champion",
    ).to_pandas()
    horizon = last + dt.timedelta(days=usecase.label.maturity_days)
    labels = lakehouse.read(
        labels_name,
        version=labels_version,
        columns=[usecase.label.key, "date"],
        dates=(first, horizon),
    ).to_pandas()
    registry = ModelRegistry(lakehouse)
    computed_at = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    for (day, version), frame in scored.groupby(["date", "model_version"], sort=True):
        as_of = day + dt.timedelta(days=usecase.label.maturity_days)
        positives = set(labels.loc[labels["date"] <= as_of, usecase.label.key])
        reference = registry.get(spec.name, int(version)).metrics
        row = _evaluate_day(usecase, frame, positives, reference)
        row.update(
            date=day,
            model_name=spec.name,
            model_version=int(version),
            labels_as_of=as_of,
            predictions_version=predictions_version,
            labels_version=labels_version,
            computed_at=computed_at,
            run_id=run_id,
        )
        rows.append(row)
        progress(
            f"performance {day} v{version}: {row['status']}, {row['positives']}/{row['rows']} "
            f"positives, PR-AUC {row['pr_auc']:.4f} vs {row['reference_pr_auc']:.4f}"
            f"{' DEGRADED' if row['degraded'] else ''}"
        )
    read_versions = {PREDICTIONS: predictions_version, labels_name: labels_version}
    written = replace_days(
        lakehouse,
        PERFORMANCE,
        rows,
        PERFORMANCE_SCHEMA,
        first,
        last,
        commit_metadata={"read_versions": read_versions, "run_id": run_id},
    )
    return PerformanceRun(rows, written, latest, until, skipped, read_versions)

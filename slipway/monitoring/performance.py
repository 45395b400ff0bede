"""Realised performance of scored days, once their labels can be trusted, judged like with like.

When a day's labels are trusted. A scored day D is evaluated only when its labels have matured:
``D + maturity_days`` is on or before the latest label day present. Labels come from the use
case's :class:`~slipway.usecase.LabelSpec`:

* ``stream``: "a positive reported on or before ``D + maturity_days``": a fixed horizon per day,
  so every day is judged on the same footing and a re-run next month reproduces the same figures
  (late positives do not quietly raise old days' figures); the latest label day is the label
  stream's;
* ``rule``: the examples' own columns through ``LabelRule.positive``; rows ``LabelRule.exclude``
  marks have no label and are dropped (counted in ``excluded``); the latest label day is the
  examples table's.

How a day is judged, and why this test. The old rule compared a day's PR-AUC with the *pooled*
validation PR-AUC. PR-AUC is not an average over days: on few positives it is biased low and
very noisy (on a real use case the champion's own validation days averaged 0.44 against 0.54
pooled), so quiet days tripped the alert and the platform retrained almost every week. The
verdict now comes from a figure that *is* additive, with a test that knows how many positives
the day had:

* the champion's operating threshold ``t`` is the one that reached ``ModelSpec.precision_target``
  on its validation set, and ``r0`` the share of validation positives scoring at or above ``t``
  (both from :class:`~slipway.monitoring.reference.PerformanceBaseline`, recomputed from the
  version's validation predictions when its reference is built);
* on a day with ``n`` positives of which ``k`` score at or above ``t``, a model as good as on
  validation catches ``k ~ Binomial(n, r0)``; positives are not independent (they may come in
  runs that are caught or missed together), so ``n`` and ``k`` are divided by the dispersion ``phi``
  measured on the validation days (the Pearson statistic of their caught counts, >= 1), a
  quasi-binomial test;
* the day is degraded when ``P(K <= k)`` is below ``MonitoringSpec.performance_alpha`` *and* its
  recall ``k / n`` is at least ``min_recall_drop`` below ``r0`` (a significant but trivial drop on
  a huge day is not worth a retrain).

A quiet day (five positives, two caught where 60% was usual) has ``P(K <= 2)`` around 0.3: no
alert. A genuinely degraded day (forty positives, five caught) has a p-value far below 1%: alert.
The day's PR-AUC is still recorded, against the *median of the per-day validation PR-AUCs*
(like with like), for people and charts; it no longer decides. Days with fewer than
``min_positives_for_performance`` positives are recorded as such and not judged.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as pads
from scipy.special import betainc

from slipway.lakehouse import Lakehouse, WriteResult, days_between
from slipway.monitoring.reference import PerformanceBaseline, load_reference, row_key
from slipway.monitoring.tables import (
    EVALUATED,
    PERFORMANCE,
    PERFORMANCE_SCHEMA,
    TOO_FEW_POSITIVES,
    replace_days,
)
from slipway.scoring.batch import PREDICTIONS
from slipway.training.metrics import compute_metrics
from slipway.usecase import MonitoringSpec, UseCase

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


def labels_table(usecase: UseCase) -> str:
    """The table labels are read from: the label stream's silver table, or the examples."""
    if usecase.label.kind == "stream":
        return f"silver.{usecase.label.stream}"
    if usecase.examples is None:
        raise ValueError(f"{usecase.name}: a rule label needs the use case's examples table")
    return usecase.examples.table


def latest_label_day(lakehouse: Lakehouse, usecase: UseCase, version: int) -> dt.date | None:
    """The latest day of the label table present (what "labels have matured" is measured by)."""
    dates = lakehouse.read(labels_table(usecase), version=version, columns=["date"])
    return pc.max(dates["date"]).as_py() if dates.num_rows else None


def matured_until(usecase: UseCase, latest: dt.date | None) -> dt.date | None:
    """The last scored day whose labels have matured, given the latest label day."""
    if latest is None:
        return None
    return latest - dt.timedelta(days=usecase.label.maturity_days)


def shortfall_p_value(caught: int, positives: int, recall: float, dispersion: float = 1.0) -> float:
    """One-sided p-value of catching ``caught`` or fewer of ``positives`` at recall ``recall``.

    Quasi-binomial: counts are divided by ``dispersion`` (>= 1) before the exact binomial CDF,
    written with the regularised incomplete beta so that the scaled counts need not be integers
    (``P(K <= k) = I_{1-p}(n - k, k + 1)``).
    """
    if positives <= 0 or recall <= 0:
        return 1.0
    if recall >= 1:
        return 0.0 if caught < positives else 1.0
    if caught >= positives:
        return 1.0
    phi = max(1.0, dispersion)
    n, k = positives / phi, caught / phi
    return float(betainc(n - k, k + 1, 1 - recall))


def judge_day(
    y: np.ndarray,
    scores: np.ndarray,
    baseline: PerformanceBaseline,
    monitoring: MonitoringSpec,
    precision_target: float,
) -> dict[str, Any]:
    """A day's figures and verdict against the version's validation baseline."""
    n_pos = int(y.sum())
    reference_daily = baseline.median_daily_pr_auc
    row: dict[str, Any] = {
        "rows": len(y),
        "positives": n_pos,
        "precision_target": precision_target,
        "reference_pr_auc": reference_daily,
        "reference_pooled_pr_auc": baseline.pooled_pr_auc,
        "reference_recall": baseline.recall,
        "reference_recall_at_threshold": baseline.recall,
        "operating_threshold": baseline.threshold,
        "dispersion": baseline.dispersion,
        "pr_auc": math.nan,
        "recall_at_precision": math.nan,
        "recall_at_threshold": math.nan,
        "caught": int(((scores >= baseline.threshold) & (y == 1)).sum()),
        "p_value": math.nan,
        "pr_auc_drop": math.nan,
        "degraded": False,
        "status": TOO_FEW_POSITIVES,
    }
    if n_pos < monitoring.min_positives_for_performance or n_pos == len(y) or n_pos == 0:
        return row
    m = compute_metrics(y, scores, precision_target)
    recall = row["caught"] / n_pos
    p_value = shortfall_p_value(row["caught"], n_pos, baseline.recall, baseline.dispersion)
    row.update(
        pr_auc=m.pr_auc,
        recall_at_precision=m.recall_at_precision,
        recall_at_threshold=recall,
        p_value=p_value,
        pr_auc_drop=reference_daily - m.pr_auc,
        degraded=bool(
            p_value < monitoring.performance_alpha
            and baseline.recall - recall >= monitoring.min_recall_drop
        ),
        status=EVALUATED,
    )
    return row


def _labelled(
    lakehouse: Lakehouse,
    usecase: UseCase,
    scored: pd.DataFrame,
    version: int,
    first: dt.date,
    last: dt.date,
) -> pd.DataFrame:
    """``scored`` with a 0/1 ``_label`` column; excluded rows (rule labels) get -1."""
    key = row_key(usecase)
    label = usecase.label
    if label.kind == "stream":
        horizon = last + dt.timedelta(days=label.maturity_days)
        positives = lakehouse.read(
            labels_table(usecase),
            version=version,
            columns=[label.key, "date"],
            dates=(first, horizon),
        ).to_pandas()
        first_report = positives.groupby(label.key)["date"].min()
        reported = scored[key].map(first_report)
        as_of = scored["date"].map(lambda d: d + dt.timedelta(days=label.maturity_days))
        is_pos = reported.notna() & (reported.fillna(dt.date.max) <= as_of)
        return scored.assign(_label=is_pos.astype(int).to_numpy())
    rule = label.rule
    assert rule is not None
    examples = lakehouse.read(
        labels_table(usecase),
        version=version,
        columns=list(dict.fromkeys([key, *rule.columns])),
        dates=(first, last),
    ).to_pandas()
    joined = scored.merge(examples, on=key, how="left", validate="one_to_one")
    values = rule.positive(joined).fillna(False).astype(bool).astype(int)
    if rule.exclude is not None:
        values = values.where(~rule.exclude(joined).fillna(False).astype(bool), -1)
    return scored.assign(_label=values.to_numpy())


def evaluate_performance(
    lakehouse: Lakehouse,
    usecase: UseCase,
    start: dt.date,
    end: dt.date,
    run_id: str | None = None,
) -> PerformanceRun:
    """Evaluate the matured days of ``[start, end]``; replaces exactly those days' rows."""
    spec = usecase.model
    assert spec is not None
    key = row_key(usecase)
    labels_name = labels_table(usecase)
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
        log.info(
            f"labels not matured for {len(skipped)} day(s) ({skipped[0]}..{skipped[-1]}): "
            f"latest {labels_name} day is {latest}, a day needs "
            f"{usecase.label.maturity_days} days after it"
        )
    if not matured or predictions_version is None or labels_version is None:
        return PerformanceRun([], None, latest, until, skipped)
    first, last = matured[0], matured[-1]
    scored = lakehouse.read(
        PREDICTIONS,
        version=predictions_version,
        dates=(first, last),
        columns=["date", key, "model_version", "score"],
        filter=pads.field("role") == "champion",
    ).to_pandas()
    scored = _labelled(lakehouse, usecase, scored, labels_version, first, last)
    computed_at = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    for (day, version), frame in scored.groupby(["date", "model_version"], sort=True):
        baseline = load_reference(lakehouse, usecase, int(version)).baseline
        assert baseline is not None
        kept = frame[frame["_label"] >= 0]
        row = judge_day(
            kept["_label"].to_numpy(),
            kept["score"].to_numpy(),
            baseline,
            usecase.monitoring,
            spec.precision_target,
        )
        row.update(
            date=day,
            model_name=spec.name,
            model_version=int(version),
            labels_as_of=day + dt.timedelta(days=usecase.label.maturity_days),
            predictions_version=predictions_version,
            labels_version=labels_version,
            labels_table=labels_name,
            excluded=len(frame) - len(kept),
            computed_at=computed_at,
            run_id=run_id,
        )
        rows.append(row)
        log.info(
            f"performance {day} v{version}: {row['status']}, {row['positives']}/{row['rows']} "
            f"positives, {row['caught']} caught at {baseline.threshold:.3f} (recall "
            f"{row['recall_at_threshold']:.3f} vs {baseline.recall:.3f}, p {row['p_value']:.3g}); "
            f"PR-AUC {row['pr_auc']:.4f} vs daily median {row['reference_pr_auc']:.4f}"
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

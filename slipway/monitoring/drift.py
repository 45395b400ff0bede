"""Drift of one scored day against a model version's reference, computed by Evidently 0.7.

One Evidently ``Report`` per day holds one ``ValueDrift`` per monitored feature plus one on the
champion's score (prediction drift). Why not ``DataDriftPreset``: the preset computes every
column's test three times (its ``DriftedColumnsCount``, one ``ValueDrift`` per column, and the
legacy drift table it renders) and builds two sets of plots; on 20k x 30 it takes about twice as
long for the same numbers (see ``benchmarks/monitoring.py``). The share of drifted features is
then counted here from the per-column verdicts, which is exactly Evidently's own definition
(drifted columns / columns; a unit test holds the two equal).

Each column's verdict is Evidently's: the statistical test and threshold are the spec's for the
column's kind (numeric, categorical, the score) when declared, otherwise Evidently chooses from
the column type and sample size (Wasserstein for numerics, Jensen-Shannon for categoricals above
1,000 reference rows, p-value tests below); "drifted" is the failed status of the column's drift
test in the snapshot (the direction depends on the test: p-values drift below it, distances above).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from slipway.monitoring.reference import SCORE, MonitoredColumns
from slipway.usecase import MonitoringSpec

ColumnKind = Literal["numeric", "categorical", "score"]


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict: Evidently's statistic against its threshold."""

    feature: str
    kind: ColumnKind
    stattest: str | None
    statistic: float
    threshold: float | None
    drifted: bool
    detail: str | None = None


@dataclass
class DriftOutcome:
    """A day's drift: per feature, the share of drifted features, and prediction drift."""

    features: list[ColumnDrift]
    prediction: ColumnDrift | None
    drift_share_threshold: float
    current_rows: int
    reference_rows: int
    snapshot: Any = field(repr=False, default=None)

    @property
    def evaluated(self) -> list[ColumnDrift]:
        return [f for f in self.features if f.stattest is not None or f.drifted]

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def share(self) -> float:
        evaluated = self.evaluated
        return len(self.drifted_features) / len(evaluated) if evaluated else 0.0

    @property
    def dataset_drift(self) -> bool:
        """The day drifts when the share reaches the spec's ``drift_share`` (Evidently's rule)."""
        return bool(self.evaluated) and self.share >= self.drift_share_threshold

    @property
    def prediction_drift(self) -> bool:
        return bool(self.prediction and self.prediction.drifted)

    @property
    def drifted(self) -> bool:
        return self.dataset_drift or self.prediction_drift

    def html(self) -> str:
        """The Evidently report as a standalone HTML page (scripts inlined, opens offline)."""
        if self.snapshot is None:
            return "<html><body><p>No column could be evaluated for drift.</p></body></html>"
        # Snapshot.save_html() silently writes nothing when given a file object: use the string.
        return self.snapshot.get_html_str(as_iframe=False)

    def summary(self) -> str:
        drifted = ", ".join(self.drifted_features) or "none"
        text = (
            f"{len(self.drifted_features)}/{len(self.evaluated)} features drifted "
            f"(share {self.share:.2f}, day drifts at {self.drift_share_threshold:.2f}): {drifted}"
        )
        if self.prediction is not None:
            p = self.prediction
            text += (
                f"; prediction {p.stattest} {p.statistic:.4f} vs {p.threshold}"
                f"{' DRIFTED' if p.drifted else ''}"
            )
        return text


def _non_empty(series: pd.Series) -> int:
    values = series.replace([np.inf, -np.inf], np.nan) if series.dtype.kind == "f" else series
    return int(values.notna().sum())


def _unevaluable(
    name: str, kind: ColumnKind, current: pd.DataFrame, reference: pd.DataFrame
) -> ColumnDrift | None:
    """A verdict for a column Evidently cannot test (it raises on an all-missing column).

    A feature that vanished from the current day while the reference had it is drift (a broken
    feature pipeline is exactly what monitoring must catch); one the reference never had cannot
    be judged and is left out of the share.
    """
    ref_n, cur_n = _non_empty(reference[name]), _non_empty(current[name])
    if ref_n == 0:
        return ColumnDrift(
            name, kind, None, math.nan, None, False, "no values in the reference: not evaluated"
        )
    if cur_n == 0:
        return ColumnDrift(
            name,
            kind,
            None,
            math.nan,
            None,
            True,
            f"no values in the current sample ({ref_n} in the reference): feature missing",
        )
    return None


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: MonitoredColumns,
    monitoring: MonitoringSpec,
) -> DriftOutcome:
    """Compare ``current`` with ``reference`` (both as ``drift_frame`` returns them).

    Prediction drift is computed when both frames carry a ``score`` column.
    """
    kinds: dict[str, ColumnKind] = {
        **dict.fromkeys(columns.numeric, "numeric"),
        **dict.fromkeys(columns.categorical, "categorical"),
    }
    if SCORE in reference.columns and SCORE in current.columns:
        kinds[SCORE] = "score"
    verdicts: dict[str, ColumnDrift] = {}
    tested: list[str] = []
    for name, kind in kinds.items():
        skipped = _unevaluable(name, kind, current, reference)
        if skipped is not None:
            verdicts[name] = skipped
        else:
            tested.append(name)
    snapshot = None
    if tested:
        # Imported here: evidently takes seconds to import, and the code location and the alert
        # sensor import this package without ever computing drift.
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import ValueDrift

        definition = DataDefinition(
            numerical_columns=[c for c in tested if kinds[c] != "categorical"],
            categorical_columns=[c for c in tested if kinds[c] == "categorical"],
        )
        # include_tests=True: the per-column "drifted" verdict only exists as a test status.
        report = Report(
            [ValueDrift(column=c, **_test_for(kinds[c], monitoring)) for c in tested],
            include_tests=True,
        )
        snapshot = report.run(
            Dataset.from_pandas(current[tested].reset_index(drop=True), data_definition=definition),
            Dataset.from_pandas(
                reference[tested].reset_index(drop=True), data_definition=definition
            ),
        )
        verdicts.update(_parse(snapshot.dict(), kinds))
    features = [verdicts[c] for c in kinds if kinds[c] != "score"]
    return DriftOutcome(
        features=features,
        prediction=verdicts.get(SCORE),
        drift_share_threshold=monitoring.drift_share,
        current_rows=len(current),
        reference_rows=len(reference),
        snapshot=snapshot,
    )


def _test_for(kind: str, monitoring: MonitoringSpec) -> dict[str, object]:
    """The spec's method and threshold for a column of ``kind`` (empty: Evidently's choice)."""
    method, threshold = {
        "categorical": (monitoring.categorical_stattest, monitoring.categorical_threshold),
        "score": (monitoring.prediction_stattest, monitoring.prediction_threshold),
    }.get(kind, (monitoring.numeric_stattest, monitoring.numeric_threshold))
    test: dict[str, object] = {}
    if method is not None:
        test["method"] = method
    if threshold is not None:
        test["threshold"] = threshold
    return test


def _parse(result: dict[str, Any], kinds: dict[str, ColumnKind]) -> dict[str, ColumnDrift]:
    """Per-column verdicts from ``Snapshot.dict()``: metric values joined to test statuses."""
    status = {t["metric_config"]["metric_id"]: t["status"] for t in result.get("tests", [])}
    out: dict[str, ColumnDrift] = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if not config.get("type", "").endswith(":ValueDrift"):
            continue
        name = config["column"]
        verdict = status.get(metric["id"])
        if verdict not in ("SUCCESS", "FAIL"):
            raise RuntimeError(f"Evidently gave no drift verdict for {name!r} (status {verdict})")
        threshold = config.get("threshold")
        out[name] = ColumnDrift(
            feature=name,
            kind=kinds[name],
            stattest=config.get("method"),
            statistic=float(metric["value"]),
            threshold=None if threshold is None else float(threshold),
            drifted=verdict == "FAIL",
        )
    return out

"""Drift of one scored day against a model version's reference, computed by Evidently 0.7.

One Evidently ``Report`` per day holds one ``ValueDrift`` per monitored feature plus one on the
champion's score (prediction drift). Why not ``DataDriftPreset``: the preset computes every
column's test three times (its ``DriftedColumnsCount``, one ``ValueDrift`` per column, and the
legacy drift table it renders) and builds two sets of plots; on 20k x 30 it takes about twice as
long for the same numbers (see ``benchmarks/monitoring.py``). The share of drifted features is
then counted here from the per-column verdicts, which is exactly Evidently's own definition
(drifted columns / columns; a unit test holds the two equal).

Each column's verdict is Evidently's: the statistical test and threshold are the feature's own
(``MonitoringSpec.feature_drift``), else the spec's for the column's kind (numeric, categorical,
the score) when declared, otherwise Evidently chooses from
the column type and sample size (Wasserstein for numerics, Jensen-Shannon for categoricals above
1,000 reference rows, p-value tests below); "drifted" is the failed status of the column's drift
test in the snapshot (the direction depends on the test: p-values drift below it, distances above).

Columns are compared in groups that share a current and a reference frame, one Evidently report
per group: the day's own rows; for each ``window_days`` > 1, the trailing window of that many
days (a feature constant within a day has too few values in one day); and the score, against
the reference's out-of-sample scores only. Most use cases have one group and one report.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
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
    window_days: int = 1


@dataclass
class DriftOutcome:
    """A day's drift: per feature, the share of drifted features, and prediction drift."""

    features: list[ColumnDrift]
    prediction: ColumnDrift | None
    drift_share_threshold: float
    current_rows: int
    reference_rows: int
    snapshot: Any = field(repr=False, default=None)
    # every report of the day, labelled (the first is ``snapshot``)
    snapshots: list[tuple[str, Any]] = field(repr=False, default_factory=list)

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
        if len(self.snapshots) <= 1:
            return self.snapshot.get_html_str(as_iframe=False)
        # Several reports (multi-day windows, the score): one page, each report in its own frame.
        parts = [
            f"<h2>{html.escape(label)}</h2><iframe style='width:100%;height:900px;border:0' "
            f'srcdoc="{html.escape(snap.get_html_str(as_iframe=False), quote=True)}"></iframe>'
            for label, snap in self.snapshots
        ]
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Drift</title></head><body>"
            + "".join(parts)
            + "</body></html>"
        )

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
    *,
    windows: Mapping[int, pd.DataFrame] | None = None,
    score_reference: pd.DataFrame | None = None,
) -> DriftOutcome:
    """Compare ``current`` with ``reference`` (both as ``drift_frame`` returns them).

    A feature whose rule has ``window_days`` = w > 1 is compared on ``windows[w]`` (the trailing
    w days, as ``drift_frame`` returns them) instead of ``current``; without it the feature is
    not evaluated (left out of the share), since one day of it cannot be judged. Prediction drift is computed when both frames carry a ``score`` column, against
    ``score_reference`` when given (the reference's out-of-sample rows).
    """
    kinds: dict[str, ColumnKind] = {
        **dict.fromkeys(columns.numeric, "numeric"),
        **dict.fromkeys(columns.categorical, "categorical"),
    }
    score_ref = reference if score_reference is None else score_reference
    if SCORE in score_ref.columns and SCORE in current.columns:
        kinds[SCORE] = "score"
    windows = windows or {}
    # group the columns by (current frame, reference frame) they are compared on
    groups: dict[tuple[str, int], list[str]] = {}
    frames: dict[tuple[str, int], tuple[pd.DataFrame, pd.DataFrame]] = {}
    window_of: dict[str, int] = {}
    verdicts: dict[str, ColumnDrift] = {}
    for name, kind in kinds.items():
        w = monitoring.feature_rule(name).window_days if kind != "score" else 1
        window_of[name] = w
        if w > 1 and w not in windows:
            # one day of a feature declared constant within a day says nothing: not judged
            verdicts[name] = ColumnDrift(
                name, kind, None, math.nan, None, False,
                f"needs a {w}-day window, none given: not evaluated", w,
            )  # fmt: skip
            continue
        if kind == "score" and score_reference is not None:
            key = ("score", 1)
            frames[key] = (current, score_ref)
        elif w > 1:
            key = ("window", w)
            frames[key] = (windows[w], reference)
        else:
            key = ("day", 1)
            frames[key] = (current, reference)
        groups.setdefault(key, []).append(name)
    snapshots: list[tuple[str, Any]] = []
    for key, names in sorted(groups.items(), key=lambda kv: (kv[0][0] != "day", kv[0])):
        cur, ref = frames[key]
        tested = []
        for name in names:
            skipped = _unevaluable(name, kinds[name], cur, ref)
            if skipped is not None:
                verdicts[name] = skipped
            else:
                tested.append(name)
        if not tested:
            continue
        snapshot = _run_report(ref, cur, tested, kinds, monitoring)
        label = {"day": "the day", "score": "the score (out-of-sample reference)"}.get(
            key[0], f"trailing {key[1]} days"
        )
        snapshots.append((label, snapshot))
        verdicts.update(_parse(snapshot.dict(), kinds))
    for name, w in window_of.items():
        if w > 1 and name in verdicts and verdicts[name].window_days != w:
            v = verdicts[name]
            verdicts[name] = ColumnDrift(
                v.feature, v.kind, v.stattest, v.statistic, v.threshold, v.drifted, v.detail, w
            )
    features = [verdicts[c] for c in kinds if kinds[c] != "score"]
    return DriftOutcome(
        features=features,
        prediction=verdicts.get(SCORE),
        drift_share_threshold=monitoring.drift_share,
        current_rows=len(current),
        reference_rows=len(reference),
        snapshot=snapshots[0][1] if snapshots else None,
        snapshots=snapshots,
    )


def _run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    tested: list[str],
    kinds: dict[str, ColumnKind],
    monitoring: MonitoringSpec,
) -> Any:
    """One lean Evidently report: a ``ValueDrift`` per tested column, tests included."""
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
        [ValueDrift(column=c, **_test_for(kinds[c], monitoring, c)) for c in tested],
        include_tests=True,
    )
    return report.run(
        Dataset.from_pandas(current[tested].reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(reference[tested].reset_index(drop=True), data_definition=definition),
    )


def _test_for(kind: str, monitoring: MonitoringSpec, name: str | None = None) -> dict[str, object]:
    """The feature's method and threshold, else its kind's (empty: Evidently's choice)."""
    method, threshold = {
        "categorical": (monitoring.categorical_stattest, monitoring.categorical_threshold),
        "score": (monitoring.prediction_stattest, monitoring.prediction_threshold),
    }.get(kind, (monitoring.numeric_stattest, monitoring.numeric_threshold))
    if name is not None:
        rule = monitoring.feature_rule(name)
        if rule.stattest is not None and rule.stattest != method:
            # the kind's threshold belongs to the kind's test: a different test has its own scale
            method, threshold = rule.stattest, None
        if rule.threshold is not None:
            threshold = rule.threshold
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

"""Alerts for the automation: drifted or degraded days, newer than a cursor.

A sensor polls :func:`pending_alerts` with the cursor it stored last time and acts on what comes
back (e.g. launches a retrain keyed by ``evidence_key``). The cursor of an alert is
``"{computed_at}|{date}|{kind}|v{version}"`` with a fixed-width UTC timestamp, so plain string
comparison orders alerts by when they were computed; a re-computed day gets a new ``computed_at``
and therefore alerts again, with the same ``evidence_key`` (use it as the run key to deduplicate).

Bad data is not drift: a day whose silver contract tripped the circuit breaker on any input
stream (``audit.<stream>``, written by ingestion) is suppressed, never alerted. The suppressed
alerts are still reported by :func:`scan_alerts` with the reason, and they advance its cursor, so
the sensor does not see them again until the day is recomputed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from slipway.lakehouse import Lakehouse
from slipway.monitoring.tables import (
    DRIFT_METRICS,
    DRIFT_SHARE,
    EVALUATED,
    PERFORMANCE,
    PREDICTION_DRIFT,
    VALUE_DRIFT,
)
from slipway.usecase import UseCase

AlertKind = Literal["drift", "performance"]
CURSOR_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Alert:
    """One day that needs acting on, with the evidence to show a person."""

    kind: AlertKind
    date: dt.date
    model_name: str
    model_version: int
    reason: str
    report_uri: str | None
    evidence_key: str
    cursor: str
    computed_at: dt.datetime
    run_id: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class AlertScan:
    """Everything newer than the cursor: alerts, suppressed ones with why, and the next cursor."""

    alerts: list[Alert]
    suppressed: list[tuple[Alert, str]]
    cursor: str | None


def make_cursor(computed_at: dt.datetime, day: dt.date, kind: str, version: int) -> str:
    """A sortable cursor: fixed-width UTC time first, then day, kind and version."""
    stamp = pd.Timestamp(computed_at).tz_convert("UTC").strftime(CURSOR_TIME)
    return f"{stamp}|{day.isoformat()}|{kind}|v{version:06d}"


def evidence_key(kind: str, day: dt.date, version: int) -> str:
    return f"{kind}:{day.isoformat()}:v{version}"


def contract_failures(
    lakehouse: Lakehouse, usecase: UseCase, days: set[dt.date]
) -> dict[dt.date, str]:
    """Days whose silver contract tripped the circuit breaker on an input stream, with why.

    The label stream is left out: late or bad labels say nothing about the day's inputs.
    """
    failed: dict[dt.date, str] = {}
    if not days:
        return failed
    for stream in usecase.streams:
        if stream.name == usecase.label.stream:
            continue
        name = f"audit.{stream.name}"
        if not lakehouse.exists(name):
            continue
        audit = lakehouse.read(
            name,
            columns=["date", "breaker_tripped", "breaker_reason"],
            dates=(min(days), max(days)),
        ).to_pylist()
        for row in audit:
            if row["breaker_tripped"] and row["date"] in days:
                failed.setdefault(
                    row["date"], f"{stream.name} contract failed: {row['breaker_reason']}"
                )
    return failed


@dataclass(frozen=True)
class DriftDay:
    """The verdict of one day x model version, read from its ``monitoring.drift_metrics`` rows.

    The one place the rows are turned into "did this day drift, and why": the alerts, the drift
    asset's check and the calibration tool all use it.
    """

    date: dt.date
    model_version: int
    dataset_drift: bool
    prediction_drift: bool
    share: float | None
    share_threshold: float | None
    prediction_stattest: str | None
    prediction_statistic: float | None
    prediction_threshold: float | None
    features: int
    drifted_features: tuple[str, ...]
    feature_text: str
    reference_window: tuple[dt.date, dt.date] | None
    rows: pd.DataFrame = field(repr=False, compare=False)

    @property
    def drifted(self) -> bool:
        return self.dataset_drift or self.prediction_drift

    def in_reference(self) -> bool:
        """Whether the day is inside the reference it was compared with (never news)."""
        w = self.reference_window
        return w is not None and w[0] <= self.date <= w[1]

    def reason(self) -> str:
        parts = []
        if self.share is not None:
            parts.append(
                f"{len(self.drifted_features)} of {self.features} features drifted "
                f"(share {self.share:.2f}, threshold {self.share_threshold:.2f})"
                + (f": {self.feature_text}" if self.feature_text else "")
            )
        if self.prediction_statistic is not None:
            parts.append(
                f"prediction drift {self.prediction_stattest} {self.prediction_statistic:.4f} "
                f"{'>=' if self.prediction_drift else '<'} {self.prediction_threshold}"
            )
        return "; ".join(parts)


def _date(value: Any) -> dt.date | None:
    if value is None or (not isinstance(value, dt.date) and pd.isna(value)):
        return None
    return pd.Timestamp(value).date() if not isinstance(value, dt.date) else value


def drift_days(rows: pd.DataFrame) -> list[DriftDay]:
    """One :class:`DriftDay` per (date, model version) of ``monitoring.drift_metrics`` rows."""
    out = []
    if rows.empty:
        return out
    for (day, version), group in rows.groupby(["date", "model_version"], sort=True):
        by_metric = {m: g.iloc[0] for m, g in group.groupby("metric")}
        share = by_metric.get(DRIFT_SHARE)
        prediction = by_metric.get(PREDICTION_DRIFT)
        value = group[group["metric"] == VALUE_DRIFT]
        features = value[value["drifted"]]
        feature_text = ", ".join(
            f"{r.feature} ({r.statistic:.3f})"
            if pd.notna(r.statistic)
            else f"{r.feature} (missing)"
            for r in features.itertuples()
        )
        window = None
        if "reference_start" in group.columns:
            first = group.iloc[0]
            start, end = _date(first["reference_start"]), _date(first["reference_end"])
            window = (start, end) if start and end else None
        out.append(
            DriftDay(
                date=day,
                model_version=int(version),
                dataset_drift=share is not None and bool(share["drifted"]),
                prediction_drift=prediction is not None and bool(prediction["drifted"]),
                share=float(share["statistic"]) if share is not None else None,
                share_threshold=float(share["threshold"]) if share is not None else None,
                prediction_stattest=prediction["stattest"] if prediction is not None else None,
                prediction_statistic=float(prediction["statistic"])
                if prediction is not None
                else None,
                prediction_threshold=prediction["threshold"] if prediction is not None else None,
                features=len(value),
                drifted_features=tuple(features["feature"]),
                feature_text=feature_text,
                reference_window=window,
                rows=group,
            )
        )
    return out


def _drift_alerts(rows: pd.DataFrame) -> list[Alert]:
    alerts = []
    for d in drift_days(rows):
        if not d.drifted:
            continue
        first = d.rows.iloc[0]
        computed_at = first["computed_at"].to_pydatetime()
        alerts.append(
            Alert(
                kind="drift",
                date=d.date,
                model_name=first["model_name"],
                model_version=d.model_version,
                reason=f"drift on {d.date} for v{d.model_version}: " + d.reason(),
                report_uri=first["report_uri"],
                evidence_key=evidence_key("drift", d.date, d.model_version),
                cursor=make_cursor(computed_at, d.date, "drift", d.model_version),
                computed_at=computed_at,
                run_id=first["run_id"],
                details={
                    "drift_share": d.share,
                    "dataset_drift": d.dataset_drift,
                    "prediction_drift": d.prediction_drift,
                    "prediction_statistic": d.prediction_statistic,
                    "drifted_features": list(d.drifted_features),
                    "reference_window": [str(x) for x in d.reference_window]
                    if d.reference_window
                    else None,
                },
            )
        )
    return alerts


def _performance_alerts(rows: pd.DataFrame) -> list[Alert]:
    alerts = []
    for r in rows[(rows["status"] == EVALUATED) & rows["degraded"]].itertuples():
        computed_at = r.computed_at.to_pydatetime()
        reason = (
            f"performance on {r.date} for v{r.model_version}: {r.caught} of {r.positives} "
            f"positives caught at the validation operating threshold {r.operating_threshold:.3f} "
            f"(recall {r.recall_at_threshold:.3f} vs {r.reference_recall_at_threshold:.3f} on "
            f"validation, p {r.p_value:.2g}); PR-AUC {r.pr_auc:.4f} vs a median validation day's "
            f"{r.reference_pr_auc:.4f}; {r.rows} rows"
        )
        alerts.append(
            Alert(
                kind="performance",
                date=r.date,
                model_name=r.model_name,
                model_version=int(r.model_version),
                reason=reason,
                report_uri=None,
                evidence_key=evidence_key("performance", r.date, int(r.model_version)),
                cursor=make_cursor(computed_at, r.date, "performance", int(r.model_version)),
                computed_at=computed_at,
                run_id=r.run_id,
                details={
                    "caught": int(r.caught),
                    "recall_at_threshold": r.recall_at_threshold,
                    "reference_recall_at_threshold": r.reference_recall_at_threshold,
                    "p_value": r.p_value,
                    "pr_auc": r.pr_auc,
                    "reference_pr_auc": r.reference_pr_auc,
                    "pr_auc_drop": r.pr_auc_drop,
                    "recall_at_precision": r.recall_at_precision,
                    "reference_recall": r.reference_recall,
                    "positives": int(r.positives),
                    "rows": int(r.rows),
                },
            )
        )
    return alerts


def _newer(lakehouse: Lakehouse, name: str, model_name: str, after: str | None) -> pd.DataFrame:
    """Rows of ``name`` for the model whose ``computed_at`` is not older than the cursor's."""
    if not lakehouse.exists(name):
        return pd.DataFrame()
    expr = pads.field("model_name") == model_name
    if after:
        since = dt.datetime.strptime(after.split("|", 1)[0], CURSOR_TIME).replace(tzinfo=dt.UTC)
        expr &= pads.field("computed_at") >= pa.scalar(since, type=pa.timestamp("us", tz="UTC"))
    return lakehouse.read_pandas(name, filter=expr)


def training_window_end(lakehouse: Lakehouse, model_name: str) -> dt.date | None:
    """The last day of the champion's training data (the end of its validation window), if any.

    Days up to it are the model's own reference, not news: neither an alert nor a warning. (The
    training set's as-of day is later: examples after as-of minus the label maturity were not
    matured, so they are not in it.)
    """
    from slipway.registry.store import CHAMPION, ModelRegistry

    registry = ModelRegistry(lakehouse)
    champion = registry.alias(model_name, CHAMPION)
    if champion is None:
        return None
    window = registry.get(model_name, champion).training_set.get("valid_window") or []
    return dt.date.fromisoformat(str(window[-1])) if window else None


def _stale_reasons(
    lakehouse: Lakehouse, model_name: str, candidates: list[Alert]
) -> dict[str, str]:
    """Alerts that no longer call for action: not about the current champion, or about a day the
    champion was trained on (its training set's as-of day or earlier), or a day inside the drift
    reference it was compared with."""
    from slipway.registry.store import CHAMPION, ModelRegistry

    champion = ModelRegistry(lakehouse).alias(model_name, CHAMPION)
    if champion is None:
        return {a.evidence_key: "no champion to retrain" for a in candidates}
    trained_through = training_window_end(lakehouse, model_name)
    reasons: dict[str, str] = {}
    for a in candidates:
        window = a.details.get("reference_window")
        if a.model_version != champion:
            reasons[a.evidence_key] = f"about v{a.model_version}; the champion is now v{champion}"
        elif window and window[0] <= a.date.isoformat() <= window[1]:
            reasons[a.evidence_key] = (
                f"{a.date} is inside the drift reference ({window[0]}..{window[1]})"
            )
        elif trained_through is not None and a.date <= trained_through:
            reasons[a.evidence_key] = (
                f"{a.date} is inside v{champion}'s training data (through {trained_through})"
            )
    return reasons


def scan_alerts(lakehouse: Lakehouse, usecase: UseCase, after: str | None = None) -> AlertScan:
    """Alerts with a cursor greater than ``after``, split into real and suppressed ones."""
    spec = usecase.model
    assert spec is not None
    candidates: list[Alert] = []
    drift = _newer(lakehouse, DRIFT_METRICS, spec.name, after)
    if not drift.empty:
        candidates += _drift_alerts(drift)
    performance = _newer(lakehouse, PERFORMANCE, spec.name, after)
    if not performance.empty:
        candidates += _performance_alerts(performance)
    candidates = sorted(
        (a for a in candidates if after is None or a.cursor > after), key=lambda a: a.cursor
    )
    failed = contract_failures(lakehouse, usecase, {a.date for a in candidates})
    stale = _stale_reasons(lakehouse, spec.name, candidates)
    alerts = [a for a in candidates if a.date not in failed and a.evidence_key not in stale]
    suppressed = [(a, failed[a.date]) for a in candidates if a.date in failed]
    suppressed += [
        (a, stale[a.evidence_key])
        for a in candidates
        if a.date not in failed and a.evidence_key in stale
    ]
    cursor = candidates[-1].cursor if candidates else after
    return AlertScan(alerts, suppressed, cursor)


def pending_alerts(lakehouse: Lakehouse, usecase: UseCase, after: str | None = None) -> list[Alert]:
    """Drift and performance alerts newer than ``after`` (oldest first); never bad-data days."""
    return scan_alerts(lakehouse, usecase, after).alerts


@dataclass
class DriftCheck:
    """The drift asset check's verdict on the days a run measured."""

    passed: bool
    description: str
    days_checked: int
    drifted_features: dict[str, list[str]]
    not_judged: int


def drift_check(lakehouse: Lakehouse, usecase: UseCase, run_id: str | None) -> DriftCheck:
    """Whether the days ``run_id`` measured drifted (the latest day when it measured none).

    The same rules as the alerts: days inside the champion's training data (and so inside its
    reference) are not judged; a day drifts on its share of drifted features or on prediction
    drift. Features that drifted on a day below the share threshold are listed too.
    """
    from slipway.monitoring.tables import read_days

    spec = usecase.model
    assert spec is not None
    rows = read_days(lakehouse, DRIFT_METRICS).to_pandas()
    rows = rows[rows["model_name"] == spec.name]
    checked = rows[rows["run_id"] == run_id]
    if checked.empty and not rows.empty:  # run on its own: judge the latest day
        checked = rows[rows["date"] == rows["date"].max()]
    trained_through = training_window_end(lakehouse, spec.name)
    days = drift_days(checked)
    judged = [
        d
        for d in days
        if not d.in_reference() and (trained_through is None or d.date > trained_through)
    ]
    skipped = len(days) - len(judged)
    lines, quiet = [], {}
    for d in judged:
        if not d.drifted:
            for f in d.drifted_features:
                quiet[f] = quiet.get(f, 0) + 1
            continue
        text = f"{d.date} v{d.model_version}: "
        if d.share is not None:
            text += f"share {d.share:.2f}{' (day drifted)' if d.dataset_drift else ''}"
        if d.prediction_drift:
            text += f"; prediction drift {d.prediction_statistic:.4f}"
        lines.append(text + f"; features: {', '.join(d.drifted_features) or 'none'}")
    if quiet:
        lines.append(
            "below the day threshold: "
            + ", ".join(f"{f} ({n} d)" for f, n in sorted(quiet.items(), key=lambda x: -x[1]))
        )
    text = "\n".join(lines) or "no feature drifted"
    if skipped:
        through = f" (through {trained_through})" if trained_through else ""
        text += (
            f" ({skipped} day(s) inside the champion's training data{through} or its drift "
            "reference: not judged)"
        )
    return DriftCheck(
        passed=not any(d.drifted for d in judged),
        description=text,
        days_checked=len(judged),
        drifted_features={f"{d.date} v{d.model_version}": list(d.drifted_features) for d in judged},
        not_judged=skipped,
    )

"""Metrics that matter for fraud, and the plots that show them.

Fraud is rare, so ROC-AUC flatters; PR-AUC and recall at a fixed precision (how much fraud we
catch when 9 of 10 alerts must be real) are the figures the gate and the monitors use. Calibration
(Brier score, expected calibration error) matters because scores become decisions by threshold.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
)


@dataclass(frozen=True)
class Metrics:
    pr_auc: float
    roc_auc: float
    recall_at_precision: float
    precision_target: float
    threshold_at_precision: float
    log_loss: float
    brier: float
    ece: float
    positives: int
    rows: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def recall_at_precision(
    y: np.ndarray, scores: np.ndarray, precision_target: float
) -> tuple[float, float]:
    """Best recall with precision >= target, and the lowest threshold that achieves it."""
    precision, recall, thresholds = precision_recall_curve(y, scores)
    ok = precision[:-1] >= precision_target
    if not ok.any():
        return 0.0, 1.0
    best = np.argmax(np.where(ok, recall[:-1], -1.0))
    return float(recall[best]), float(thresholds[best])


def expected_calibration_error(y: np.ndarray, scores: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            ece += mask.mean() * abs(scores[mask].mean() - y[mask].mean())
    return float(ece)


def compute_metrics(y: np.ndarray, scores: np.ndarray, precision_target: float = 0.9) -> Metrics:
    y = np.asarray(y).astype(int)
    scores = np.clip(np.asarray(scores, dtype=float), 1e-9, 1 - 1e-9)
    if y.min() == y.max():
        raise ValueError(f"metrics need both classes; got only {y[0]} in {len(y)} rows")
    rec, thr = recall_at_precision(y, scores, precision_target)
    return Metrics(
        pr_auc=float(average_precision_score(y, scores)),
        roc_auc=float(roc_auc_score(y, scores)),
        recall_at_precision=rec,
        precision_target=precision_target,
        threshold_at_precision=thr,
        log_loss=float(log_loss(y, scores, labels=[0, 1])),
        brier=float(brier_score_loss(y, scores)),
        ece=expected_calibration_error(y, scores),
        positives=int(y.sum()),
        rows=len(y),
    )


def curves_png(y: np.ndarray, scores: np.ndarray, title: str) -> bytes:
    """A PR curve beside a reliability diagram, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    precision, recall, _ = precision_recall_curve(y, scores)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    ax1.plot(recall, precision, color="#1f77b4")
    ax1.set_xlabel("recall")
    ax1.set_ylabel("precision")
    ax1.set_title(f"PR curve (AP={average_precision_score(y, scores):.3f})")
    ax1.set_xlim(0, 1)
    ax1.set_ylim(0, 1.02)
    ax1.grid(alpha=0.3)
    edges = np.linspace(0, 1, 11)
    idx = np.clip(np.digitize(scores, edges[1:-1]), 0, 9)
    xs, ys = [], []
    for b in range(10):
        mask = idx == b
        if mask.any():
            xs.append(scores[mask].mean())
            ys.append(np.asarray(y)[mask].mean())
    ax2.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    ax2.plot(xs, ys, "o-", color="#d62728")
    ax2.set_xlabel("mean predicted")
    ax2.set_ylabel("observed fraud rate")
    ax2.set_title("calibration")
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def importance_png(importance, title: str, top: int = 20) -> bytes:
    """A horizontal bar chart of the ``top`` features by share of total gain, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2), dpi=100)
    ax.barh(rows["feature"], rows["gain_share"], color="#1f77b4")
    ax.set_xlabel("share of total gain")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()

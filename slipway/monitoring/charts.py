"""The drift-share-over-time chart shown in the drift asset's metadata."""

from __future__ import annotations

import io

import pandas as pd

from slipway.monitoring.tables import DRIFT_SHARE, PREDICTION_DRIFT


def drift_share_png(rows: pd.DataFrame, threshold: float, title: str) -> bytes | None:
    """Share of drifted features per day (line) with the day-drift threshold and the days whose
    prediction distribution drifted (red marks); None when there is nothing to draw."""
    share = rows[rows["metric"] == DRIFT_SHARE].sort_values("date")
    if share.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = rows[(rows["metric"] == PREDICTION_DRIFT) & rows["drifted"]]
    days = pd.to_datetime(share["date"])
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=90)
    ax.plot(days, share["statistic"], "o-", color="#1f77b4", markersize=3, label="drifted share")
    ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold}")
    if not pred.empty:
        marked = share[share["date"].isin(set(pred["date"]))]
        ax.scatter(
            pd.to_datetime(marked["date"]),
            marked["statistic"],
            color="#d62728",
            zorder=3,
            s=30,
            label="prediction drift",
        )
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("share of features")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()

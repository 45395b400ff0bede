"""Live evidence for the promotion gate: the challenger and the champion on the same served events.

While a challenger runs in shadow (or on a canary), ``scoring.served`` holds, per live event, one
row per model, both scored on the same features at the same moment. From those pairs:

* **agreement**: the share of events on which both models' flag decisions agree, and both flag
  rates (available at once);
* **performance on served traffic**, once labels mature: the policy's metric (PR-AUC by default)
  of each model on the same labelled served events. Labels follow the use case's ``LabelSpec``:
  a ``stream`` label is a positive when its key appears on the label stream, a negative when the
  event has matured (``maturity_days`` before the latest label day) without one; a ``rule`` label
  is computed from the examples table's columns, excluded examples dropped.

The gate (``slipway.registry.gate.decide``) names this evidence in its decision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from slipway.lakehouse import Lakehouse
from slipway.usecase import UseCase

SERVED = "scoring.served"  # slipway.streaming.served.SERVED (not imported: registry stays light)


@dataclass(frozen=True)
class LiveEvidence:
    """Both models on the same served events (``shadow_events`` pairs)."""

    champion_version: int
    challenger_version: int
    shadow_events: int
    agreement: float | None
    champion_flag_rate: float | None
    challenger_flag_rate: float | None
    labelled_events: int = 0
    positives: int = 0
    metric: str = "pr_auc"
    champion_metric: float | None = None
    challenger_metric: float | None = None
    days: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if not self.shadow_events:
            return "no shadow traffic yet"
        text = (
            f"{self.shadow_events:,} live events scored by both, flag agreement "
            f"{self.agreement:.4f} (flag rate champion {self.champion_flag_rate:.4f}, "
            f"challenger {self.challenger_flag_rate:.4f})"
        )
        if self.champion_metric is not None and self.challenger_metric is not None:
            text += (
                f"; on {self.labelled_events:,} labelled served events ({self.positives} positive) "
                f"{self.metric} challenger {self.challenger_metric:.4f} vs champion "
                f"{self.champion_metric:.4f}"
            )
        else:
            text += f"; {self.positives} matured positives among them so far"
        return text


def paired_scores(
    lakehouse: Lakehouse, champion_version: int, challenger_version: int
) -> pd.DataFrame:
    """One row per served event scored by both versions: event id, date, both scores and flags."""
    if not lakehouse.exists(SERVED):
        return pd.DataFrame(
            columns=["date", "event_id", "score_champion", "score_challenger", "flag_champion"]
        )
    table = lakehouse.read(
        SERVED,
        columns=[
            "date",
            "event_id",
            "role",
            "model_version",
            "score",
            "flagged",
            "champion_version",
            "challenger_version",
        ],
    )
    both = pc.and_(
        pc.equal(table["champion_version"], champion_version),
        pc.equal(table["challenger_version"], challenger_version),
    )
    frame = table.filter(pc.fill_null(both, False)).to_pandas()
    frame = frame[frame["score"].notna()]
    cp = frame[(frame["role"] == "champion") & (frame["model_version"] == champion_version)]
    ch = frame[(frame["role"] == "challenger") & (frame["model_version"] == challenger_version)]
    keep = ["date", "event_id", "score", "flagged"]
    pairs = cp[keep].merge(ch[keep], on=["date", "event_id"], suffixes=("_champion", "_challenger"))
    return pairs.rename(
        columns={"flagged_champion": "flag_champion", "flagged_challenger": "flag_challenger"}
    ).drop_duplicates(["date", "event_id"])


def served_labels(lakehouse: Lakehouse, usecase: UseCase, pairs: pd.DataFrame) -> pd.Series:
    """The matured label of each paired event (index aligned with ``pairs``; NaN: not matured
    or excluded)."""
    label = usecase.label
    out = pd.Series(np.nan, index=pairs.index)
    if pairs.empty:
        return out
    if label.kind == "stream":
        name = f"silver.{label.stream}"
        if not lakehouse.exists(name):
            return out
        reported = lakehouse.read(name, columns=[label.key, "date"])
        if not reported.num_rows:
            return out
        latest = pc.max(reported["date"]).as_py()
        matured = pairs["date"] <= latest - dt.timedelta(days=label.maturity_days)
        positives = set(reported[label.key].to_pylist())
        out[matured] = pairs.loc[matured, "event_id"].isin(positives).astype(float)
        return out
    rule, examples = label.rule, usecase.examples
    assert rule is not None and examples is not None
    if not lakehouse.exists(examples.table):
        return out
    ids = pairs["event_id"].unique().tolist()
    rows = lakehouse.read(
        examples.table,
        columns=[examples.row_key, "date", *rule.columns],
        filter=pc.field(examples.row_key).isin(ids),
    ).to_pandas()
    if rows.empty:
        return out
    latest = rows["date"].max()
    rows = rows[rows["date"] <= latest - dt.timedelta(days=label.maturity_days)]
    if rule.exclude is not None:
        rows = rows[~rule.exclude(rows).astype(bool)]
    value = pd.Series(rule.positive(rows).astype(float).to_numpy(), index=rows[examples.row_key])
    mapped = pairs["event_id"].map(value)
    return mapped.astype(float)


def live_evidence(
    lakehouse: Lakehouse, usecase: UseCase, champion_version: int, challenger_version: int
) -> LiveEvidence:
    """The live evidence on ``challenger_version`` against ``champion_version``."""
    from slipway.training.metrics import compute_metrics

    spec = usecase.model
    assert spec is not None
    metric = spec.promotion.metric
    pairs = paired_scores(lakehouse, champion_version, challenger_version)
    if pairs.empty:
        return LiveEvidence(
            champion_version, challenger_version, 0, None, None, None, metric=metric
        )
    cp_flag = pairs["flag_champion"].astype(bool)
    ch_flag = pairs["flag_challenger"].astype(bool)
    y = served_labels(lakehouse, usecase, pairs)
    known = y.notna()
    positives = int(y[known].sum())
    cp_metric = ch_metric = None
    if positives and positives < int(known.sum()):
        labels = y[known].astype(int).to_numpy()
        cp_metric = compute_metrics(
            labels, pairs.loc[known, "score_champion"].to_numpy(), spec.precision_target
        ).as_dict()[metric]
        ch_metric = compute_metrics(
            labels, pairs.loc[known, "score_challenger"].to_numpy(), spec.precision_target
        ).as_dict()[metric]
    return LiveEvidence(
        champion_version=champion_version,
        challenger_version=challenger_version,
        shadow_events=len(pairs),
        agreement=float((cp_flag == ch_flag).mean()),
        champion_flag_rate=float(cp_flag.mean()),
        challenger_flag_rate=float(ch_flag.mean()),
        labelled_events=int(known.sum()),
        positives=positives,
        metric=metric,
        champion_metric=None if cp_metric is None else float(cp_metric),
        challenger_metric=None if ch_metric is None else float(ch_metric),
        days=sorted({str(d) for d in pairs["date"]}),
    )

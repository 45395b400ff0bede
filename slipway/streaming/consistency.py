"""Online/offline consistency per day: what was served against what the offline path computes.

For every served decision of a day (``scoring.served``) and every model feature, the served value
is compared with the offline point-in-time value of the same event: window features from the
window feature table (``features.<name>``, one row per event keyed by the event id) where the use
case declares them, every other feature (slow features, request-time features) from the batch
path's stored inputs (``scoring.inputs``, the point-in-time join batch scoring and training use).
The served score is compared with the batch champion's score of the same model version
(``scoring.predictions``): that is the batch row and the served row of one transaction, joined.

Per day and feature: ``compared`` (events on both sides), ``mismatched``, ``mismatch_rate``,
``smape`` (Chronon's published metric: mean of 2|a-b|/(|a|+|b|), 0 where both are 0), the largest
relative difference. A value matches when both are missing, or both are equal within a relative
1e-6 (counts, being integers, must be equal). The day passes when no feature mismatches and no
served decision lacks its offline row.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from slipway.lakehouse import Lakehouse, WriteResult
from slipway.monitoring.tables import replace_days
from slipway.scoring.batch import INPUTS, PREDICTIONS
from slipway.streaming.served import SERVED, decided_only
from slipway.usecase import UseCase

CONSISTENCY = "monitoring.online_offline_consistency"
TOLERANCE = 1e-6
SCORE_FEATURE = "score"

CONSISTENCY_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32()),
        pa.field("feature", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("source", pa.string()),
        pa.field("compared", pa.int64()),
        pa.field("mismatched", pa.int64()),
        pa.field("mismatch_rate", pa.float64()),
        pa.field("smape", pa.float64()),
        pa.field("max_rel_diff", pa.float64()),
        pa.field("tolerance", pa.float64()),
        pa.field("served_rows", pa.int64()),
        pa.field("offline_rows", pa.int64()),
        pa.field("unmatched_served", pa.int64()),
        pa.field("unserved_offline", pa.int64()),
        pa.field("passed", pa.bool_()),
        pa.field("examples", pa.string()),
        pa.field("computed_at", pa.timestamp("us", tz="UTC")),
        pa.field("run_id", pa.string()),
    ]
)


@dataclass
class FeatureComparison:
    feature: str
    kind: str
    source: str
    compared: int
    mismatched: int
    smape: float | None
    max_rel_diff: float | None
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mismatch_rate(self) -> float:
        return self.mismatched / self.compared if self.compared else 0.0


@dataclass
class DayConsistency:
    """One day's verdict; ``status`` says why there is nothing to compare when that is so."""

    date: dt.date
    served_rows: int
    offline_rows: int
    unmatched_served: int
    unserved_offline: int
    features: list[FeatureComparison]
    status: str = "compared"

    @property
    def mismatched_features(self) -> list[str]:
        return [f.feature for f in self.features if f.mismatched]

    @property
    def passed(self) -> bool:
        return not self.mismatched_features and self.unmatched_served == 0

    @property
    def mismatches(self) -> int:
        return sum(f.mismatched for f in self.features)

    def summary(self) -> str:
        if self.status != "compared":
            return f"{self.date}: {self.status}"
        verdict = "consistent" if self.passed else "INCONSISTENT"
        text = (
            f"{self.date}: {verdict}: {self.served_rows:,} served decisions, "
            f"{len(self.features)} features, {self.mismatches:,} mismatches"
        )
        if self.mismatched_features:
            text += f" ({', '.join(self.mismatched_features[:6])})"
        if self.unmatched_served:
            text += f", {self.unmatched_served:,} served without an offline row"
        return text


@dataclass
class ConsistencyRun:
    days: list[DayConsistency]
    written: WriteResult | None
    read_versions: dict[str, int]

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.days)


def _window_sources(usecase: UseCase) -> dict[str, tuple[str, str, str]]:
    """model feature -> (offline table, event id column, aggregation op) for window features."""
    spec = usecase.model
    assert spec is not None
    out: dict[str, tuple[str, str, str]] = {}
    for fs in getattr(usecase, "window_features", ()):
        for agg in fs.aggregations:
            if agg.name in spec.features:
                out[agg.name] = (f"features.{fs.name}", fs.event_id, agg.op)
    return out


def _read_day(lakehouse: Lakehouse, name: str, day: dt.date, version: int | None) -> pd.DataFrame:
    return lakehouse.read(name, version=version, dates=(day, day)).to_pandas()


def values_match(
    served: pd.Series, offline: pd.Series, numeric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether the two sides agree, and their relative difference (numeric only)."""
    if not numeric:
        a = served.astype("object").where(served.notna(), None).to_numpy()
        b = offline.astype("object").where(offline.notna(), None).to_numpy()
        same = np.array([x == y for x, y in zip(a, b, strict=True)], dtype=bool)
        return same, np.zeros(len(a))
    a = pd.to_numeric(served, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    b = pd.to_numeric(offline, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    both_null = np.isnan(a) & np.isnan(b)
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(scale > 0, np.abs(a - b) / scale, 0.0)
    rel = np.where(both_null, 0.0, np.where(np.isnan(a) | np.isnan(b), np.inf, rel))
    return rel <= TOLERANCE, rel


def _smape(served: pd.Series, offline: pd.Series) -> float | None:
    a = pd.to_numeric(served, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    b = pd.to_numeric(offline, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    ok = ~(np.isnan(a) | np.isnan(b))
    if not ok.any():
        return None
    a, b = a[ok], b[ok]
    denom = np.abs(a) + np.abs(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(denom > 0, 2 * np.abs(a - b) / denom, 0.0)
    return float(terms.mean())


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def compare(
    feature: str,
    kind: str,
    source: str,
    served: pd.Series,
    offline: pd.Series,
    numeric: bool,
    ids: pd.Series,
) -> FeatureComparison:
    same, rel = values_match(served, offline, numeric)
    bad = np.flatnonzero(~same)
    finite = rel[np.isfinite(rel)]
    return FeatureComparison(
        feature=feature,
        kind=kind,
        source=source,
        compared=len(same),
        mismatched=len(bad),
        smape=_smape(served, offline) if numeric else None,
        max_rel_diff=float(finite.max()) if numeric and len(finite) else None,
        examples=[
            {
                "event_id": str(ids.iloc[i]),
                "served": _plain(served.iloc[i]),
                "offline": _plain(offline.iloc[i]),
            }
            for i in bad[:3]
        ],
    )


def offline_frame(
    lakehouse: Lakehouse, usecase: UseCase, day: dt.date, versions: dict[str, int]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The day's offline model inputs keyed by event id, and which table gave each feature."""
    spec = usecase.model
    assert spec is not None
    key = usecase.streams[0].key
    frame = _read_day(lakehouse, INPUTS, day, versions.get(INPUTS))
    frame = frame[[key, *[f for f in spec.features if f in frame.columns]]].set_index(key)
    sources = {f: INPUTS for f in frame.columns}
    by_table: dict[tuple[str, str], list[str]] = {}
    for feature, (table, event_id, _) in _window_sources(usecase).items():
        by_table.setdefault((table, event_id), []).append(feature)
    for (table, event_id), features in by_table.items():
        if table not in versions:
            continue
        rows = _read_day(lakehouse, table, day, versions[table])
        rows = rows[[event_id, *features]].drop_duplicates(event_id).set_index(event_id)
        frame = frame.drop(columns=[f for f in features if f in frame.columns]).join(
            rows, how="outer"
        )
        sources.update(dict.fromkeys(features, table))
    return frame, sources


def check_day(
    lakehouse: Lakehouse, usecase: UseCase, day: dt.date, versions: dict[str, int]
) -> DayConsistency:
    """Compare one day's served decisions with the offline values of the same events."""
    spec = usecase.model
    assert spec is not None
    served = (
        _read_day(lakehouse, SERVED, day, versions.get(SERVED))
        if SERVED in versions
        else pd.DataFrame()
    )
    served = decided_only(served)  # the decision, not the shadow model's score of the event
    if served.empty:
        return DayConsistency(day, 0, 0, 0, 0, [], status="no served decisions")
    if (
        INPUTS not in versions
        or not lakehouse.read(
            INPUTS, version=versions[INPUTS], dates=(day, day), columns=["date"]
        ).num_rows
    ):
        return DayConsistency(
            day, len(served), 0, 0, 0, [], status="offline side not built yet (batch scoring)"
        )
    served = served.drop_duplicates("event_id").set_index("event_id")
    offline, sources = offline_frame(lakehouse, usecase, day, versions)
    both = served.index.intersection(offline.index)
    kinds = {f: op for f, (_, _, op) in _window_sources(usecase).items()}
    both = both.rename("event_id")
    s, o = served.loc[both], offline.loc[both]
    ids = pd.Series(both, index=both)
    features = [
        compare(
            name,
            kinds.get(name, "request/slow"),
            sources.get(name, "(absent offline)"),
            s[name],
            o[name] if name in o.columns else pd.Series([None] * len(both), index=both),
            name in spec.numeric_features,
            ids,
        )
        for name in spec.features
    ]
    if PREDICTIONS in versions:
        assert usecase.examples is not None  # a served model scores the use case's examples
        row_key = usecase.examples.row_key
        batch = lakehouse.read(
            PREDICTIONS,
            version=versions[PREDICTIONS],
            dates=(day, day),
            columns=[row_key, "model_version", "score"],
            filter=pads.field("role") == "champion",
        ).to_pandas()
        batch = batch.rename(columns={row_key: "event_id", "score": "score_batch"})
        joined = (
            s[["model_version", "score"]]
            .reset_index()
            .merge(batch, on=["event_id", "model_version"], validate="one_to_one")
        )
        features.append(
            compare(
                SCORE_FEATURE,
                "prediction",
                PREDICTIONS,
                joined["score"],
                joined["score_batch"],
                True,
                joined["event_id"],
            )
        )
    return DayConsistency(
        date=day,
        served_rows=len(served),
        offline_rows=len(offline),
        unmatched_served=len(served.index.difference(offline.index)),
        unserved_offline=len(offline.index.difference(served.index)),
        features=features,
    )


def consistency_rows(
    day: DayConsistency, computed_at: dt.datetime, run_id: str | None
) -> list[dict[str, Any]]:
    return [
        {
            "date": day.date,
            "feature": f.feature,
            "kind": f.kind,
            "source": f.source,
            "compared": f.compared,
            "mismatched": f.mismatched,
            "mismatch_rate": f.mismatch_rate,
            "smape": f.smape,
            "max_rel_diff": f.max_rel_diff,
            "tolerance": TOLERANCE,
            "served_rows": day.served_rows,
            "offline_rows": day.offline_rows,
            "unmatched_served": day.unmatched_served,
            "unserved_offline": day.unserved_offline,
            "passed": f.mismatched == 0 and day.unmatched_served == 0,
            "examples": json.dumps(f.examples, default=str),
            "computed_at": computed_at,
            "run_id": run_id,
        }
        for f in day.features
    ]


def source_versions(lakehouse: Lakehouse, usecase: UseCase) -> dict[str, int]:
    """The versions a consistency run reads (taken once, so every day sees the same tables)."""
    names = [SERVED, INPUTS, PREDICTIONS, *{t for t, _, _ in _window_sources(usecase).values()}]
    return {n: v for n in names if (v := lakehouse.version(n)) is not None}


def check_consistency(
    lakehouse: Lakehouse,
    usecase: UseCase,
    start: dt.date,
    end: dt.date,
    run_id: str | None = None,
) -> ConsistencyRun:
    """Check every day of ``[start, end]`` and replace those days in ``CONSISTENCY``."""
    from slipway.lakehouse import days_between

    versions = source_versions(lakehouse, usecase)
    days = [check_day(lakehouse, usecase, d, versions) for d in days_between(start, end)]
    computed_at = dt.datetime.now(dt.UTC)
    rows = [r for d in days for r in consistency_rows(d, computed_at, run_id)]
    written = replace_days(
        lakehouse,
        CONSISTENCY,
        rows,
        CONSISTENCY_SCHEMA,
        start,
        end,
        commit_metadata={"read_versions": versions, "run_id": run_id},
    )
    return ConsistencyRun(days, written, versions)

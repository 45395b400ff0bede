"""Batch scoring of a range of days: the champion decides, the challenger scores in shadow.

The model inputs of every scored example are stored (``scoring.inputs``) beside the
predictions (``scoring.predictions``), and each prediction records the model version and the
table versions its features came from, so any prediction can be explained and traced back to the
landing file it started from.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from slipway.lakehouse import Lakehouse, TableRef, WriteResult
from slipway.registry.store import CHALLENGER, CHAMPION, ModelRegistry
from slipway.training.dataset import (
    entity_frame,
    examples_of,
    historical_features,
)
from slipway.training.train import load_booster, predict
from slipway.usecase import UseCase

log = logging.getLogger(__name__)

PREDICTIONS = "scoring.predictions"
INPUTS = "scoring.inputs"

_PREDICTION_FIELDS = [
    pa.field("event_time", pa.timestamp("us", tz="UTC")),
    pa.field("model_name", pa.string()),
    pa.field("model_version", pa.int64()),
    pa.field("role", pa.string()),
    pa.field("score", pa.float64()),
    pa.field("threshold", pa.float64()),
    pa.field("flagged", pa.bool_()),
    pa.field("inputs_version", pa.int64()),
    pa.field("source_versions", pa.string()),
    pa.field("scored_at", pa.timestamp("us", tz="UTC")),
    pa.field("run_id", pa.string()),
]


def key_columns(usecase: UseCase) -> tuple[str, ...]:
    """The example's row key and entity columns, carried by every prediction and input row."""
    ex = examples_of(usecase)
    return tuple(dict.fromkeys((ex.row_key, *ex.entity_columns)))


def predictions_schema(usecase: UseCase) -> pa.Schema:
    """``date``, ``prediction_id``, the row key and entity columns (strings), then the score."""
    keys = [pa.field(c, pa.string()) for c in key_columns(usecase)]
    head = [pa.field("date", pa.date32()), pa.field("prediction_id", pa.string())]
    return pa.schema([*head, *keys, *_PREDICTION_FIELDS])


class NoChampionError(RuntimeError):
    """Scoring was asked for before any model was promoted."""


def prediction_id(row_key: str, model_version: int) -> str:
    return f"{row_key}:v{model_version}"


@dataclass
class ScoringResult:
    predictions: WriteResult
    inputs: WriteResult | None
    champion_version: int
    challenger_version: int | None
    rows: int
    flagged: int
    source_versions: dict[str, int]
    shadow_agreement: float | None
    preview: pd.DataFrame


def scoring_inputs(
    lakehouse: Lakehouse, store, usecase: UseCase, start: dt.date, end: dt.date
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Point-in-time model inputs for the examples of ``[start, end]``."""
    assert usecase.model is not None
    ex = examples_of(usecase)
    ex_ref: TableRef = lakehouse.ref(ex.table)
    rows = lakehouse.read(ex.table, version=ex_ref.version, dates=(start, end)).to_pandas()
    if rows.empty:
        return pd.DataFrame(), {ex.table: ex_ref.version}
    entities = entity_frame(rows, usecase)
    frame, versions = historical_features(store, entities, usecase.model.feature_service)
    frame = frame.sort_values(["event_timestamp", ex.row_key], kind="stable").reset_index(drop=True)
    return frame, {ex.table: ex_ref.version, **versions}


def _threshold(metrics: dict[str, float]) -> float:
    return float(metrics.get("threshold_at_precision", 0.5))


def score_days(
    lakehouse: Lakehouse,
    store,
    usecase: UseCase,
    start: dt.date,
    end: dt.date,
    run_id: str | None = None,
) -> ScoringResult:
    """Score ``[start, end]`` with the champion (and the challenger in shadow), store both."""
    spec = usecase.model
    assert spec is not None
    row_key = examples_of(usecase).row_key
    keys = key_columns(usecase)
    schema = predictions_schema(usecase)
    registry = ModelRegistry(lakehouse)
    champion = registry.alias(spec.name, CHAMPION)
    if champion is None:
        raise NoChampionError(f"no champion for {spec.name}: train and promote a model first")
    challenger = registry.alias(spec.name, CHALLENGER)
    if challenger == champion:
        challenger = None
    frame, versions = scoring_inputs(lakehouse, store, usecase, start, end)
    now = dt.datetime.now(dt.UTC)
    if frame.empty:
        log.info(f"no examples in {start}..{end}: predictions for the range are emptied")
        written = lakehouse.write(
            PREDICTIONS,
            schema.empty_table(),
            replace_dates=(start, end),
            partition_by=["date"],
            schema=schema,
        )
        return ScoringResult(
            written, None, champion, challenger, 0, 0, versions, None, pd.DataFrame()
        )
    inputs_cols = list(dict.fromkeys(("date", *keys, "event_timestamp", *spec.features)))
    inputs_written = lakehouse.write(
        INPUTS,
        pa.Table.from_pandas(frame[inputs_cols], preserve_index=False),
        replace_dates=(start, end),
        partition_by=["date"],
    )
    roles = [("champion", champion)] + ([("challenger", challenger)] if challenger else [])
    parts = []
    scores_by_role: dict[str, np.ndarray] = {}
    for role, version in roles:
        record = registry.get(spec.name, version)
        scores = predict(load_booster(registry.load_text(spec.name, version)), frame, spec)
        scores_by_role[role] = scores
        threshold = _threshold(record.metrics)
        log.info(
            f"{role} v{version}: scored {len(scores)} examples, {int((scores >= threshold).sum())} flagged"
        )
        parts.append(
            pd.DataFrame(
                {
                    "date": frame["date"],
                    "prediction_id": [prediction_id(t, version) for t in frame[row_key]],
                    **{c: frame[c].astype("string") for c in keys},
                    "event_time": pd.to_datetime(frame["event_timestamp"], utc=True),
                    "model_name": spec.name,
                    "model_version": version,
                    "role": role,
                    "score": scores,
                    "threshold": threshold,
                    "flagged": scores >= threshold,
                    "inputs_version": inputs_written.version,
                    "source_versions": json.dumps(versions, sort_keys=True),
                    "scored_at": now,
                    "run_id": run_id,
                }
            )
        )
    predictions = pa.Table.from_pandas(
        pd.concat(parts, ignore_index=True), schema=schema, preserve_index=False
    )
    written = lakehouse.write(
        PREDICTIONS,
        predictions,
        replace_dates=(start, end),
        partition_by=["date"],
        schema=schema,
    )
    agreement = None
    if challenger:
        c_thr = _threshold(registry.get(spec.name, challenger).metrics)
        ch_thr = _threshold(registry.get(spec.name, champion).metrics)
        agreement = float(
            (
                (scores_by_role["champion"] >= ch_thr) == (scores_by_role["challenger"] >= c_thr)
            ).mean()
        )
    champion_part = parts[0]
    return ScoringResult(
        predictions=written,
        inputs=inputs_written,
        champion_version=champion,
        challenger_version=challenger,
        rows=len(frame),
        flagged=int(champion_part["flagged"].sum()),
        source_versions=versions,
        shadow_agreement=agreement,
        preview=champion_part.head(10),
    )

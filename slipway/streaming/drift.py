"""Drift monitoring on served traffic: ``scoring.served`` as the scored frame.

The batch drift (``slipway.monitoring.daily``) reads a day's stored batch inputs and scores; the
same comparison runs on what the live path actually served: each served row carries every model
feature and the champion's score, so it is the frame the drift machinery takes once the event id
is named like the stream's key. Reports go beside the batch ones, under ``served-drift/``.
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd

from slipway.lakehouse import Lakehouse
from slipway.monitoring.daily import day_seed
from slipway.monitoring.drift import DriftOutcome, compute_drift
from slipway.monitoring.reference import (
    drift_frame,
    load_reference,
    monitored_columns,
    seeded_sample,
)
from slipway.streaming.served import SERVED, decided_only
from slipway.usecase import UseCase

log = logging.getLogger(__name__)


def served_frame(lakehouse: Lakehouse, usecase: UseCase, day: dt.date) -> pd.DataFrame:
    """The day's served decisions as a scored frame: stream key, model version, score, features."""
    spec = usecase.model
    assert spec is not None
    key = usecase.streams[0].key
    if not lakehouse.exists(SERVED):
        return pd.DataFrame(columns=[key, "model_version", "score", *spec.features])
    frame = lakehouse.read(SERVED, dates=(day, day)).to_pandas()
    frame = decided_only(frame)[["event_id", "model_version", "score", *spec.features]]
    return frame.rename(columns={"event_id": key})


def served_drift(
    lakehouse: Lakehouse,
    usecase: UseCase,
    day: dt.date,
) -> dict[int, DriftOutcome]:
    """Drift of the day's served traffic against each serving model version's reference."""
    spec = usecase.model
    assert spec is not None
    frame = served_frame(lakehouse, usecase, day)
    columns = monitored_columns(usecase)
    out: dict[int, DriftOutcome] = {}
    for version, part in frame.groupby("model_version", sort=True):
        reference = load_reference(lakehouse, usecase, int(version))
        sample = seeded_sample(
            part, usecase.monitoring.sample_size, day_seed(day), frame.columns[0]
        )
        outcome = compute_drift(
            drift_frame(reference.frame, spec, columns),
            drift_frame(sample, spec, columns),
            columns,
            usecase.monitoring,
            score_reference=drift_frame(reference.score_frame, spec, columns),
        )
        lakehouse.write_bytes(
            f"reports/monitoring/{spec.name}/served-drift/{day.isoformat()}/v{int(version):04d}.html",
            outcome.html().encode("utf-8"),
        )
        log.info(f"served drift {day} v{version}: {outcome.summary()}")
        out[int(version)] = outcome
    return out

"""The drift reference of a model version: what "normal" inputs and scores looked like.

Why the validation window of the model's own training-set version:

* it is the data the model's reference figures (PR-AUC, recall) were measured on, so drift and
  performance are judged against the same days;
* the champion's scores there are out of sample. Scores on rows the model was fitted on are more
  extreme than on new rows, so a reference built from training rows would report "prediction
  drift" on every healthy day.

A reference is built once per model version (a seeded sample of ``MonitoringSpec.reference_size``
rows, scored by that version) and stored as one Parquet file under the lakehouse root; later runs,
and later days of the same run, reuse it. The file carries its lineage (training-set table and
version, window, seed) in its schema metadata.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from slipway.lakehouse import Lakehouse
from slipway.registry.store import ModelRegistry
from slipway.training.train import TIME_COLUMN, load_booster, predict, time_split
from slipway.usecase import ModelSpec, UseCase

log = logging.getLogger(__name__)

REFERENCE_SEED = 20_240_801
SCORE = "score"
_META_KEY = b"slipway.reference"
_CACHE: dict[tuple[str, str], ReferenceProfile] = {}


@dataclass(frozen=True)
class MonitoredColumns:
    """The features drift is computed on, split by how Evidently must treat them."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical)


def monitored_columns(usecase: UseCase) -> MonitoredColumns:
    """``MonitoringSpec.monitored_features`` (all model features when empty), typed by the model."""
    spec = usecase.model
    assert spec is not None
    wanted = usecase.monitoring.monitored_features or spec.features
    unknown = sorted(set(wanted) - set(spec.features))
    if unknown:
        raise KeyError(f"monitored features that are not model features: {unknown}")
    return MonitoredColumns(
        numeric=tuple(f for f in spec.numeric_features if f in wanted),
        categorical=tuple(f for f in spec.categorical_features if f in wanted),
    )


def drift_frame(df: pd.DataFrame, spec: ModelSpec, columns: MonitoredColumns) -> pd.DataFrame:
    """The frame Evidently compares: what the model sees, with categoricals kept as raw strings.

    Numerics get the model's own coercion and missing defaults (so a customer without history
    compares as zero recent transactions on both sides). Categoricals stay strings instead of the
    model's fixed categories: the model turns an unseen value into missing, which would hide a
    brand-new channel from drift detection.
    """
    out = pd.DataFrame(index=df.index)
    for name in columns.numeric:
        values = pd.to_numeric(df[name], errors="coerce").astype("float64")
        if name in spec.missing_defaults:
            values = values.fillna(spec.missing_defaults[name])
        out[name] = values
    for name in columns.categorical:
        out[name] = df[name].astype("object").where(df[name].notna(), None)
    if SCORE in df.columns:
        out[SCORE] = pd.to_numeric(df[SCORE], errors="coerce").astype("float64")
    return out.reset_index(drop=True)


def seeded_sample(frame: pd.DataFrame, size: int, seed: int, key: str) -> pd.DataFrame:
    """Up to ``size`` rows, the same ones for the same data and seed whatever the read order."""
    ordered = frame.sort_values(key, kind="stable").reset_index(drop=True)
    if len(ordered) <= size:
        return ordered
    return ordered.sample(n=size, random_state=seed).sort_values(key).reset_index(drop=True)


@dataclass(frozen=True)
class ReferenceProfile:
    """A model version's reference sample (raw features + its own scores) and its lineage."""

    model_name: str
    model_version: int
    frame: pd.DataFrame
    training_set: dict[str, Any]
    window: tuple[str, str]
    rows_available: int
    seed: int
    uri: str
    built_now: bool

    @property
    def size(self) -> int:
        return len(self.frame)


def reference_path(model_name: str, version: int) -> str:
    """Where a version's reference lives, relative to the lakehouse root."""
    return f"monitoring/reference/{model_name}/v{version:04d}/reference.parquet"


def build_reference(
    lakehouse: Lakehouse, usecase: UseCase, version: int, seed: int = REFERENCE_SEED
) -> ReferenceProfile:
    """Sample the version's validation window from its pinned training set and score it."""
    spec = usecase.model
    assert spec is not None
    registry = ModelRegistry(lakehouse)
    record = registry.get(spec.name, version)
    ts = record.training_set
    table, ts_version = ts["table"], int(ts["version"])
    columns = ["transaction_id", TIME_COLUMN, spec.target, *spec.features]
    frame = lakehouse.read(table, version=ts_version, columns=columns).to_pandas()
    validation_days = int(record.params.get("validation_days", spec.validation_days))
    _, holdout = time_split(frame, validation_days)
    sample = seeded_sample(holdout, usecase.monitoring.reference_size, seed, "transaction_id")
    sample[SCORE] = predict(load_booster(registry.load_text(spec.name, version)), sample, spec)
    days = pd.to_datetime(holdout[TIME_COLUMN], utc=True)
    window = (str(days.min().date()), str(days.max().date()))
    meta = {
        "model_name": spec.name,
        "model_version": version,
        "training_set": {"table": table, "version": ts_version},
        "window": list(window),
        "validation_days": validation_days,
        "rows_available": len(holdout),
        "seed": seed,
        "built_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    arrow = pa.Table.from_pandas(sample, preserve_index=False)
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), _META_KEY: json.dumps(meta)}
    )
    buf = io.BytesIO()
    pq.write_table(arrow, buf)
    uri = lakehouse.write_bytes(reference_path(spec.name, version), buf.getvalue())
    return ReferenceProfile(
        spec.name, version, sample, meta["training_set"], window, len(holdout), seed, uri, True
    )


def _read_reference(lakehouse: Lakehouse, model_name: str, version: int) -> ReferenceProfile:
    relative = reference_path(model_name, version)
    arrow = pq.read_table(io.BytesIO(lakehouse.read_bytes(relative)))
    meta = json.loads((arrow.schema.metadata or {})[_META_KEY])
    return ReferenceProfile(
        model_name=model_name,
        model_version=version,
        frame=arrow.to_pandas(),
        training_set=meta["training_set"],
        window=tuple(meta["window"]),
        rows_available=int(meta["rows_available"]),
        seed=int(meta["seed"]),
        uri=lakehouse.path(relative),
        built_now=False,
    )


def load_reference(
    lakehouse: Lakehouse,
    usecase: UseCase,
    version: int,
    rebuild: bool = False,
    progress: Callable[[str], None] = log.info,
) -> ReferenceProfile:
    """The version's reference: from this process's cache, else the stored file, else built."""
    spec = usecase.model
    assert spec is not None
    relative = reference_path(spec.name, version)
    key = (lakehouse.root, relative)
    if not rebuild and key in _CACHE:
        return _CACHE[key]
    if not rebuild and lakehouse.file_exists(relative):
        profile = _read_reference(lakehouse, spec.name, version)
        progress(f"reference of {spec.name} v{version}: {profile.size} rows, reused")
    else:
        profile = build_reference(lakehouse, usecase, version)
        progress(
            f"reference of {spec.name} v{version}: built {profile.size} of "
            f"{profile.rows_available} rows ({profile.window[0]}..{profile.window[1]}) from "
            f"{profile.training_set['table']}@v{profile.training_set['version']}"
        )
    _CACHE[key] = profile
    return profile

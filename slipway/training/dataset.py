"""The labelled training set: matured transactions joined point-in-time through Feast.

Entity rows are the transactions whose label can be trusted (``maturity_days`` have passed since
the event, so a missing chargeback now means "legitimate"), labelled with the chargebacks reported
up to the as-of day. Their features come from Feast's point-in-time join with every Delta table
pinned, and the result is stored as a Delta table whose metadata lists every version read — which
is what makes ``rebuild with the recorded versions`` give identical rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from slipway.featurestore.versions import pinned_versions
from slipway.lakehouse import Lakehouse, TableRef, WriteResult
from slipway.usecase import UseCase

log = logging.getLogger(__name__)

TRANSACTIONS = "gold.enriched_transactions"
REQUEST_COLUMNS = ("amount_eur", "country", "device_id", "channel", "merchant_category")
ENTITY_COLUMNS = ("transaction_id", "customer_id", "merchant_id", "date")


def training_table(usecase: UseCase) -> str:
    return f"training.{usecase.name}_training_set"


def entity_frame(transactions: pd.DataFrame) -> pd.DataFrame:
    """Feast entity rows for transactions: keys, event time, and the request-time fields."""
    event = pd.to_datetime(transactions["event_time"], utc=True)
    frame = transactions[list(ENTITY_COLUMNS) + list(REQUEST_COLUMNS)].copy()
    frame["event_timestamp"] = event
    frame["event_epoch"] = event.astype("datetime64[us, UTC]").astype("int64") / 1e6
    return frame.reset_index(drop=True)


@dataclass
class LabelledEntities:
    frame: pd.DataFrame
    as_of: dt.date
    refs: dict[str, TableRef]


def matured_entities(
    lakehouse: Lakehouse,
    usecase: UseCase,
    pins: Mapping[str, int] | None = None,
    as_of: dt.date | None = None,
) -> LabelledEntities:
    """Matured transactions up to ``as_of`` (default: the latest day present) with their label."""
    pins = dict(pins or {})
    label = usecase.label
    tx_ref = lakehouse.ref(TRANSACTIONS, pins.get(TRANSACTIONS))
    cb_name = f"silver.{label.stream}"
    cb_ref = lakehouse.ref(cb_name, pins.get(cb_name))
    dates = lakehouse.read(TRANSACTIONS, version=tx_ref.version, columns=["date"])["date"]
    if len(dates) == 0:
        raise ValueError(f"{TRANSACTIONS}@v{tx_ref.version} is empty: nothing to train on")
    as_of = as_of or pc.max(dates).as_py()
    last_matured = as_of - dt.timedelta(days=label.maturity_days)
    tx = lakehouse.read(
        TRANSACTIONS,
        version=tx_ref.version,
        columns=["event_time", *ENTITY_COLUMNS, *REQUEST_COLUMNS],
        filter=pads.field("date") <= last_matured,
    ).to_pandas()
    reported = lakehouse.read(
        cb_name,
        version=cb_ref.version,
        columns=[label.key, "date"],
        filter=pads.field("date") <= as_of,
    )
    positives = set(reported[label.key].to_pylist())
    frame = entity_frame(tx)
    frame[label.target] = frame["transaction_id"].isin(positives).astype("int64")
    frame = frame.sort_values(["event_timestamp", "transaction_id"], kind="stable").reset_index(
        drop=True
    )
    return LabelledEntities(frame=frame, as_of=as_of, refs={TRANSACTIONS: tx_ref, cb_name: cb_ref})


def historical_features(
    store, entities: pd.DataFrame, feature_service: str, pins: Mapping[str, int] | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Feast's point-in-time join for ``entities``; returns the frame and the versions it read."""
    with pinned_versions(dict(pins or {})) as versions:
        job = store.get_historical_features(
            entity_df=entities,
            features=store.get_feature_service(feature_service),
            full_feature_names=False,
        )
        frame = job.to_df()
    return frame, dict(versions.versions)


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object and frame[col].map(lambda v: isinstance(v, np.ndarray)).any():
            frame[col] = frame[col].map(lambda v: list(v) if isinstance(v, np.ndarray) else v)
    return pa.Table.from_pandas(frame, preserve_index=False)


@dataclass
class TrainingSet:
    written: WriteResult
    as_of: dt.date
    versions: dict[str, int]
    rows: int
    positives: int
    feature_service: str

    def lineage(self) -> dict[str, object]:
        return {
            "table": self.written.name,
            "version": self.written.version,
            "as_of": self.as_of.isoformat(),
            "feature_service": self.feature_service,
            "source_versions": self.versions,
        }


def build_training_set(
    lakehouse: Lakehouse,
    store,
    usecase: UseCase,
    pins: Mapping[str, int] | None = None,
    as_of: dt.date | None = None,
    progress: Callable[[str], None] = log.info,
) -> TrainingSet:
    """Build and store the training set; ``pins`` reproduces an earlier build exactly."""
    assert usecase.model is not None, "the use case declares no model"
    entities = matured_entities(lakehouse, usecase, pins, as_of)
    progress(
        f"{len(entities.frame)} matured transactions up to {entities.as_of - dt.timedelta(days=usecase.label.maturity_days)} "
        f"(as of {entities.as_of}), {int(entities.frame[usecase.label.target].sum())} labelled fraud"
    )
    frame, feature_versions = historical_features(
        store, entities.frame, usecase.model.feature_service, pins
    )
    frame = frame.sort_values(["event_timestamp", "transaction_id"], kind="stable").reset_index(
        drop=True
    )
    versions = {name: ref.version for name, ref in entities.refs.items()} | feature_versions
    lineage = {
        "as_of": entities.as_of.isoformat(),
        "feature_service": usecase.model.feature_service,
        "source_versions": versions,
    }
    written = lakehouse.write(
        training_table(usecase), _to_arrow(frame), mode="overwrite", commit_metadata=lineage
    )
    progress(
        f"training set {written.name}@v{written.version}: {written.rows_written} rows; read {versions}"
    )
    return TrainingSet(
        written=written,
        as_of=entities.as_of,
        versions=versions,
        rows=len(frame),
        positives=int(frame[usecase.label.target].sum()),
        feature_service=usecase.model.feature_service,
    )


def training_set_lineage(lakehouse: Lakehouse, usecase: UseCase, version: int) -> dict[str, object]:
    """What a stored training-set version was built from (recorded in its Delta commit)."""
    return lakehouse.commit_metadata(training_table(usecase), version)


def rebuild_training_set(
    lakehouse: Lakehouse, store, usecase: UseCase, version: int
) -> pd.DataFrame:
    """Recompute a stored training-set version from its recorded source versions (not stored)."""
    lineage = training_set_lineage(lakehouse, usecase, version)
    pins = {k: int(v) for k, v in dict(lineage["source_versions"]).items()}
    entities = matured_entities(
        lakehouse, usecase, pins, dt.date.fromisoformat(str(lineage["as_of"]))
    )
    frame, _ = historical_features(store, entities.frame, str(lineage["feature_service"]), pins)
    return frame.sort_values(["event_timestamp", "transaction_id"], kind="stable").reset_index(
        drop=True
    )

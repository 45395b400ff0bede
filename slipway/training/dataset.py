"""The labelled training set: matured transactions joined point-in-time through Feast.

Entity rows are the transactions whose label can be trusted (``maturity_days`` have passed since
the event, so a missing chargeback now means "legitimate"), labelled with the chargebacks reported
up to the as-of day. Their features come from Feast's point-in-time join with every Delta table
pinned, and the result is stored as a Delta table whose metadata lists every version read — which
is what makes ``rebuild with the recorded versions`` give identical rows.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from slipway.featurestore.versions import pinned_versions
from slipway.lakehouse import Lakehouse, TableRef, WriteResult
from slipway.lakehouse.tables import normalise_arrow
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


def _arrow_backed(t: pa.DataType) -> pd.ArrowDtype | None:
    """Strings and dates stay in Arrow memory inside pandas: a python object per value was most
    of an entity frame's memory (several GiB at 10M rows) and of its conversion time."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_date(t):
        return pd.ArrowDtype(t)
    return None


def matured_entities(
    lakehouse: Lakehouse,
    usecase: UseCase,
    pins: Mapping[str, int] | None = None,
    as_of: dt.date | None = None,
) -> LabelledEntities:
    """Matured transactions up to ``as_of`` (default: the latest day present) with their label.

    Rows are sorted by event time then transaction id, so consecutive rows are a time window:
    what lets the point-in-time join stream them.
    """
    pins = dict(pins or {})
    label = usecase.label
    tx_ref = lakehouse.ref(TRANSACTIONS, pins.get(TRANSACTIONS))
    cb_name = f"silver.{label.stream}"
    cb_ref = lakehouse.ref(cb_name, pins.get(cb_name))
    dates = lakehouse.read(TRANSACTIONS, version=tx_ref.version, columns=["date"])["date"]
    if len(dates) == 0:
        raise ValueError(f"{TRANSACTIONS}@v{tx_ref.version} is empty: nothing to train on")
    as_of = as_of or pc.max(dates).as_py()
    del dates
    last_matured = as_of - dt.timedelta(days=label.maturity_days)
    tx = lakehouse.read(
        TRANSACTIONS,
        version=tx_ref.version,
        columns=["event_time", *ENTITY_COLUMNS, *REQUEST_COLUMNS],
        filter=pads.field("date") <= last_matured,
    )
    reported = lakehouse.read(
        cb_name,
        version=cb_ref.version,
        columns=[label.key, "date"],
        filter=pads.field("date") <= as_of,
    )
    order = pc.sort_indices(
        tx, sort_keys=[("event_time", "ascending"), ("transaction_id", "ascending")]
    )
    tx = tx.take(order)
    target = pc.cast(pc.is_in(tx["transaction_id"], value_set=reported[label.key]), pa.int64())
    frame = entity_frame(tx.to_pandas(types_mapper=_arrow_backed))
    del tx
    frame[label.target] = target.to_numpy()
    return LabelledEntities(frame=frame, as_of=as_of, refs={TRANSACTIONS: tx_ref, cb_name: cb_ref})


def historical_features(
    store, entities: pd.DataFrame, feature_service: str, pins: Mapping[str, int] | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Feast's point-in-time join for ``entities``; returns the frame and the versions it read."""
    job, versions = historical_job(store, entities, feature_service, pins)
    return job.to_df(), versions


def historical_job(
    store, entities: pd.DataFrame, feature_service: str, pins: Mapping[str, int] | None = None
):
    """Feast's retrieval job for ``entities`` and the versions it will read (fixed now)."""
    with pinned_versions(dict(pins or {})) as versions:
        job = store.get_historical_features(
            entity_df=entities,
            features=store.get_feature_service(feature_service),
            full_feature_names=False,
        )
    return job, dict(versions.versions)


def feature_parts(job, chunk_rows: int | None = None) -> Iterator[pa.Table]:
    """The job's rows, in entity-row order, as Arrow tables of at most ``chunk_rows`` rows.

    The Delta offline store streams them (``iter_arrow``: one chunk of entity rows in memory at
    a time); any other offline store gives its whole result as one part.
    """
    if hasattr(job, "iter_arrow"):
        yield from job.iter_arrow(chunk_rows)
    else:
        yield _to_arrow(job.to_df())


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
    job, feature_versions = historical_job(
        store, entities.frame, usecase.model.feature_service, pins
    )
    versions = {name: ref.version for name, ref in entities.refs.items()} | feature_versions
    lineage = {
        "as_of": entities.as_of.isoformat(),
        "feature_service": usecase.model.feature_service,
        "source_versions": versions,
    }
    # Entity rows are in (event time, transaction id) order and the join keeps that order, so
    # the chunks go straight into one streamed commit: no whole-set frame, no re-sort.
    parts = feature_parts(job)
    first = normalise_arrow(next(parts))
    positives = 0

    def counted() -> Iterator[pa.Table]:
        nonlocal positives
        for part in itertools.chain([first], parts):
            positives += int(pc.sum(part[usecase.label.target]).as_py() or 0)
            yield part

    written = lakehouse.write_batches(
        training_table(usecase),
        first.schema,
        counted(),
        mode="overwrite",
        commit_metadata=lineage,
    )
    progress(
        f"training set {written.name}@v{written.version}: {written.rows_written} rows; read {versions}"
    )
    return TrainingSet(
        written=written,
        as_of=entities.as_of,
        versions=versions,
        rows=written.rows_written,
        positives=positives,
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
    job, _ = historical_job(store, entities.frame, str(lineage["feature_service"]), pins)
    # The same streamed parts the build wrote, in the stored table's types.
    return normalise_arrow(pa.concat_tables(feature_parts(job))).to_pandas()

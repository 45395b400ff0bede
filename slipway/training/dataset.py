"""The labelled training set: matured examples joined point-in-time through Feast.

Entity rows are the use case's examples (``UseCase.examples``: its table, row key, event time,
entity and request columns) whose label can be trusted: ``maturity_days`` have passed since the
event. A ``stream`` label marks the examples whose key has a positive reported up to the as-of
day (a missing one now means negative); a ``rule`` label is computed from the example's own
columns (``LabelRule.positive``), and the examples its ``exclude`` rule names have no label and
are dropped. Their features come from Feast's point-in-time join with every Delta table
pinned, and the result is stored as a Delta table whose metadata lists every version read — which
is what makes ``rebuild with the recorded versions`` give identical rows.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from slipway.featurestore.versions import pinned_versions
from slipway.lakehouse import Lakehouse, TableRef, WriteResult
from slipway.lakehouse.tables import normalise_arrow
from slipway.usecase import Examples, LabelRule, UseCase

log = logging.getLogger(__name__)


def training_table(usecase: UseCase) -> str:
    return f"training.{usecase.name}_training_set"


def examples_of(usecase: UseCase) -> Examples:
    """The use case's examples declaration (a model needs one)."""
    if usecase.examples is None:
        raise ValueError(f"use case {usecase.name!r} declares no examples (examples=)")
    return usecase.examples


def entity_columns(usecase: UseCase) -> tuple[str, ...]:
    """The key columns every entity row carries: the row key, the entities and ``date``."""
    ex = examples_of(usecase)
    return tuple(dict.fromkeys((ex.row_key, *ex.entity_columns, "date")))


def example_columns(usecase: UseCase) -> tuple[str, ...]:
    """What entity rows are built from: the keys, the event time and the request columns."""
    ex = examples_of(usecase)
    return tuple(dict.fromkeys((*entity_columns(usecase), ex.event_time, *ex.request_columns)))


def entity_frame(examples: pd.DataFrame, usecase: UseCase) -> pd.DataFrame:
    """Feast entity rows for examples: keys, event time, and the request-time fields."""
    ex = examples_of(usecase)
    event = pd.to_datetime(examples[ex.event_time], utc=True)
    columns = list(dict.fromkeys((*entity_columns(usecase), *ex.request_columns)))
    frame = examples[columns].copy()
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
    """Matured examples up to ``as_of`` (default: the latest day present) with their label.

    Rows are sorted by event time then row key, so consecutive rows are a time window: what lets
    the point-in-time join stream them. Examples a rule label excludes are not among them.
    """
    pins = dict(pins or {})
    label = usecase.label
    ex = examples_of(usecase)
    ex_ref = lakehouse.ref(ex.table, pins.get(ex.table))
    dates = lakehouse.read(ex.table, version=ex_ref.version, columns=["date"])["date"]
    if len(dates) == 0:
        raise ValueError(f"{ex.table}@v{ex_ref.version} is empty: nothing to train on")
    as_of = as_of or pc.max(dates).as_py()
    del dates
    last_matured = as_of - dt.timedelta(days=label.maturity_days)
    rule_columns = label.rule.columns if label.rule is not None else ()
    rows = lakehouse.read(
        ex.table,
        version=ex_ref.version,
        columns=list(dict.fromkeys((*example_columns(usecase), *rule_columns))),
        filter=pads.field("date") <= last_matured,
    )
    order = pc.sort_indices(
        rows, sort_keys=[(ex.event_time, "ascending"), (ex.row_key, "ascending")]
    )
    rows = rows.take(order)
    refs = {ex.table: ex_ref}
    if label.rule is not None:
        target, keep = rule_labels(rows, label.rule)
        rows = rows.filter(pa.array(keep))
        target = target[keep]
    else:
        positives_table = f"silver.{label.stream}"
        positives_ref = lakehouse.ref(positives_table, pins.get(positives_table))
        reported = lakehouse.read(
            positives_table,
            version=positives_ref.version,
            columns=[label.key, "date"],
            filter=pads.field("date") <= as_of,
        )
        target = pc.cast(
            pc.is_in(rows[ex.row_key], value_set=reported[label.key]), pa.int64()
        ).to_numpy()
        refs[positives_table] = positives_ref
    frame = entity_frame(rows.to_pandas(types_mapper=_arrow_backed), usecase)
    del rows
    frame[label.target] = target
    return LabelledEntities(frame=frame, as_of=as_of, refs=refs)


def rule_labels(rows: pa.Table, rule: LabelRule) -> tuple[np.ndarray, np.ndarray]:
    """(label 0/1, kept) per row of ``rows`` under a rule label: ``exclude`` rows are not kept.

    Only the rule's own columns are handed to it, as pandas (the rule is written in pandas).
    """
    frame = rows.select(list(rule.columns)).to_pandas()
    positive = np.asarray(rule.positive(frame), dtype=bool)
    excluded = (
        np.asarray(rule.exclude(frame), dtype=bool)
        if rule.exclude is not None
        else np.zeros(len(frame), dtype=bool)
    )
    if positive.shape != (len(frame),) or excluded.shape != (len(frame),):
        raise ValueError("a LabelRule must return one boolean per example row")
    return positive.astype(np.int64), ~excluded


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
) -> TrainingSet:
    """Build and store the training set; ``pins`` reproduces an earlier build exactly."""
    assert usecase.model is not None, "the use case declares no model"
    entities = matured_entities(lakehouse, usecase, pins, as_of)
    log.info(
        f"{len(entities.frame)} matured examples up to {entities.as_of - dt.timedelta(days=usecase.label.maturity_days)} "
        f"(as of {entities.as_of}), {int(entities.frame[usecase.label.target].sum())} labelled positive"
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
    # Entity rows are in (event time, row key) order and the join keeps that order, so
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
    log.info(
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

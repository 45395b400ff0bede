"""A Feast offline store over the lakehouse's Delta tables that reads exactly one table version.

Why a custom store (a documented Feast extension point, ``offline_store: type: <module.Class>``):
Feast's file store lists every parquet file in the folder and ignores the Delta log (stale rows
after a partition replace) and dropped entity rows with no data inside the TTL; its DuckDB store
needs DuckDB's ``delta`` extension, which cannot be downloaded here. This store reads Delta only
through :class:`~slipway.lakehouse.tables.Lakehouse` (one version, through the log, on a native
pyarrow filesystem) and resolves that version *eagerly*, when Feast calls the store, from
:func:`~slipway.featurestore.versions.pinned_versions` or the table's latest version.

The point-in-time join is DuckDB's ``ASOF LEFT JOIN`` (core SQL, no extension) computed over
integer keys only: entity row number, join keys and event time as epoch microseconds. DuckDB
returns, per entity row, the *index* of the feature row to use; the feature values themselves
are then gathered with Arrow ``take``. So list/struct/timestamp feature columns keep their exact
Arrow types, no timezone round trip goes through DuckDB, and the result has exactly one row per
entity row, in the entity frame's order, by construction.

Memory follows a chunk of entity rows, not the whole join (:class:`_ViewJoin`): the first pass
reads only keys and event times (row group by row group, partitions and statistics pruned to
the entity time range minus the TTL); the second reads each needed row group's feature columns
once, keeps only the rows some entity row picked, and drops them after the last chunk that
needs them. :meth:`DeltaHistoricalRetrievalJob.iter_arrow` hands the result out chunk by chunk
(on-demand features applied per chunk), which the training set writes as one streamed commit;
the next chunk is built on a worker thread while the write encodes the current one.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from feast.data_source import DataSource
from feast.feature_view import DUMMY_ENTITY_ID, DUMMY_ENTITY_VAL, FeatureView
from feast.infra.offline_stores.offline_store import (
    OfflineStore,
    RetrievalJob,
    RetrievalMetadata,
)
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from feast.saved_dataset import SavedDatasetStorage
from feast.transformation.pandas_transformation import PandasTransformation
from feast.utils import compute_non_entity_date_range
from pydantic import StrictStr

from slipway.featurestore.delta_source import DeltaSource, lakehouse_from_config
from slipway.featurestore.on_demand import columnar_of
from slipway.featurestore.versions import active_pins, resolve_version
from slipway.lakehouse.tables import Lakehouse, _normalise_type, normalise_arrow
from slipway.settings import pit_chunk_rows

__all__ = [
    "DeltaHistoricalRetrievalJob",
    "DeltaOfflineStore",
    "DeltaOfflineStoreConfig",
    "DeltaRetrievalJob",
    "chunk_bounds",
]

_MIN_I64 = -(2**63) + 1
_UTC = dt.UTC


class DeltaOfflineStoreConfig(FeastConfigBaseModel):
    """``offline_store:`` block of feature_store.yaml.

    ``lakehouse_root`` None means the lakehouse of ``usecase`` in this environment:
    ``SLIPWAY_LAKEHOUSE_ROOT/<usecase>``, else ``<repo>/data/lakehouse/<usecase>``
    (``slipway.settings``), so one feature repo runs locally and in production unchanged, and
    the CLI run in ``feature_repo/flights`` reads flights' tables (``usecase`` None: the default
    use case, ``SLIPWAY_USECASE``). A relative root is taken relative to the feature repo.
    """

    type: Literal[
        "slipway.featurestore.delta_offline_store.DeltaOfflineStore",
        "slipway.featurestore.DeltaOfflineStore",
    ] = "slipway.featurestore.delta_offline_store.DeltaOfflineStore"
    lakehouse_root: StrictStr | None = None
    usecase: StrictStr | None = None


# -- the retrieval job ------------------------------------------------------------------------
class DeltaRetrievalJob(RetrievalJob):
    """A lazy retrieval whose table versions were fixed when it was created.

    ``versions`` is what it will read, for lineage; running it twice reads the same data.
    """

    def __init__(
        self,
        compute: Callable[[], pa.Table],
        *,
        full_feature_names: bool = False,
        on_demand_feature_views: list[OnDemandFeatureView] | None = None,
        metadata: RetrievalMetadata | None = None,
        versions: dict[str, int] | None = None,
    ) -> None:
        self._compute = compute
        self._full_feature_names = full_feature_names
        self._on_demand_feature_views = list(on_demand_feature_views or [])
        self._metadata = metadata
        self.versions: dict[str, int] = dict(versions or {})

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._on_demand_feature_views

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._compute()

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._compute().to_pandas()

    def persist(
        self,
        storage: SavedDatasetStorage,
        allow_overwrite: bool = False,
        timeout: int | None = None,
    ) -> None:
        raise NotImplementedError(
            "DeltaOfflineStore does not persist Feast saved datasets; write the training set "
            "with Lakehouse.write (versioned Delta) instead."
        )


class DeltaHistoricalRetrievalJob(DeltaRetrievalJob):
    """A point-in-time retrieval that can also be consumed chunk by chunk.

    :meth:`iter_arrow` yields the result in entity-row order, ``chunk_rows`` entity rows at a
    time, on-demand features included; :meth:`to_arrow` (Feast's API) is the same chunks put
    together, so the two can never disagree. Feeding ``iter_arrow`` to a streamed write keeps
    peak memory at about one chunk whatever the number of entity rows.
    """

    def __init__(
        self,
        run: Callable[[int], Iterator[pa.Table]],
        *,
        full_feature_names: bool = False,
        on_demand_feature_views: list[OnDemandFeatureView] | None = None,
        metadata: RetrievalMetadata | None = None,
        versions: dict[str, int] | None = None,
    ) -> None:
        super().__init__(
            lambda: _concat(run(pit_chunk_rows())),
            full_feature_names=full_feature_names,
            on_demand_feature_views=on_demand_feature_views,
            metadata=metadata,
            versions=versions,
        )
        self._run = run

    def iter_arrow(self, chunk_rows: int | None = None) -> Iterator[pa.Table]:
        """The result, on-demand features applied, as consecutive chunks of entity rows.

        The next chunk is computed on a worker thread while the caller consumes this one: the
        consumer is typically a Delta write, whose parquet encoding releases the GIL, so on two
        cores the join and the on-demand transform overlap the write instead of taking turns.
        At most two chunks are alive beyond the caller's (the one queued, the one being built).
        """
        rows = chunk_rows or pit_chunk_rows()
        yield from _prefetched(lambda: (self._with_on_demand(p) for p in self._run(rows)))

    def to_arrow(self, validation_reference: Any = None, timeout: int | None = None) -> pa.Table:
        if validation_reference is not None:  # Feast validates the whole frame: its own path
            return super().to_arrow(validation_reference=validation_reference, timeout=timeout)
        return _concat(self.iter_arrow())

    def _with_on_demand(self, table: pa.Table) -> pa.Table:
        """Feast's on-demand step (``RetrievalJob.to_arrow``) for one chunk.

        Each view's transform gets only the columns it declares (its source features, both
        short and full names, and its request fields), as it does online: converting the list
        columns of every other view to pandas was most of the transform's cost.
        """
        requested: dict[str, set[str]] = {}
        for ref in (self.metadata.features if self.metadata else []) or []:
            view, _, feature = ref.partition(":")
            for odfv in self.on_demand_feature_views:
                if view in (odfv.name, odfv.projection.name_to_use()):
                    requested.setdefault(view, set()).add(
                        f"{odfv.projection.name_to_use()}__{feature}"
                        if self.full_feature_names
                        else feature
                    )
        for odfv in self.on_demand_feature_views:
            inputs = _on_demand_inputs(odfv, table.column_names)
            transformed = _transform_arrow(
                odfv, table.select(inputs) if inputs else table, self.full_feature_names
            )
            wanted = requested.get(odfv.name, requested.get(odfv.projection.name_to_use()))
            for col in transformed.column_names:
                if col.startswith("__index"):
                    continue
                if wanted is None or col in wanted:
                    table = table.append_column(col, transformed[col])
        return table


def _transform_arrow(
    odfv: OnDemandFeatureView, table: pa.Table, full_feature_names: bool
) -> pa.Table:
    """``odfv.transform_arrow(table)``; for a pandas-mode view whose tag names the
    ``ColumnarTransform`` its function delegates to (``columnar_tag``), that transform's Arrow
    entrance replaces Feast's ``to_pandas`` round trip: the same function on the same cells,
    Feast's own renaming before and after kept."""
    transformation = odfv.feature_transformation
    transform = columnar_of(odfv.tags) if isinstance(transformation, PandasTransformation) else None
    if transform is None:
        return odfv.transform_arrow(table, full_feature_names)
    prepared, cleanup = odfv._preprocess_arrow_table(table)
    return odfv._postprocess_arrow_table(transform.arrow(prepared), cleanup, full_feature_names)


def _on_demand_inputs(odfv: OnDemandFeatureView, available: Sequence[str]) -> list[str]:
    names: list[str] = []
    for projection in odfv.source_feature_view_projections.values():
        for feature in projection.features:
            names += [
                feature.name,
                f"{projection.name}__{feature.name}",
                f"{projection.name_to_use()}__{feature.name}",
            ]
    for request in odfv.source_request_sources.values():
        names += [field.name for field in request.schema]
    present = set(available)
    return [n for n in dict.fromkeys(names) if n in present]


_T = TypeVar("_T")
_DONE = object()


def _prefetched(make: Callable[[], Iterator[_T]]) -> Iterator[_T]:
    """``make()``'s items, computed one ahead on a daemon thread; its error is raised here.

    Closing the returned generator early (the consumer failed or stopped) stops the worker
    after the item it is building, so no thread outlives the retrieval by more than one chunk.
    """
    out: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in make():
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)
            return
        put(_DONE)

    worker = threading.Thread(target=work, name="pit-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _concat(parts: Iterator[pa.Table]) -> pa.Table:
    tables = list(parts)
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


# -- Arrow helpers ----------------------------------------------------------------------------
def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)


def _to_micros(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Epoch microseconds (UTC) for a timestamp/date column; naive timestamps are taken as UTC."""
    t = column.type
    if pa.types.is_date(t):
        column = pc.cast(column, pa.timestamp("us"))
    elif pa.types.is_timestamp(t):
        if t.unit != "us":
            column = pc.cast(column, pa.timestamp("us", t.tz), safe=False)
    else:
        raise TypeError(f"expected a timestamp or date column, got {t}")
    out = pc.cast(column, pa.int64())
    return out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)


def _micros(value: dt.datetime) -> int:
    return (_utc(value) - _EPOCH) // dt.timedelta(microseconds=1)


def _bound(field: pa.Field, value: dt.datetime, *, dates_only: bool = False) -> pa.Scalar | None:
    """A scan-filter literal of the column's own type (a day-wide superset bound for dates).

    ``dates_only`` is for the partition column: it is assumed to hold the UTC *day* of the event
    time, so only day-granular bounds are safe on it.
    """
    t = field.type
    if pa.types.is_timestamp(t):
        if dates_only:
            return None
        v = _utc(value)
        return pa.scalar(v if t.tz else v.replace(tzinfo=None), type=t)
    if pa.types.is_date(t):
        return pa.scalar(_utc(value).date(), type=t)
    if dates_only and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return pa.scalar(_utc(value).date().isoformat(), type=t)
    return None


def _scan(
    lakehouse: Lakehouse,
    table: str,
    version: int,
    columns: Sequence[str] | None,
    timestamp_field: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    date_partition_column: str = "",
) -> pa.Table:
    """Read one table version, only ``columns``, only rows with start <= event time <= end.

    The scan filter prunes files and partitions; the exact bound is re-applied on epoch
    microseconds afterwards so date-typed columns and unit differences cannot widen the window.
    """
    dataset = lakehouse.dataset(table, version)
    schema = dataset.schema
    missing = [c for c in (columns or []) if c not in schema.names]
    if missing:
        raise ValueError(
            f"columns {missing} not in Delta table {table!r} v{version} (has {schema.names})"
        )
    expr = _window_filter(schema, timestamp_field, date_partition_column, start, end)
    data = dataset.to_table(columns=list(columns) if columns else None, filter=expr)
    if start is not None or end is not None:
        ts = _to_micros(data[timestamp_field])
        mask = None
        if start is not None:
            mask = pc.greater_equal(ts, _micros(start))
        if end is not None:
            upper = pc.less_equal(ts, _micros(end))
            mask = upper if mask is None else pc.and_(mask, upper)
        data = data.filter(pc.fill_null(mask, False))
    return normalise_arrow(data)


def _run_indices(sql: str, tables: dict[str, pa.Table]) -> pa.Table:
    con = duckdb.connect()
    try:
        for name, tbl in tables.items():
            con.register(name, tbl)
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def _latest_per_key(data: pa.Table, keys: Sequence[str], ts: str, created: str | None) -> pa.Table:
    """The latest row per key: max event time, then max created time, then last written."""
    frame: dict[str, Any] = {f"k{i}": data[k] for i, k in enumerate(keys)}
    frame["__ts"] = _to_micros(data[ts])
    frame["__cts"] = _to_micros(data[created]) if created else pa.nulls(data.num_rows, pa.int64())
    frame["__frow"] = pa.array(np.arange(data.num_rows, dtype=np.int64))
    group = f"GROUP BY {', '.join(f'k{i}' for i in range(len(keys)))}" if keys else ""
    sql = (
        "SELECT arg_max(__frow, struct_pack(t := __ts, c := coalesce(__cts, "
        f"{_MIN_I64}), r := __frow)) AS __frow FROM src {group}"
    )
    idx = _run_indices(sql, {"src": pa.table(frame)})["__frow"]
    return data.take(idx)


# -- the point-in-time join -------------------------------------------------------------------
def _pit_indices(
    entity_keys: Sequence[pa.ChunkedArray],
    entity_ts: pa.ChunkedArray,
    feature_keys: Sequence[pa.ChunkedArray],
    feature_ts: pa.ChunkedArray,
    feature_created: pa.ChunkedArray | None,
    ttl: dt.timedelta | None,
    feature_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Per entity row, the id of its feature row (-1: none inside the TTL).

    A feature row's id is ``feature_ids[i]`` (its position in the scan when None); ids must
    increase in written order, since the last written row wins a tie.

    Latest feature row with event time <= the entity's; among equal event times the latest
    created time wins, then the last written row, so a pinned version always gives the same
    answer. A row older than ``entity time - ttl`` gives null.
    """
    n_keys = len(entity_keys)
    # Strings are joined as small integer codes (the entity side's distinct keys): DuckDB's
    # ASOF join and grouping on int32 are several times faster than on strings.
    coded = [_key_codes(e, f) for e, f in zip(entity_keys, feature_keys, strict=True)]
    entity_keys = [e for e, _ in coded]
    feature_keys = [f for _, f in coded]
    if feature_ids is None:
        feature_ids = np.arange(len(feature_ts), dtype=np.int64)
    # A feature row with a null key (or a code: no entity row has its key) can match nothing:
    # it is dropped before the join, so a 1M-row sample over a 10M-row table joins 1M feature
    # rows, not 10M.
    matchable = None
    for f in feature_keys:
        if f.null_count:
            valid = pc.is_valid(f)
            matchable = valid if matchable is None else pc.and_(matchable, valid)
    if matchable is not None:
        keep = np.asarray(matchable.to_numpy(zero_copy_only=False), dtype=bool)
        feature_keys = [f.filter(matchable) for f in feature_keys]
        feature_ts = feature_ts.filter(matchable)
        if feature_created is not None:
            feature_created = feature_created.filter(matchable)
        feature_ids = feature_ids[keep]
    ent: dict[str, Any] = {f"k{i}": c for i, c in enumerate(entity_keys)}
    ent["__ts"] = entity_ts
    ent["__row"] = pa.array(np.arange(len(entity_ts), dtype=np.int64))
    fea: dict[str, Any] = {f"k{i}": c for i, c in enumerate(feature_keys)}
    fea["__ts"] = feature_ts
    fea["__cts"] = (
        feature_created if feature_created is not None else pa.nulls(len(feature_ts), pa.int64())
    )
    fea["__frow"] = pa.array(feature_ids)
    keys = [f"k{i}" for i in range(n_keys)]
    on = " AND ".join([*(f"e.{k} = f.{k}" for k in keys), "e.__ts >= f.__ts"])
    ttl_us = ttl // dt.timedelta(microseconds=1) if ttl else 0
    pick = f"CASE WHEN f.__ts >= e.__ts - {ttl_us} THEN f.__frow END" if ttl_us else "f.__frow"
    # One row per (key, event time): the latest created, then the last written.
    latest = (
        f"arg_max(__frow, struct_pack(c := coalesce(__cts, {_MIN_I64}), r := __frow))"
        if feature_created is not None
        else "max(__frow)"
    )
    sql = f"""
        WITH f AS (
            SELECT {", ".join([*keys, "__ts"])}, {latest} AS __frow
            FROM fea GROUP BY ALL
        )
        SELECT e.__row, {pick} AS __frow
        FROM ent e ASOF LEFT JOIN f ON {on}
    """
    res = _run_indices(sql, {"ent": pa.table(ent), "fea": pa.table(fea)})
    idx = np.full(len(entity_ts), -1, dtype=np.int64)
    rows = res["__row"].to_numpy()
    idx[rows] = pc.fill_null(res["__frow"], -1).to_numpy()
    return idx


def _key_codes(
    entity_key: pa.ChunkedArray, feature_key: pa.ChunkedArray
) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """String/binary keys as int32 positions in the entity side's distinct values. A null key,
    or a feature key that no entity row has, gets null, which joins nothing (as a null key did
    before)."""
    t = feature_key.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)):
        return entity_key, feature_key
    values = pc.unique(entity_key)
    return (
        pc.index_in(entity_key, value_set=values, skip_nulls=True),
        pc.index_in(feature_key, value_set=values, skip_nulls=True),
    )


def _align_key(
    entity_col: pa.ChunkedArray, feature_type: pa.DataType, name: str
) -> pa.ChunkedArray:
    """Cast an entity-frame key to the feature table's key type (int vs string is an error)."""
    if entity_col.type == feature_type:
        return entity_col
    try:
        return pc.cast(entity_col, feature_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(
            f"entity column {name!r} ({entity_col.type}) cannot be joined to the feature table's "
            f"key type {feature_type}: {exc}"
        ) from exc


def _entity_frame(entity_df: pd.DataFrame, ts_col: str) -> tuple[pa.Table, pa.ChunkedArray]:
    """The entity frame as Arrow with its event time made tz-aware UTC, plus that time in µs."""
    df = entity_df.copy(deep=False)
    df[ts_col] = pd.to_datetime(df[ts_col], utc=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    return table, _to_micros(table[ts_col])


def _units(dataset: pads.Dataset, expr: pads.Expression | None) -> list[pads.Fragment]:
    """The dataset's row groups that can hold rows inside ``expr`` (partitions and statistics
    pruned), in the dataset's own order: the unit read in both passes of the join."""
    out: list[pads.Fragment] = []
    for fragment in dataset.get_fragments(filter=expr):
        if isinstance(fragment, pads.ParquetFileFragment):
            out.extend(fragment.split_by_row_group(filter=expr, schema=dataset.schema))
        else:  # pragma: no cover - Delta tables are parquet
            out.append(fragment)
    return out


class _ViewJoin:
    """One feature view's point-in-time join, in two passes so memory follows a time window.

    Pass 1 (:meth:`index`) reads only keys and timestamps, row group by row group, and lets
    DuckDB pick, for every entity row, the *global row id* (row group offset + row) of its
    feature row. Pass 2 (:meth:`chunks`) walks the entity rows in order, chunk by chunk: a row
    group's feature columns are read once, when the first chunk needing it comes, and only its
    needed rows are kept in a pool until the last chunk needing them has been served. With
    entity rows in time order (a training set), the pool is about one window's feature rows.
    """

    def __init__(
        self,
        lakehouse: Lakehouse,
        version: int,
        fv: FeatureView,
        features: list[str],
        full_feature_names: bool,
    ) -> None:
        source = fv.batch_source
        assert isinstance(source, DeltaSource)
        reverse = {v: k for k, v in source.field_mapping.items()}
        self._src = lambda name: reverse.get(name, name)
        self.fv, self.features, self.version = fv, features, version
        self.table = source.table
        self.lakehouse = lakehouse
        self.ts_col = self._src(source.timestamp_field)
        self.created_col = self._src(source.created_timestamp_column)
        self.key_cols = [c.name for c in fv.entity_columns]
        self.entity_key_cols = [fv.projection.join_key_map.get(k, k) for k in self.key_cols]
        self.date_col = self._src(source.date_partition_column)
        prefix = fv.projection.name_alias or fv.name
        self.names = [f"{prefix}__{f}" if full_feature_names else f for f in features]

    def index(
        self,
        entity: pa.Table,
        entity_ts: pa.ChunkedArray,
        window: tuple[dt.datetime | None, dt.datetime | None],
    ) -> None:
        """Pass 1: ``self.ids[i]`` is entity row i's global feature row id, -1 for none."""
        dataset = self.lakehouse.dataset(self.table, self.version)
        self.schema = schema = dataset.schema
        src = self._src
        key_src = [src(k) for k in self.key_cols]
        index_cols = list(dict.fromkeys([*key_src, self.ts_col]))
        if self.created_col:
            index_cols.append(self.created_col)
        needed = list(dict.fromkeys([*index_cols, *map(src, self.features)]))
        missing = [c for c in needed if c not in schema.names]
        if missing:
            raise ValueError(
                f"columns {missing} not in Delta table {self.table!r} v{self.version} "
                f"(has {schema.names})"
            )
        for col in self.entity_key_cols:
            if col not in entity.column_names:
                raise ValueError(
                    f"entity_df has no join key column {col!r} for feature view {self.fv.name!r}"
                )
        expr = _window_filter(schema, self.ts_col, self.date_col, *window)
        self.units = _units(dataset, expr)
        keys: list[list[pa.Array]] = [[] for _ in key_src]
        ts: list[pa.Array] = []
        created: list[pa.Array] = []
        ids: list[np.ndarray] = []
        offsets = [0]
        lo, hi = (None if w is None else _micros(w) for w in window)
        for unit in self.units:
            part = unit.to_table(columns=index_cols, schema=schema)
            n = part.num_rows
            t = _to_micros(part[self.ts_col])
            mask = None  # the exact window, on epoch microseconds (a partition is a superset)
            if lo is not None:
                mask = pc.greater_equal(t, lo)
            if hi is not None:
                upper = pc.less_equal(t, hi)
                mask = upper if mask is None else pc.and_(mask, upper)
            row_ids = np.arange(offsets[-1], offsets[-1] + n, dtype=np.int64)
            if mask is not None:
                keep = pc.fill_null(mask, False)
                part, t = part.filter(keep), t.filter(keep)
                row_ids = row_ids[np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)]
            offsets.append(offsets[-1] + n)
            for i, k in enumerate(key_src):
                keys[i].extend(part[k].chunks)
            ts.extend(t.chunks)
            if self.created_col:
                created.extend(_to_micros(part[self.created_col]).chunks)
            ids.append(row_ids)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        key_types = [schema.field(k).type for k in key_src]
        feature_keys = [
            _normalise_chunked(pa.chunked_array(chunks, type=t))
            for chunks, t in zip(keys, key_types, strict=True)
        ]
        self.ids = _pit_indices(
            entity_keys=[
                _align_key(entity[e], f.type, e)
                for e, f in zip(self.entity_key_cols, feature_keys, strict=True)
            ],
            entity_ts=entity_ts,
            feature_keys=feature_keys,
            feature_ts=pa.chunked_array(ts, type=pa.int64()),
            feature_created=pa.chunked_array(created, type=pa.int64())
            if self.created_col
            else None,
            feature_ids=np.concatenate(ids) if ids else np.empty(0, dtype=np.int64),
            ttl=self.fv.ttl,
        )

    def chunks(self, bounds: Sequence[tuple[int, int]]) -> Iterator[dict[str, pa.ChunkedArray]]:
        """Pass 2: per entity chunk ``[a, b)``, the output feature columns of its rows."""
        payload_cols = [self._src(f) for f in self.features]
        ids = self.ids
        n_units = len(self.units)
        chunk_of = np.empty(len(ids), dtype=np.int64)
        for c, (a, b) in enumerate(bounds):
            chunk_of[a:b] = c
        have = ids >= 0
        ref_ids, ref_chunks = ids[have], chunk_of[have]
        total = int(self.offsets[-1])
        # The last chunk that needs each feature row, and the first chunk that needs each unit.
        last_needed = np.full(total, -1, dtype=np.int64)
        np.maximum.at(last_needed, ref_ids, ref_chunks)
        unit_of = np.searchsorted(self.offsets, ref_ids, side="right") - 1
        first_needed = np.full(n_units, len(bounds), dtype=np.int64)
        np.minimum.at(first_needed, unit_of, ref_chunks)
        loads: dict[int, list[int]] = {}
        for u in np.flatnonzero(first_needed < len(bounds)).tolist():
            loads.setdefault(int(first_needed[u]), []).append(u)
        empty = pa.table(
            {c: pa.array([], type=_normalise_type(self.schema.field(c).type)) for c in payload_cols}
        )
        pool, pool_ids = empty, np.empty(0, dtype=np.int64)
        # Where each feature row sits in the pool: a direct lookup per entity row (sorting the
        # pool's ids and binary-searching them each chunk cost more than the gathers). Slots of
        # rows dropped from the pool go stale, but no later chunk asks for those rows.
        # (at least one slot: with no feature rows at all every entity row is missing, and its
        # masked position 0 must still index something)
        slot = np.zeros(max(total, 1), dtype=np.int64)
        for c, (a, b) in enumerate(bounds):
            new_parts, new_ids = [pool], [pool_ids]
            for u in loads.get(c, []):
                lo, hi = int(self.offsets[u]), int(self.offsets[u + 1])
                local = np.flatnonzero(last_needed[lo:hi] >= c)
                part = self.units[u].to_table(columns=payload_cols, schema=self.schema)
                if len(local) < hi - lo:  # a unit wholly needed (one row per entity) is kept as is
                    part = part.take(pa.array(local))
                new_parts.append(normalise_arrow(part))
                new_ids.append(local + lo)
            if len(new_parts) > 1:
                pool = pa.concat_tables(new_parts)
                pool_ids = np.concatenate(new_ids)
                slot[pool_ids] = np.arange(len(pool_ids), dtype=np.int64)
            want = ids[a:b]
            missing = want < 0
            pos = slot[np.where(missing, 0, want)]  # masked where missing
            picked = pool.take(pa.array(pos, mask=missing))
            yield {name: picked.column(i) for i, name in enumerate(self.names)}
            alive = last_needed[pool_ids] > c
            if not alive.all():
                pool = pool.filter(pa.array(alive))
                pool_ids = pool_ids[alive]
                slot[pool_ids] = np.arange(len(pool_ids), dtype=np.int64)


def _normalise_chunked(column: pa.ChunkedArray) -> pa.ChunkedArray:
    target = _normalise_type(column.type)
    return column if column.type == target else column.cast(target)


def _window_filter(
    schema: pa.Schema,
    ts_col: str,
    date_col: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> pads.Expression | None:
    """A scan filter (partitions, then row-group statistics) for start <= event time <= end."""
    expr: pads.Expression | None = None
    for column in dict.fromkeys(c for c in (ts_col, date_col) if c):
        for value, op in ((start, "ge"), (end, "le")):
            if value is None:
                continue
            bound = _bound(schema.field(column), value, dates_only=column != ts_col)
            if bound is None:
                continue
            term = pads.field(column) >= bound if op == "ge" else pads.field(column) <= bound
            expr = term if expr is None else expr & term
    return expr


def chunk_bounds(n_rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``[a, b)`` row ranges of at most ``chunk_rows`` covering ``n_rows`` (one empty when 0)."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    return [(a, min(a + chunk_rows, n_rows)) for a in range(0, n_rows, chunk_rows)] or [(0, 0)]


def _non_entity_frame(
    lakehouse: Lakehouse,
    versions: dict[str, int],
    feature_views: list[FeatureView],
    start: dt.datetime,
    end: dt.datetime,
) -> pd.DataFrame:
    """Entity rows for ``get_historical_features(start_date=, end_date=)``: every key seen in
    the window, at ``end`` (so each gets its latest row as of ``end``, TTL applied)."""
    key_sets = {tuple(c.name for c in fv.entity_columns) for fv in feature_views}
    if len(key_sets) != 1:
        raise ValueError(
            "retrieval without an entity_df needs feature views with the same join keys; "
            f"got {sorted(key_sets)}"
        )
    keys = list(next(iter(key_sets)))
    if not keys:  # entityless views: one row, "the world as of end"
        return pd.DataFrame({"event_timestamp": [pd.Timestamp(_utc(end))]})
    frames = []
    for fv in feature_views:
        source = fv.batch_source
        assert isinstance(source, DeltaSource)
        reverse = {v: k for k, v in source.field_mapping.items()}
        cols = [reverse.get(k, k) for k in keys]
        ts = reverse.get(source.timestamp_field, source.timestamp_field)
        data = _scan(lakehouse, source.table, versions[source.table], [*cols, ts], ts, start, end)
        frames.append(data.select(cols).rename_columns(keys).to_pandas())
    out = pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)
    out["event_timestamp"] = pd.Timestamp(_utc(end))
    return out


# -- the store --------------------------------------------------------------------------------
def _delta_sources(config: RepoConfig, sources: Sequence[DataSource | None]) -> Lakehouse:
    if not isinstance(config.offline_store, DeltaOfflineStoreConfig):
        raise TypeError(
            f"expected DeltaOfflineStoreConfig, got {type(config.offline_store).__name__}"
        )
    for source in sources:
        if not isinstance(source, DeltaSource):
            raise TypeError(
                f"DeltaOfflineStore reads DeltaSource only; got {type(source).__name__} "
                f"({getattr(source, 'name', None)!r})"
            )
    return lakehouse_from_config(config)


def _resolve(lakehouse: Lakehouse, table: str) -> int:
    """Fix the version to read now; a missing table or a pin past the latest fails here,
    at the Feast call, rather than later inside a lazy job."""
    latest = lakehouse.version(table)
    if latest is None:
        raise LookupError(f"Delta table {table!r} does not exist at {lakehouse.uri(table)}")
    pinned = active_pins().get(table)
    if pinned is not None and pinned > latest:
        raise LookupError(f"{table!r} is pinned to version {pinned}, but its latest is {latest}")
    return resolve_version(table, lambda _: latest)


class DeltaOfflineStore(OfflineStore):
    """Feast offline store over lakehouse Delta tables; see the module docstring."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        lakehouse = _delta_sources(config, [fv.batch_source for fv in feature_views])
        # Versions are fixed now, not when the lazy job runs.
        versions: dict[str, int] = {}
        for fv in feature_views:
            table = fv.batch_source.table  # type: ignore[union-attr]
            if table not in versions:
                versions[table] = _resolve(lakehouse, table)

        if entity_df is None:
            start, end = compute_non_entity_date_range(
                feature_views, start_date=kwargs.get("start_date"), end_date=kwargs.get("end_date")
            )
            entity_df = _non_entity_frame(lakehouse, versions, feature_views, start, end)
        elif not isinstance(entity_df, pd.DataFrame):
            raise ValueError(
                "DeltaOfflineStore takes entity_df as a pandas DataFrame (SQL entity queries are "
                f"not supported), got {type(entity_df).__name__}"
            )
        ts_col = infer_event_timestamp_from_entity_df(dict(entity_df.dtypes))
        entity_df = entity_df.copy(deep=False)
        ets = pd.to_datetime(entity_df[ts_col], utc=True)
        ts_range = (
            (ets.min().to_pydatetime(), ets.max().to_pydatetime())
            if ets.notna().any()
            else (None, None)
        )

        per_view = [
            (
                fv,
                [
                    r.split(":", 1)[1]
                    for r in feature_refs
                    if r.startswith(f"{fv.projection.name_to_use()}:")
                ],
            )
            for fv in feature_views
        ]

        def run(chunk_rows: int) -> Iterator[pa.Table]:
            entity, entity_ts = _entity_frame(entity_df, ts_col)
            bounds = chunk_bounds(entity.num_rows, chunk_rows)
            joins = []
            for fv, features in per_view:
                if not features:
                    continue
                lo = ts_range[0] - fv.ttl if fv.ttl and ts_range[0] is not None else None
                join = _ViewJoin(
                    lakehouse,
                    versions[fv.batch_source.table],  # type: ignore[union-attr]
                    fv,
                    features,
                    full_feature_names,
                )
                join.index(entity, entity_ts, (lo, ts_range[1]))
                joins.append(join)
            del entity_ts
            streams = [join.chunks(bounds) for join in joins]
            for a, b in bounds:
                out = entity.slice(a, b - a)
                for stream in streams:
                    for name, column in next(stream).items():
                        if name in out.column_names:
                            raise ValueError(
                                f"feature column {name!r} collides with an existing column; "
                                "use full_feature_names=True"
                            )
                        out = out.append_column(name, column)
                yield out

        return DeltaHistoricalRetrievalJob(
            run,
            full_feature_names=full_feature_names,
            on_demand_feature_views=OnDemandFeatureView.get_requested_odfvs(
                feature_refs, project, registry
            ),
            metadata=RetrievalMetadata(
                features=feature_refs,
                keys=list(set(entity_df.columns) - {ts_col}),
                min_event_timestamp=ts_range[0],
                max_event_timestamp=ts_range[1],
            ),
            versions=versions,
        )

    @staticmethod
    def _pull(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: dt.datetime | None,
        end_date: dt.datetime | None,
        latest: bool,
    ) -> DeltaRetrievalJob:
        lakehouse = _delta_sources(config, [data_source])
        assert isinstance(data_source, DeltaSource)
        table = data_source.table
        version = _resolve(lakehouse, table)
        # An empty feature list means "all columns" (Feast asks that for transforming views).
        columns = (
            list(
                dict.fromkeys(
                    [*join_key_columns, *feature_name_columns, timestamp_field]
                    + ([created_timestamp_column] if created_timestamp_column else [])
                )
            )
            if feature_name_columns
            else None
        )

        def compute() -> pa.Table:
            data = _scan(
                lakehouse,
                table,
                version,
                columns,
                timestamp_field,
                start_date,
                end_date,
                date_partition_column=data_source.date_partition_column,
            )
            if latest:
                data = _latest_per_key(
                    data, join_key_columns, timestamp_field, created_timestamp_column
                )
            if not join_key_columns:
                data = data.append_column(
                    DUMMY_ENTITY_ID, pa.array([DUMMY_ENTITY_VAL] * data.num_rows, pa.string())
                )
            return data

        return DeltaRetrievalJob(compute, versions={table: version})

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: dt.datetime,
        end_date: dt.datetime,
    ) -> RetrievalJob:
        return DeltaOfflineStore._pull(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
            latest=True,
        )

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: dt.datetime | None = None,
        end_date: dt.datetime | None = None,
    ) -> RetrievalJob:
        return DeltaOfflineStore._pull(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
            latest=False,
        )

"""A Feast data source that names a lakehouse Delta table (``features.customer_behaviour``).

Why not ``FileSource(file_format=DeltaFormat())``: the offline stores that read it either list
the parquet files in the folder (stale rows after a partition replace) or need DuckDB's ``delta``
extension (not downloadable here), and none of them can read a pinned table version. This source
only *names* a table; :class:`~slipway.featurestore.delta_offline_store.DeltaOfflineStore`
resolves it through :class:`~slipway.lakehouse.tables.Lakehouse`, which reads exactly one Delta
version through the Delta log.

It is a Feast ``CUSTOM_SOURCE``: the table name travels in ``CustomSourceOptions`` as JSON, and
``data_source_class_type`` points back here, so ``feast apply`` stores it in the registry and
any process reading the registry gets an equal ``DeltaSource`` back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
from feast.data_source import DataSource
from feast.protos.feast.core.DataSource_pb2 import DataSource as DataSourceProto
from feast.repo_config import RepoConfig
from feast.type_map import pa_to_feast_value_type
from feast.value_type import ValueType

from slipway.lakehouse.tables import Lakehouse

__all__ = ["DeltaSource", "delta_type_to_feast_value_type", "lakehouse_from_config"]

_CLASS_PATH = f"{__name__}.DeltaSource"


def lakehouse_from_config(config: RepoConfig | None) -> Lakehouse:
    """The lakehouse a Feast repo reads: ``offline_store.lakehouse_root``, else the settings.

    A relative ``lakehouse_root`` is taken relative to the feature repo (``config.repo_path``),
    not the process's working directory, so ``feast`` CLI calls and Dagster assets agree.
    The settings fallback is the lakehouse of ``offline_store.usecase`` (else ``SLIPWAY_USECASE``,
    else the default use case) under ``SLIPWAY_LAKEHOUSE_ROOT`` (default ``data/lakehouse``):
    ``<root>/<usecase>``.
    """
    root: str | None = None
    usecase: str | None = None
    if config is not None:
        usecase = getattr(getattr(config, "offline_store", None), "usecase", None)
        root = getattr(getattr(config, "offline_store", None), "lakehouse_root", None)
        repo_path = getattr(config, "repo_path", None)
        if root and "://" not in root and not Path(root).is_absolute() and repo_path:
            root = str(Path(repo_path) / root)
    if not root:
        from slipway.settings import load_settings
        from slipway.usecases import get_usecase

        root = load_settings(usecase or get_usecase().name).lakehouse_root
    return Lakehouse(root)


def canonical_type_string(t: pa.DataType) -> str:
    """The Arrow type as the string Feast's type inference understands.

    delta-rs reports lists as ``list<element: string>`` and may hand out large strings; Feast's
    ``pa_to_feast_value_type`` only knows ``list<item: ...>`` and maps ``large_string`` to JSON.
    (Arrow list equality ignores the child field's name, so a cast cannot fix the spelling.)
    """
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return f"list<item: {canonical_type_string(t.value_type)}>"
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    return str(t)


def delta_type_to_feast_value_type(type_str: str) -> ValueType:
    """Feast value type for an Arrow type string from a Delta schema.

    Extends Feast's Arrow mapping with what Delta tables commonly hold and Feast does not map:
    ``list<element: ...>`` spellings, large/view strings, dates (as timestamps), decimals
    (as doubles).
    """
    s = type_str.strip()
    for prefix in ("large_list<", "list<element: ", "large_list<element: ", "large_list<item: "):
        if s.startswith(prefix):
            s = "list<item: " + s[len(prefix) :]
            break
    is_list = s.startswith("list<item: ")
    inner = s[len("list<item: ") : -1] if is_list else s
    if inner in ("large_string", "string_view", "large_utf8", "utf8"):
        inner = "string"
    elif inner in ("large_binary", "binary_view"):
        inner = "binary"
    elif inner.startswith("date32") or inner.startswith("date64"):
        inner = "timestamp[us, tz=UTC]"
    elif inner.startswith("decimal"):
        inner = "double"
    elif inner == "halffloat":
        inner = "float"
    return pa_to_feast_value_type(f"list<item: {inner}>" if is_list else inner)


class DeltaSource(DataSource):
    """A lakehouse Delta table as a Feast batch source.

    Args:
        table: the lakehouse table, ``layer.name`` (``features.customer_behaviour``).
        name: the source name in the registry; defaults to the table name.
        timestamp_field: event-time column used for point-in-time joins.
        created_timestamp_column: optional column that breaks ties between rows with the same
            event time (the later-created row wins).
        field_mapping: source column -> feature / entity / timestamp name in the feature view.
        date_partition_column: optional date column the table is partitioned by; when set,
            retrieval also filters on it so Delta partitions outside the window are skipped.
    """

    def __init__(
        self,
        *,
        table: str,
        name: str | None = None,
        timestamp_field: str | None = "",
        created_timestamp_column: str | None = "",
        field_mapping: dict[str, str] | None = None,
        date_partition_column: str | None = "",
        description: str | None = "",
        tags: dict[str, str] | None = None,
        owner: str | None = "",
    ) -> None:
        parts = table.split(".")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"DeltaSource table must be 'layer.name', got {table!r}")
        self.table = table
        super().__init__(
            name=name or table,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            field_mapping=field_mapping,
            date_partition_column=date_partition_column,
            description=description,
            tags=tags,
            owner=owner,
        )

    # Python drops __hash__ when a subclass defines __eq__.
    def __hash__(self) -> int:
        return super().__hash__()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, DeltaSource) and super().__eq__(other) and self.table == other.table
        )

    def source_type(self) -> DataSourceProto.SourceType.ValueType:
        return DataSourceProto.CUSTOM_SOURCE

    # -- registry (de)serialisation ------------------------------------------------------------
    def to_proto(self) -> DataSourceProto:
        """The source's declaration, without Feast's created/updated bookkeeping timestamps.

        Feast stamps every ``DataSource`` with the time it was *constructed* and embeds that in
        each feature view's spec. A freshly parsed repo therefore never matches a materialized
        view's registered spec, and `feast plan` reports every materialized view as "Updated"
        (with only those timestamps differing). A source is a name for a table: its identity is
        what it declares, so the timestamps are left out and plan compares declarations.
        """
        proto = super().to_proto()
        proto.ClearField("meta")
        return proto

    def _to_proto_impl(self) -> DataSourceProto:
        options = DataSourceProto.CustomSourceOptions(
            configuration=json.dumps({"table": self.table}).encode("utf-8")
        )
        proto = DataSourceProto(
            name=self.name,
            type=DataSourceProto.CUSTOM_SOURCE,
            data_source_class_type=_CLASS_PATH,
            field_mapping=self.field_mapping,
            custom_options=options,
            description=self.description,
            tags=self.tags,
            owner=self.owner,
        )
        proto.timestamp_field = self.timestamp_field
        proto.created_timestamp_column = self.created_timestamp_column
        proto.date_partition_column = self.date_partition_column
        return proto

    @staticmethod
    def from_proto(data_source: DataSourceProto) -> DeltaSource:
        if not data_source.HasField("custom_options"):
            raise ValueError(f"data source {data_source.name!r} has no custom_options")
        options: dict[str, Any] = json.loads(data_source.custom_options.configuration or b"{}")
        if "table" not in options:
            raise ValueError(f"data source {data_source.name!r} does not name a Delta table")
        source = DeltaSource(
            table=options["table"],
            name=data_source.name,
            timestamp_field=data_source.timestamp_field,
            created_timestamp_column=data_source.created_timestamp_column,
            field_mapping=dict(data_source.field_mapping),
            date_partition_column=data_source.date_partition_column,
            description=data_source.description,
            tags=dict(data_source.tags),
            owner=data_source.owner,
        )
        # DataSource.from_proto does this for sources it dispatches; a direct call must too.
        source._extract_timestamps_from_proto(data_source)
        return source

    # -- schema ---------------------------------------------------------------------------------
    def arrow_schema(self, config: RepoConfig | None = None) -> pa.Schema:
        """The table's Arrow schema at its latest version (schema questions are not pinned reads)."""
        lakehouse = lakehouse_from_config(config)
        if not lakehouse.exists(self.table):
            raise ValueError(
                f"DeltaSource {self.name!r}: Delta table {self.table!r} not found at "
                f"{lakehouse.uri(self.table)}"
            )
        return lakehouse.dataset(self.table).schema

    def validate(self, config: RepoConfig) -> None:
        """Fail ``feast apply`` early when the table or a declared column is missing."""
        names = set(self.arrow_schema(config).names)
        wanted = {
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
            "date_partition_column": self.date_partition_column,
        }
        for role, column in wanted.items():
            if column and column not in names:
                raise ValueError(
                    f"DeltaSource {self.name!r}: {role} {column!r} is not a column of "
                    f"{self.table!r} (columns: {sorted(names)})"
                )
        for column in self.field_mapping:
            if column not in names:
                raise ValueError(
                    f"DeltaSource {self.name!r}: field_mapping names {column!r}, which is not a "
                    f"column of {self.table!r}"
                )

    @staticmethod
    def source_datatype_to_feast_value_type() -> Callable[[str], ValueType]:
        return delta_type_to_feast_value_type

    def get_table_column_names_and_types(self, config: RepoConfig) -> Iterable[tuple[str, str]]:
        return [(f.name, canonical_type_string(f.type)) for f in self.arrow_schema(config)]

    def get_table_query_string(self) -> str:
        """The lakehouse table name (this source has no SQL form; used in messages only)."""
        return self.table

"""Reading and writing the lakehouse's Delta tables through delta-rs, with versions recorded.

Why a wrapper and not bare ``deltalake`` calls:

* every write returns the table version it produced, so assets can record it and readers that
  feed training can pin it;
* partition re-runs replace exactly their date range (predicate overwrite) in one atomic commit,
  so re-running a partition is idempotent and a crash leaves the previous version readable;
* concurrent writers never duplicate rows: every write to an existing table is checked by
  Delta's commit conflict detection against the version it read, which rejects the second of
  two overlapping overwrites; the first write of a new table that loses the race to create it
  undoes its own commit. A write of an in-memory table is then retried against the new version
  (the later writer wins); a streamed write cannot be replayed and fails with
  :class:`ConcurrentWriteError`;
* reads go through a *native* pyarrow filesystem. delta-rs's default pyarrow dataset wraps a Rust
  object store whose teardown races pyarrow's IO threads at interpreter exit and aborts the
  process ("terminate called without an active exception", exit 134) — seen here with
  deltalake 1.6.6 on pyarrow 21 to 26;
* Arrow types are normalised at the edge (timestamps to microseconds UTC, large strings to
  strings) because delta-rs, Spark Connect and pandas disagree on them and a later predicate
  overwrite fails on type unification otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

UTC_US = pa.timestamp("us", tz="UTC")
WRITE_ATTEMPTS = 3  # an in-memory write that lost a commit race is retried this many times in all
WRITE_ID = "slipway_write_id"  # custom commit metadata: which commit a write produced


class ConcurrentWriteError(RuntimeError):
    """Another writer committed to the same rows while this write was in flight.

    Nothing of this write was committed; the table holds the other writer's version. Raised for
    streamed writes, which cannot be replayed, and for in-memory writes that kept losing.
    """


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date of the inclusive range ``[start, end]``, as partition ranges are given."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


@dataclass(frozen=True)
class TableRef:
    """A table at one version: what lineage records and what pinned reads take."""

    name: str
    uri: str
    version: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uri": self.uri, "version": self.version}


@dataclass(frozen=True)
class WriteResult:
    """What a write produced: the new version and how many rows went in."""

    name: str
    uri: str
    version: int
    rows_written: int

    @property
    def ref(self) -> TableRef:
        return TableRef(self.name, self.uri, self.version)


def _normalise_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(t):
        return UTC_US
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.list_(_normalise_type(t.value_type))
    if pa.types.is_dictionary(t):
        return _normalise_type(t.value_type)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _normalise_type(f.type), f.nullable) for f in t])
    return t


def normalise_arrow(table: pa.Table) -> pa.Table:
    """Cast to the lakehouse's canonical Arrow types (UTC microsecond timestamps, plain strings)."""
    target = pa.schema([pa.field(f.name, _normalise_type(f.type)) for f in table.schema])
    if target.equals(table.schema, check_metadata=False):
        return table
    return table.cast(target)


def _date_literal(value: dt.date | str) -> str:
    return (
        value.isoformat()
        if isinstance(value, dt.date)
        else dt.date.fromisoformat(value).isoformat()
    )


def storage_options_from_env(root: str) -> dict[str, str]:
    """Object-store options for delta-rs, taken from the standard environment variables only."""
    if not root.startswith(("s3://", "s3a://")):
        return {}
    opts: dict[str, str] = {}
    for env_name, key in (
        ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        ("AWS_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
        ("AWS_REGION", "AWS_REGION"),
        ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL"),
    ):
        if os.environ.get(env_name):
            opts[key] = os.environ[env_name]
    if opts.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"
    # Single-writer-per-partition is the lakehouse's contract; S3 has no atomic rename.
    opts.setdefault("AWS_S3_ALLOW_UNSAFE_RENAME", "true")
    return opts


class Lakehouse:
    """Delta tables named ``layer.name`` (``silver.transactions``) under one root.

    The root is a local path or an object-store URI (``s3://bucket/prefix``); both are accepted
    everywhere. Credentials come from the environment, never from configuration files.
    """

    def __init__(self, root: str | Path, storage_options: dict[str, str] | None = None) -> None:
        root = str(root)
        self.is_local = "://" not in root or root.startswith("file://")
        if self.is_local:
            root = str(Path(root.removeprefix("file://")).resolve())
        self.root = root.rstrip("/")
        self.storage_options = (
            storage_options if storage_options is not None else storage_options_from_env(root)
        )

    # -- addressing ---------------------------------------------------------------------------
    def uri(self, name: str) -> str:
        """The URI of table ``layer.name``."""
        parts = name.split(".")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"table names are 'layer.name', got {name!r}")
        return f"{self.root}/{parts[0]}/{parts[1]}"

    def path(self, *parts: str) -> str:
        """A non-table location under the root (model files, reports)."""
        return "/".join([self.root, *parts])

    def _table(self, name: str, version: int | None = None) -> DeltaTable:
        return DeltaTable(
            self.uri(name), version=version, storage_options=self.storage_options or None
        )

    def exists(self, name: str) -> bool:
        try:
            self._table(name)
        except TableNotFoundError:
            return False
        return True

    def version(self, name: str) -> int | None:
        """The latest version of a table, or None when it does not exist yet."""
        try:
            return self._table(name).version()
        except TableNotFoundError:
            return None

    def ref(self, name: str, version: int | None = None) -> TableRef:
        """A reference to a table at ``version`` (latest when None)."""
        v = self.version(name) if version is None else version
        if v is None:
            raise TableNotFoundError(f"no Delta table {name!r} at {self.uri(name)}")
        return TableRef(name, self.uri(name), v)

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        return self._table(name).history(limit)

    def latest_commit_metadata(self, name: str) -> tuple[int, dict[str, Any]] | None:
        """The latest version and its ``commit_metadata`` (None when there is no table)."""
        try:
            table = self._table(name)
        except TableNotFoundError:
            return None
        (entry,) = table.history(1)
        raw = entry.get("slipway")
        return table.version(), (json.loads(raw) if raw else {})

    def restore(
        self, name: str, version: int, commit_metadata: dict[str, Any] | None = None
    ) -> int:
        """Make ``version``'s contents the latest again (a new commit); returns the new version.

        For a commit that must not stay visible, e.g. one a crashed run left without the
        commits it belongs with. Time travel still reaches the undone version.
        """
        table = self._table(name)
        properties = (
            CommitProperties(
                custom_metadata={
                    "slipway": json.dumps(commit_metadata, sort_keys=True, default=str)
                }
            )
            if commit_metadata
            else None
        )
        table.restore(version, commit_properties=properties)
        return self._table(name).version()

    def commit_metadata(self, name: str, version: int) -> dict[str, Any]:
        """The ``commit_metadata`` written with ``version`` (empty when there was none)."""
        for entry in self._table(name).history():
            if entry.get("version") == version:
                raw = entry.get("slipway")
                return json.loads(raw) if raw else {}
        raise KeyError(f"{name} has no version {version} in its history")

    # -- reading ------------------------------------------------------------------------------
    def _filesystem(self, uri: str) -> pafs.FileSystem:
        if self.is_local:
            return pafs.SubTreeFileSystem(uri, pafs.LocalFileSystem())
        parsed = urlparse(uri)
        kwargs: dict[str, Any] = {}
        opts = self.storage_options
        if opts.get("AWS_ACCESS_KEY_ID"):
            kwargs["access_key"] = opts["AWS_ACCESS_KEY_ID"]
            kwargs["secret_key"] = opts.get("AWS_SECRET_ACCESS_KEY")
            kwargs["session_token"] = opts.get("AWS_SESSION_TOKEN")
        if opts.get("AWS_REGION"):
            kwargs["region"] = opts["AWS_REGION"]
        if opts.get("AWS_ENDPOINT_URL"):
            endpoint = urlparse(opts["AWS_ENDPOINT_URL"])
            kwargs["endpoint_override"] = endpoint.netloc or opts["AWS_ENDPOINT_URL"]
            kwargs["scheme"] = endpoint.scheme or "https"
        s3 = pafs.S3FileSystem(**kwargs)
        return pafs.SubTreeFileSystem(f"{parsed.netloc}{parsed.path}", s3)

    def dataset(self, name: str, version: int | None = None) -> pads.Dataset:
        """A pyarrow dataset over exactly one table version (safe to hand to DuckDB)."""
        table = self._table(name, version)
        return table.to_pyarrow_dataset(filesystem=self._filesystem(self.uri(name)))

    def read(
        self,
        name: str,
        *,
        version: int | None = None,
        columns: Sequence[str] | None = None,
        filter: pads.Expression | None = None,
        dates: tuple[dt.date | str, dt.date | str] | None = None,
        date_column: str = "date",
    ) -> pa.Table:
        """Read a table (a pinned ``version`` when given), optionally a closed date range."""
        expr = filter
        if dates is not None:
            start, end = (dt.date.fromisoformat(_date_literal(d)) for d in dates)
            rng = (pads.field(date_column) >= start) & (pads.field(date_column) <= end)
            expr = rng if expr is None else expr & rng
        data = self.dataset(name, version).to_table(
            columns=list(columns) if columns else None, filter=expr
        )
        return normalise_arrow(data)

    def rows_per_date(
        self,
        name: str,
        dates: tuple[dt.date | str, dt.date | str],
        *,
        version: int | None = None,
        date_column: str = "date",
    ) -> dict[dt.date, int]:
        """Rows of each date of the closed range ``dates`` in one table version (0 for a date
        without rows).

        A write that replaced a date range holds, at the version it produced, exactly the rows it
        wrote for each date: this splits one commit's figure into the days it covers, reading only
        the date column (partition-pruned where the table is partitioned by it).
        """
        start, end = (dt.date.fromisoformat(_date_literal(d)) for d in dates)
        counts = dict.fromkeys(days_between(start, end), 0)
        column = self.read(name, version=version, columns=[date_column], dates=(start, end))[
            date_column
        ]
        if pa.types.is_timestamp(column.type):
            column = pc.cast(column, pa.date32())
        for item in pc.value_counts(column).to_pylist():
            if item["values"] in counts:
                counts[item["values"]] = item["counts"]
        return counts

    def read_pandas(self, name: str, **kwargs: Any):
        """``read`` as a pandas DataFrame (timestamps stay tz-aware UTC)."""
        return self.read(name, **kwargs).to_pandas()

    # -- writing ------------------------------------------------------------------------------
    def write(
        self,
        name: str,
        data: pa.Table | pa.RecordBatchReader,
        *,
        mode: Literal["append", "overwrite"] = "append",
        replace_dates: tuple[dt.date | str, dt.date | str] | None = None,
        date_column: str = "date",
        partition_by: Sequence[str] | None = None,
        schema: pa.Schema | None = None,
        description: str | None = None,
        commit_metadata: dict[str, Any] | None = None,
    ) -> WriteResult:
        """Write ``data`` and return the version it produced.

        ``replace_dates=(start, end)`` replaces exactly that closed date range in one commit: rows
        of other dates stay, and rows of the range that are not in ``data`` disappear (an empty
        ``data`` empties the range). ``schema`` is enforced with a safe cast, so a lossy value
        raises here instead of being silently cast by the writer.
        """
        # A RecordBatchReader comes from write_batches, already in the lakehouse's types.
        if isinstance(data, pa.Table):
            data = normalise_arrow(data)
        if schema is not None and isinstance(data, pa.Table):
            data = data.select(schema.names).cast(
                pa.schema([pa.field(f.name, _normalise_type(f.type)) for f in schema]), safe=True
            )
        uri = self.uri(name)
        if self.is_local:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        properties = CommitProperties(
            custom_metadata={
                WRITE_ID: uuid.uuid4().hex,
                **(
                    {"slipway": json.dumps(commit_metadata, sort_keys=True, default=str)}
                    if commit_metadata
                    else {}
                ),
            }
        )
        if not self.exists(name):
            version = self._first_write(name, data, partition_by, description, properties)
            if version is not None:
                rows = data.num_rows if isinstance(data, pa.Table) else -1
                return WriteResult(name=name, uri=uri, version=version, rows_written=rows)
            if not isinstance(data, pa.Table):
                raise ConcurrentWriteError(
                    f"{name}: another writer created the table while this streamed write was "
                    "in flight; nothing of it was kept (a stream cannot be replayed): re-run "
                    "this step once the other run is done"
                )
        kwargs: dict[str, Any] = {
            "storage_options": self.storage_options or None,
            "configuration": None,
            "commit_properties": properties,
        }
        if replace_dates is not None:
            start, end = (_date_literal(d) for d in replace_dates)
            kwargs["predicate"] = f"{date_column} >= '{start}' AND {date_column} <= '{end}'"
            mode = "overwrite"
        elif mode == "overwrite":
            kwargs["schema_mode"] = "overwrite"
        attempts = WRITE_ATTEMPTS if isinstance(data, pa.Table) else 1
        for attempt in range(1, attempts + 1):
            try:
                write_deltalake(
                    uri, data, mode=mode, **{k: v for k, v in kwargs.items() if v is not None}
                )
                break
            except CommitFailedError as err:
                if attempt == attempts:
                    what = (
                        f"dates {replace_dates[0]}..{replace_dates[1]}"
                        if replace_dates is not None
                        else mode
                    )
                    raise ConcurrentWriteError(
                        f"{name}: another writer committed to the same rows ({what}) while this "
                        f"write was in flight, so nothing of it was committed and the table keeps "
                        f"the other writer's version (v{self.version(name)}); re-run this step "
                        f"once the other run is done. Delta said: {err}"
                    ) from err
        version = self._table(name).version()
        rows = data.num_rows if isinstance(data, pa.Table) else -1
        return WriteResult(name=name, uri=uri, version=version, rows_written=rows)

    def _first_write(
        self,
        name: str,
        data: pa.Table | pa.RecordBatchReader,
        partition_by: Sequence[str] | None,
        description: str | None,
        properties: CommitProperties,
    ) -> int | None:
        """Create the table with this write as its version 0; None if another writer won.

        Two first writes can both commit: delta-rs retries the loser as version 1, an overwrite
        that read no version and so removes nothing, and every row is there twice. The loser
        finds its own commit (by its write id) after the first one and restores the table to
        the version before it, so only one copy remains; it then returns None like a writer
        that found the table already there.
        """
        uri = self.uri(name)
        try:
            write_deltalake(
                uri,
                data,
                mode="error",
                partition_by=list(partition_by) if partition_by else None,
                description=description,
                storage_options=self.storage_options or None,
                commit_properties=properties,
            )
        except DeltaError as err:
            if "already exists" in str(err) and self.exists(name):
                return None
            raise
        table = self._table(name)
        ours = (properties.custom_metadata or {})[WRITE_ID]
        history = table.history()
        mine = next(h["version"] for h in history if h.get(WRITE_ID) == ours)
        firsts = [
            h["version"]
            for h in history
            if (h.get("operationParameters") or {}).get("mode") == "ErrorIfExists"
        ]
        if min(firsts) == mine:
            return mine
        if table.version() != mine:
            raise ConcurrentWriteError(
                f"{name}: this write and another both created the table, and more commits "
                f"followed (now v{table.version()}); restore it to v{mine - 1} by hand"
            )
        table.restore(mine - 1)
        return None

    # -- files (model artefacts, reports) -------------------------------------------------------
    def _file_fs(self) -> tuple[pafs.FileSystem, str]:
        if self.is_local:
            return pafs.LocalFileSystem(), self.root
        fs = self._filesystem(self.root)
        return fs, ""

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Write a file under the root atomically (temp name, then rename); returns its URI."""
        fs, base = self._file_fs()
        target = f"{base}/{relative}" if base else relative
        parent = target.rsplit("/", 1)[0]
        fs.create_dir(parent, recursive=True)
        tmp = f"{target}.tmp-{os.getpid()}"
        with fs.open_output_stream(tmp) as out:
            out.write(data)
        fs.move(tmp, target)
        return f"{self.root}/{relative}"

    def read_bytes(self, relative: str) -> bytes:
        fs, base = self._file_fs()
        with fs.open_input_stream(f"{base}/{relative}" if base else relative) as src:
            return src.read()

    def file_exists(self, relative: str) -> bool:
        fs, base = self._file_fs()
        return (
            fs.get_file_info(f"{base}/{relative}" if base else relative).type
            != pafs.FileType.NotFound
        )

    def write_batches(
        self,
        name: str,
        schema: pa.Schema,
        parts: Iterable[pa.Table],
        *,
        replace_dates: tuple[dt.date | str, dt.date | str] | None = None,
        partition_by: Sequence[str] | None = None,
        commit_metadata: dict[str, Any] | None = None,
        mode: Literal["append", "overwrite"] = "append",
    ) -> WriteResult:
        """Stream ``parts`` (tables of ``schema``) into ONE commit, holding one part at a time.

        For ranges too large to gather in memory (a 10M-row backfill): the writer pulls each part
        as it needs it, so peak memory is one part plus the writer's buffers. An exception while
        producing a part aborts the write before its commit, leaving the table as it was.
        """
        target = pa.schema([pa.field(f.name, _normalise_type(f.type)) for f in schema])
        count = 0

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal count
            for part in parts:
                table = normalise_arrow(part).select(target.names).cast(target, safe=True)
                count += table.num_rows
                yield from table.to_batches()

        reader = pa.RecordBatchReader.from_batches(target, batches())
        result = self.write(
            name,
            reader,  # type: ignore[arg-type]
            mode=mode,
            replace_dates=replace_dates,
            partition_by=partition_by,
            commit_metadata=commit_metadata,
        )
        return WriteResult(result.name, result.uri, result.version, count)

    def delete(self, name: str, predicate: str) -> int | None:
        """Delete rows matching a SQL predicate; returns the new version (None if no table)."""
        if not self.exists(name):
            return None
        table = self._table(name)
        table.delete(predicate)
        return self._table(name).version()

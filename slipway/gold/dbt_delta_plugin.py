"""A dbt-duckdb plugin that reads lakehouse Delta tables as sources and writes marts as Delta.

Enabled in ``dbt_project/profiles.yml`` (``module: slipway.gold.dbt_delta_plugin``, alias
``lakehouse``). A source without a ``version`` pin that is a stream's silver (or quarantine) table
is read at the version the stream's publish record names (``slipway.ingest.publish``), not its
latest: a silver commit left by a run killed before its audit is never built on.

Why a plugin of our own rather than dbt-duckdb's ``delta`` plugin:

* reads must go through :class:`slipway.lakehouse.Lakehouse` — delta-rs's default pyarrow
  filesystem aborts the dbt process at exit (exit 134) and DuckDB's ``delta`` extension cannot be
  downloaded here; the built-in plugin's ``as_of_version`` was also seen ignored;
* dbt-duckdb cannot write Delta: an ``external`` materialization writes a scratch parquet file and
  hands it to :meth:`Plugin.store`, which commits it with ``Lakehouse.write`` (full overwrite, or a
  predicate overwrite of exactly a date window, so a re-run of a window is idempotent).

Source ``meta`` understood by :meth:`Plugin.load` (``plugin: lakehouse`` selects this plugin):
``lakehouse_table`` (``layer.name``; default ``<source name>.<table name>``), ``version`` (pin),
``start_date``/``end_date`` (inclusive ISO dates; blank means unbounded) and ``date_column``.
dbt-duckdb materializes each loaded source as a DuckDB *table* (``default_materialization``):
views over in-process registrations break in a new process.

Model config understood by :meth:`Plugin.store`: ``lakehouse_table`` (default
``gold.<model name>``), ``delta_partition_by`` (list of columns, used when the table is created),
``replace_dates`` (``[start, end]``: replace exactly that closed range; absent: overwrite all) and
``date_column``.

Where the lakehouse and the scratch folder are is read from the environment when dbt runs
(:func:`lakehouse_root`, :func:`scratch_dir`), never rendered into ``profiles.yml``: dbt hashes
the profile's rendered connection settings into its partial-parse state, so a path that differs
between a hand-run dbt and Dagster would make each re-parse the project after the other.

``dbt docs generate``: the marts are Delta tables, not DuckDB relations, so the catalog query of
a fresh in-memory database found none of them (0 nodes). While dbt generates docs, the plugin
creates an *empty* DuckDB table per mart with the schema of its Delta table
(:meth:`Plugin.configure_cursor`), so the catalog carries each mart's real columns and types.

When the environment variable ``SLIPWAY_DBT_RECEIPTS`` names a file, one JSON line per read and per
write is appended to it (table, version, rows, window). The Dagster assets use it to attach the
exact Delta versions read and written to each materialization; plain dbt runs just log them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import SourceConfig, TargetConfig
from dbt.adapters.events.logging import AdapterLogger

from slipway.ingest.publish import published_version
from slipway.lakehouse import Lakehouse
from slipway.settings import load_settings

logger = AdapterLogger("SlipwayLakehouse")
RECEIPTS_ENV = "SLIPWAY_DBT_RECEIPTS"
# The lakehouse dbt reads and writes: one use case's own. Not ``SLIPWAY_LAKEHOUSE_ROOT``, which
# is the deployment's root above every use case's.
LAKEHOUSE_ENV = "SLIPWAY_DBT_LAKEHOUSE_ROOT"
# The external materialization's scratch folder (macros/external_location.sql reads it too).
SCRATCH_ENV = "SLIPWAY_DBT_SCRATCH"
_RECEIPT_LOCK = threading.Lock()


def _blank(value: Any) -> bool:
    return value is None or (
        isinstance(value, str) and value.strip().lower() in ("", "none", "null")
    )


def parse_window(start: Any, end: Any) -> tuple[dt.date, dt.date] | None:
    """``(start, end)`` as dates, or None when both are blank; half a window is an error."""
    if _blank(start) and _blank(end):
        return None
    if _blank(start) or _blank(end):
        raise ValueError(
            f"a date window needs both start_date and end_date, got {start!r}..{end!r}"
        )
    first, last = (
        v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v).strip()) for v in (start, end)
    )
    if first > last:
        raise ValueError(f"start_date {first} is after end_date {last}")
    return first, last


def _receipt(record: dict[str, Any]) -> None:
    """Append one JSON line to ``$SLIPWAY_DBT_RECEIPTS`` (no-op when unset)."""
    path = os.environ.get(RECEIPTS_ENV, "").strip()
    if not path:
        return
    line = json.dumps(record, default=str)
    with _RECEIPT_LOCK, open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


_EMPTY_TYPES = {
    "date": pa.date32(),
    "string": pa.string(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def empty_table(columns: dict[str, str]) -> pa.Table:
    """An empty table of a source's declared ``empty_schema`` (column -> type name)."""
    unknown = {t for t in columns.values() if t not in _EMPTY_TYPES}
    if unknown:
        raise ValueError(
            f"empty_schema types must be among {sorted(_EMPTY_TYPES)}, got {sorted(unknown)}"
        )
    return pa.schema([(name, _EMPTY_TYPES[kind]) for name, kind in columns.items()]).empty_table()


def read_scratch(path: str) -> pa.Table:
    """Read the external materialization's parquet file, dropping its empty-result placeholder.

    dbt-duckdb's ``external`` materialization writes one all-NULL row when the model returns no
    rows (so the file carries a schema). Every mart has non-null keys, so a single all-NULL row
    means "empty": committing it would put a phantom row into the Delta table.
    """
    table = pq.read_table(path)
    if table.num_rows == 1 and all(
        table.column(i).null_count == 1 for i in range(table.num_columns)
    ):
        return table.slice(0, 0)
    return table


def lakehouse_root(configured: Any = None) -> str:
    """The lakehouse this dbt invocation reads and writes.

    The plugin's ``root`` config when a profile sets one, else ``$SLIPWAY_DBT_LAKEHOUSE_ROOT``
    (Dagster sets it to the use case's root), else the settings' default for ``SLIPWAY_USECASE``:
    the same rule as every other Slipway process, so dbt run by hand and by Dagster agree.
    """
    root = str(configured or "").strip() or os.environ.get(LAKEHOUSE_ENV, "").strip()
    if root:
        return root
    from slipway.usecases import get_usecase

    return load_settings(get_usecase().name).lakehouse_root


def scratch_dir(external_root: str) -> str:
    """The scratch folder of the external materialization: ``$SLIPWAY_DBT_SCRATCH``, else the
    profile's ``external_root`` (the rule of ``macros/external_location.sql``)."""
    return os.environ.get(SCRATCH_ENV, "").strip() or external_root


def _docs_manifest() -> dict[str, Any] | None:
    """The manifest of the ``dbt docs generate`` now running, or None (another command, or its
    manifest not written yet).

    dbt writes ``manifest.json`` into the target folder once it has parsed; the plugin has no
    other handle on it. A file left by an earlier invocation is not this one's (its
    ``invocation_id`` differs): the models may have changed since.
    """
    from dbt.flags import get_flags
    from dbt_common.invocation import get_invocation_id

    flags = get_flags()
    if getattr(flags, "WHICH", None) != "generate":
        return None
    target = Path(getattr(flags, "TARGET_PATH", None) or "target")
    if not target.is_absolute():
        target = Path(getattr(flags, "PROJECT_DIR", None) or ".") / target
    try:
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("metadata", {}).get("invocation_id") != get_invocation_id():
        return None
    return manifest


def describe_marts(conn: Any, lakehouse: Lakehouse, manifest: dict[str, Any]) -> list[str]:
    """Create an empty DuckDB table per mart with its Delta table's schema; returns their tables.

    A mart not written yet is left out (the docs then show its declared columns only).
    """
    from slipway.gold.marts import mart_relations

    described = []
    for relation in mart_relations(manifest):
        if lakehouse.version(relation.table) is None:
            continue
        empty = lakehouse.dataset(relation.table).schema.empty_table()
        view = f"__slipway_describe_{relation.identifier}"
        conn.register(view, empty)
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{relation.schema}"')
        conn.execute(
            f'CREATE OR REPLACE TABLE "{relation.schema}"."{relation.identifier}" '
            f'AS SELECT * FROM "{view}"'
        )
        conn.unregister(view)
        described.append(relation.table)
    if described:
        logger.info(f"docs: described {len(described)} marts from their Delta schemas")
    return described


class Plugin(BasePlugin):
    """Reads sources from and writes ``external`` models to the lakehouse (see the module doc)."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.lakehouse = Lakehouse(lakehouse_root(plugin_config.get("root")))
        # Every source version this dbt invocation read, stored in each mart's Delta commit, so
        # lineage can walk from a mart version back to the silver versions it was built from.
        self.read_versions: dict[str, int] = {}
        # The marts described to DuckDB for ``dbt docs generate`` (None: not yet).
        self.described: list[str] | None = None
        # DuckDB's COPY (the external materialization's scratch write) does not create folders.
        if self.creds is not None:
            scratch = scratch_dir(str(self.creds.external_root))
            if "://" not in scratch:
                Path(scratch).mkdir(parents=True, exist_ok=True)

    def default_materialization(self) -> str:
        return "table"

    # -- docs ---------------------------------------------------------------------------------
    def configure_cursor(self, cursor: Any) -> None:
        """While ``dbt docs generate`` runs: describe every mart to DuckDB once (module doc).

        Per cursor, not per connection: dbt may open the first connection while it parses,
        before this invocation's manifest exists; the catalog query comes on a later cursor.
        """
        if self.described is None:
            manifest = _docs_manifest()
            if manifest is not None:
                self.described = describe_marts(cursor, self.lakehouse, manifest)

    # -- sources ------------------------------------------------------------------------------
    def load(self, source_config: SourceConfig) -> pa.Table:
        name = (
            source_config.get("lakehouse_table")
            or f"{source_config.schema}.{source_config.identifier}"
        )
        version = source_config.get("version")
        version = None if _blank(version) else int(version)
        window = parse_window(source_config.get("start_date"), source_config.get("end_date"))
        date_column = source_config.get("date_column", "date")
        if version is None:  # a stream's silver: the version its publish record names
            version = published_version(self.lakehouse, name)
        ref_version = self.lakehouse.version(name) if version is None else version
        if ref_version is None and source_config.get("empty_schema"):
            # A history that has not started yet (e.g. monitoring before the first scored day).
            logger.info(f"{name} does not exist yet: loading it empty, as its source declares")
            return empty_table(source_config.get("empty_schema"))
        if ref_version is None:
            raise RuntimeError(
                f"Delta table {name!r} does not exist under {self.lakehouse.root}: "
                "materialize its upstream asset first"
            )
        data = self.lakehouse.read(name, version=ref_version, dates=window, date_column=date_column)
        self.read_versions[name] = ref_version
        span = f" dates {window[0]}..{window[1]}" if window else ""
        logger.info(f"loaded {name} v{ref_version}{span}: {data.num_rows} rows")
        _receipt(
            {
                "op": "read",
                "table": name,
                "version": ref_version,
                "rows": data.num_rows,
                "window": [str(d) for d in window] if window else None,
            }
        )
        return data

    # -- models -------------------------------------------------------------------------------
    def store(self, target_config: TargetConfig) -> None:
        config = target_config.config
        if target_config.location is None:
            raise RuntimeError("the lakehouse plugin stores 'external' materializations only")
        name = config.get("lakehouse_table") or f"gold.{target_config.relation.identifier}"
        date_column = config.get("date_column") or "date"
        window_value = config.get("replace_dates")
        window = parse_window(*window_value) if window_value else None
        partition_by = config.get("delta_partition_by") or None
        if isinstance(partition_by, str):
            partition_by = [partition_by]
        data = read_scratch(target_config.location.path)
        if window is not None and data.num_rows:
            dates = data[date_column]
            lo, hi = pc.min(dates).as_py(), pc.max(dates).as_py()
            if lo < window[0] or hi > window[1]:
                raise RuntimeError(
                    f"{name}: rows dated {lo}..{hi} fall outside the window {window[0]}..{window[1]} "
                    "being replaced; filter the model on the same window"
                )
        lineage = {
            "model": target_config.relation.identifier,
            "read_versions": dict(self.read_versions),
        }
        if window is not None:
            result = self.lakehouse.write(
                name,
                data,
                replace_dates=window,
                date_column=date_column,
                partition_by=partition_by,
                commit_metadata=lineage,
            )
        else:
            result = self.lakehouse.write(
                name, data, mode="overwrite", partition_by=partition_by, commit_metadata=lineage
            )
        span = f" (replaced {window[0]}..{window[1]})" if window else " (full overwrite)"
        logger.info(f"wrote {name} v{result.version}: {result.rows_written} rows{span}")
        _receipt(
            {
                "op": "write",
                "table": name,
                "model": target_config.relation.identifier,
                "version": result.version,
                "rows": result.rows_written,
                "window": [str(d) for d in window] if window else None,
                "scratch": target_config.location.path,
            }
        )

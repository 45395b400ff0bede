"""Metadata helpers so every asset shows the same things in the UI: version, counts, a preview.

A run over a partition range makes one materialization per partition. Figures that belong to one
day (rows written, rows quarantined, a day's drift) go on that day's event
(:func:`add_partition_metadata`); figures only the whole range has are named ``range_*`` and come
with ``range_start``/``range_end`` (:func:`range_written`), so no day shows the range's total as
its own. The Delta version a step committed is the asset's data version (:func:`data_version`):
Dagster's staleness view then follows the data, not the code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from slipway.lakehouse import TableRef, WriteResult

PREVIEW_ROWS = 10


def preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """A small markdown preview; wide values are clipped so the table stays readable."""
    if frame is None or frame.empty:
        return dg.MetadataValue.md("_no rows_")
    shown = frame.head(rows).copy()
    for col in shown.columns:
        if shown[col].dtype == object:
            shown[col] = shown[col].map(
                lambda v: (str(v)[:60] + "…") if v is not None and len(str(v)) > 60 else v
            )
    return dg.MetadataValue.md(shown.to_markdown(index=False))


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def written(result: WriteResult, prefix: str = "") -> dict[str, Any]:
    """Version, URI and rows of one table write (an unpartitioned step, or one partition)."""
    return {
        f"{prefix}table_version": result.version,
        f"{prefix}table_uri": dg.MetadataValue.path(result.uri),
        f"{prefix}rows_written": result.rows_written,
    }


def range_written(
    result: WriteResult, start: dt.date, end: dt.date, prefix: str = ""
) -> dict[str, Any]:
    """Version and URI of one commit that replaced ``[start, end]``, and its rows as the
    *range's* (``range_rows_written``): each day's own rows go on its event
    (:func:`add_partition_metadata`)."""
    return {
        f"{prefix}table_version": result.version,
        f"{prefix}table_uri": dg.MetadataValue.path(result.uri),
        f"{prefix}range_rows_written": result.rows_written,
        "range_start": start.isoformat(),
        "range_end": end.isoformat(),
    }


def data_version(result: WriteResult | int) -> dg.DataVersion:
    """The Delta version a step wrote, as the asset's data version."""
    return dg.DataVersion(str(result if isinstance(result, int) else result.version))


def add_partition_metadata(
    context: dg.AssetExecutionContext,
    figures: Callable[[dt.date], Mapping[str, Any]],
    asset_key: dg.AssetKey | None = None,
) -> None:
    """Put ``figures(day)`` on the event of each partition the run materializes.

    Partition-scoped metadata wins over the step's own (Dagster merges the two per event), so a
    key given here is the day's even where the step's result carries it too.
    """
    for key in context.partition_keys:
        context.add_asset_metadata(
            dict(figures(dt.date.fromisoformat(key))), asset_key=asset_key, partition_key=key
        )


def day_rows(counts: Mapping[dt.date, int], day: dt.date) -> dict[str, Any]:
    """A day's rows written, also as Dagster's row count (the UI's column of that name)."""
    rows = counts.get(day, 0)
    return {"rows_written": rows, "dagster/row_count": rows}


def read_versions(refs: dict[str, TableRef] | list[TableRef]) -> dg.MetadataValue:
    """The exact upstream table versions a step read (lineage)."""
    items = refs.values() if isinstance(refs, dict) else refs
    return dg.MetadataValue.json({r.name: r.version for r in items})

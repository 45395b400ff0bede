"""Metadata helpers so every asset shows the same things in the UI: version, counts, a preview."""

from __future__ import annotations

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
    """Version, URI and rows of one table write."""
    return {
        f"{prefix}table_version": result.version,
        f"{prefix}table_uri": dg.MetadataValue.path(result.uri),
        f"{prefix}rows_written": result.rows_written,
    }


def read_versions(refs: dict[str, TableRef] | list[TableRef]) -> dg.MetadataValue:
    """The exact upstream table versions a step read (lineage)."""
    items = refs.values() if isinstance(refs, dict) else refs
    return dg.MetadataValue.json({r.name: r.version for r in items})

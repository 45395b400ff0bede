"""The monitoring tables: their names, schemas, and the idempotent day-range writes.

Both tables are keyed by day and written with a predicate overwrite of exactly the days a run
processed, so re-running a day replaces its rows instead of adding a second copy, and a crash
leaves the previous version readable (the lakehouse's contract for every partitioned table).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from slipway.lakehouse import Lakehouse, WriteResult

DRIFT_METRICS = "monitoring.drift_metrics"
PERFORMANCE = "monitoring.performance"

# ``metric`` values of monitoring.drift_metrics.
VALUE_DRIFT = "value_drift"
"""One model feature: Evidently's per-column drift test (statistic vs threshold)."""
DRIFT_SHARE = "drift_share"
"""The day as a whole: share of drifted monitored features vs ``MonitoringSpec.drift_share``."""
PREDICTION_DRIFT = "prediction_drift"
"""The champion's score distribution vs its scores on the reference sample."""

DATASET_FEATURE = "*"
SCORE_FEATURE = "score"

DRIFT_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32()),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.int64()),
        pa.field("feature", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("stattest", pa.string()),
        pa.field("statistic", pa.float64()),
        pa.field("threshold", pa.float64()),
        pa.field("drifted", pa.bool_()),
        pa.field("rows", pa.int64()),
        pa.field("sample_size", pa.int64()),
        pa.field("sample_seed", pa.int64()),
        pa.field("reference_size", pa.int64()),
        pa.field("reference_uri", pa.string()),
        pa.field("report_uri", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("computed_at", pa.timestamp("us", tz="UTC")),
        pa.field("run_id", pa.string()),
        # how many trailing days the current side covered (1: the day alone)
        pa.field("window_days", pa.int64()),
        # which reference the row was judged against: training-set table, version and days
        pa.field("reference_table", pa.string()),
        pa.field("reference_version", pa.int64()),
        pa.field("reference_start", pa.date32()),
        pa.field("reference_end", pa.date32()),
    ]
)

# ``status`` values of monitoring.performance.
EVALUATED = "evaluated"
TOO_FEW_POSITIVES = "too_few_positives"

PERFORMANCE_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32()),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.int64()),
        pa.field("status", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("positives", pa.int64()),
        pa.field("pr_auc", pa.float64()),
        pa.field("recall_at_precision", pa.float64()),
        pa.field("precision_target", pa.float64()),
        pa.field("reference_pr_auc", pa.float64()),
        pa.field("reference_recall", pa.float64()),
        pa.field("pr_auc_drop", pa.float64()),
        pa.field("degraded", pa.bool_()),
        pa.field("labels_as_of", pa.date32()),
        pa.field("predictions_version", pa.int64()),
        pa.field("labels_version", pa.int64()),
        pa.field("computed_at", pa.timestamp("us", tz="UTC")),
        pa.field("run_id", pa.string()),
        # the like-with-like test (slipway.monitoring.performance): positives caught at the
        # validation operating threshold against the validation recall there
        pa.field("operating_threshold", pa.float64()),
        pa.field("caught", pa.int64()),
        pa.field("recall_at_threshold", pa.float64()),
        pa.field("reference_recall_at_threshold", pa.float64()),
        pa.field("dispersion", pa.float64()),
        pa.field("p_value", pa.float64()),
        pa.field("reference_pooled_pr_auc", pa.float64()),
        pa.field("excluded", pa.int64()),
        pa.field("labels_table", pa.string()),
    ]
)


def _table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=schema)


def replace_days(
    lakehouse: Lakehouse,
    name: str,
    rows: Sequence[dict[str, Any]],
    schema: pa.Schema,
    start: dt.date,
    end: dt.date,
    commit_metadata: dict[str, Any] | None = None,
) -> WriteResult:
    """Replace exactly the days ``[start, end]`` of ``name`` with ``rows`` (one atomic commit).

    Rows outside the range are refused: they would survive the predicate and break idempotency.
    """
    outside = [r["date"] for r in rows if not start <= r["date"] <= end]
    if outside:
        raise ValueError(f"rows for {sorted(set(outside))} are outside the range {start}..{end}")
    _add_missing_columns(lakehouse, name, schema)
    return lakehouse.write(
        name,
        _table(rows, schema),
        replace_dates=(start, end),
        partition_by=["date"],
        schema=schema,
        commit_metadata=commit_metadata,
        description=f"Slipway monitoring: {name}",
    )


def _add_missing_columns(lakehouse: Lakehouse, name: str, schema: pa.Schema) -> None:
    """Give a table written by older code this schema's new columns (null), in one rewrite.

    A predicate overwrite cannot add columns; the monitoring tables are small (a few rows per
    feature and day), so rewriting them once is cheaper than a second code path.
    """
    if not lakehouse.exists(name):
        return
    current = lakehouse.read(name)
    missing = [f for f in schema if f.name not in current.schema.names]
    if not missing:
        return
    for f in missing:
        current = current.append_column(f, pa.nulls(current.num_rows, type=f.type))
    lakehouse.write(
        name,
        current,
        mode="overwrite",
        partition_by=["date"],
        schema=schema,
        commit_metadata={"migration": f"added {[f.name for f in missing]}"},
    )


def read_days(
    lakehouse: Lakehouse, name: str, start: dt.date | None = None, end: dt.date | None = None
) -> pa.Table:
    """Rows of ``name`` for ``[start, end]`` (everything when no range), empty if no table yet."""
    schema = DRIFT_SCHEMA if name == DRIFT_METRICS else PERFORMANCE_SCHEMA
    if not lakehouse.exists(name):
        return schema.empty_table()
    if start is None or end is None:
        return lakehouse.read(name)
    return lakehouse.read(name, dates=(start, end))

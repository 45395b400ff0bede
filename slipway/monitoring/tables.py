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
    return lakehouse.write(
        name,
        _table(rows, schema),
        replace_dates=(start, end),
        partition_by=["date"],
        schema=schema,
        commit_metadata=commit_metadata,
        description=f"Slipway monitoring: {name}",
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

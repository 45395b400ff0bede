"""Build a feature table for a date range: read pinned inputs, run the builder, check, write.

Inputs are read at the version that is current when the build starts, and those versions are
returned so the asset records them: a training set built later can then say exactly which
transactions and labels its features came from.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from slipway.ingest.contract import contract_frame
from slipway.lakehouse import Lakehouse, TableRef, WriteResult
from slipway.usecase import FeatureTable

log = logging.getLogger(__name__)


def feature_table_name(table: FeatureTable) -> str:
    return f"features.{table.name}"


@dataclass
class FeatureBuildResult:
    written: WriteResult
    inputs: dict[str, TableRef]
    rows: int
    preview: pd.DataFrame


def _input_frame(
    spark, lakehouse: Lakehouse, ref: TableRef, start: dt.date | None, end: dt.date | None
):
    from pyspark.sql import functions as F

    df = spark.read.format("delta").option("versionAsOf", ref.version).load(ref.uri)
    if start is not None and end is not None and "date" in df.columns:
        df = df.where(
            (F.col("date") >= F.lit(start.isoformat()).cast("date"))
            & (F.col("date") <= F.lit(end.isoformat()).cast("date"))
        )
    return df


def build_feature_table(
    lakehouse: Lakehouse,
    spark,
    table: FeatureTable,
    start: dt.date | None,
    end: dt.date | None,
) -> FeatureBuildResult:
    """Compute ``table`` for ``[start, end]`` (whole table when unpartitioned) and write it."""
    refs = {name: lakehouse.ref(name) for name in table.inputs}
    lookback_start = start - dt.timedelta(days=table.lookback_days) if start else None
    inputs = {
        name: _input_frame(spark, lakehouse, ref, lookback_start, end) for name, ref in refs.items()
    }
    log.info(
        f"building {feature_table_name(table)} for {start}..{end} from "
        + ", ".join(f"{r.name}@v{r.version}" for r in refs.values())
    )
    result = table.build(inputs, start, end).toArrow()
    log.info(f"{feature_table_name(table)}: {result.num_rows} rows computed")
    lineage = {"read_versions": {name: ref.version for name, ref in refs.items()}}
    if table.partitioned:
        assert start is not None and end is not None
        written = lakehouse.write(
            feature_table_name(table),
            result,
            replace_dates=(start, end),
            partition_by=["date"],
            commit_metadata=lineage,
        )
    else:
        written = lakehouse.write(
            feature_table_name(table), result, mode="overwrite", commit_metadata=lineage
        )
    return FeatureBuildResult(
        written=written, inputs=refs, rows=result.num_rows, preview=result.slice(0, 10).to_pandas()
    )


@dataclass
class FeatureCheckResult:
    rows: int
    failures: pd.DataFrame

    @property
    def passed(self) -> bool:
        return self.failures.empty


def check_feature_table(
    lakehouse: Lakehouse, table: FeatureTable, start: dt.date | None, end: dt.date | None
) -> FeatureCheckResult:
    """Validate the rows of ``[start, end]`` as they are stored, with the table's contract."""
    from pandera.errors import SchemaErrors

    name = feature_table_name(table)
    data: pa.Table = (
        lakehouse.read(name, dates=(start, end))
        if table.partitioned and start and end
        else lakehouse.read(name)
    )
    if data.num_rows == 0:
        return FeatureCheckResult(0, pd.DataFrame())
    frame = contract_frame(data)
    try:
        table.contract().validate(frame, lazy=True)
    except SchemaErrors as err:
        return FeatureCheckResult(data.num_rows, err.failure_cases)
    return FeatureCheckResult(data.num_rows, pd.DataFrame())

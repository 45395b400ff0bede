"""Spark transformations from bronze lines to typed silver candidates (pure DataFrame functions).

These run unchanged on Sail, on any Spark Connect server and on JVM Spark (the parity tests run
them on both). Nothing is dropped here: every bronze row comes out once, with flags that say what
is wrong with it, and the contract step decides between silver and quarantine.

Parsing goes through ``map<string,string>`` rather than a struct so that a renamed or missing
field is *seen* (the key set is compared with the declared fields) instead of silently becoming
null, and so that a value that does not cast is told apart from a JSON null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from slipway.usecase import Field, Stream

LINEAGE_COLUMNS = ("source_file", "source_line", "ingest_run_id", "ingested_at")
FLAG_COLUMNS = (
    "_json_ok",
    "_missing_fields",
    "_unexpected_fields",
    "_cast_failures",
    "_exact_duplicate",
    "_conflicting_duplicate",
)

_SPARK_TYPES = {
    "string": "string",
    "double": "double",
    "long": "bigint",
    "boolean": "boolean",
    "timestamp": "timestamp",
    "date": "date",
}


def _typed(raw: Column, field: Field) -> Column:
    if field.dtype == "string":
        value = F.trim(raw)
        if field.normalise == "upper":
            value = F.upper(value)
        elif field.normalise == "lower":
            value = F.lower(value)
        return value
    return F.trim(raw).try_cast(_SPARK_TYPES[field.dtype])


def _names_where(conditions: Sequence[tuple[str, Column]]) -> Column:
    """An array of the names whose condition holds (empty array when none)."""
    if not conditions:
        return F.array().cast("array<string>")
    parts = [F.when(cond, F.lit(name)) for name, cond in conditions]
    return F.array_compact(F.array(*parts))


def parse_lines(bronze: DataFrame, fields: Sequence[Field]) -> DataFrame:
    """Parse bronze ``raw`` JSON lines into typed columns plus structural flags.

    Output: ``date``, the declared fields (typed, normalised), lineage columns, ``raw`` and
    ``_json_ok``, ``_missing_fields``, ``_unexpected_fields``, ``_cast_failures``.
    """
    parsed = bronze.withColumn("_map", F.from_json(F.col("raw"), "map<string,string>"))
    keys = F.map_keys(F.col("_map"))
    known = F.array(*[F.lit(f.name) for f in fields])
    typed = [_typed(F.col("_map").getItem(f.name), f).alias(f.name) for f in fields]
    missing = _names_where(
        [(f.name, ~F.array_contains(keys, f.name)) for f in fields if f.required]
    )
    cast_failures = _names_where(
        [
            (f.name, F.col("_map").getItem(f.name).isNotNull() & F.col(f.name).isNull())
            for f in fields
            if f.dtype != "string"
        ]
    )
    return (
        parsed.select(
            "date",
            *typed,
            *LINEAGE_COLUMNS,
            "raw",
            F.col("_map").isNotNull().alias("_json_ok"),
            F.coalesce(missing, F.array().cast("array<string>")).alias("_missing_fields"),
            # Both sides cast: Sail refuses to unify List(Utf8) with List(non-null Utf8).
            F.coalesce(
                F.array_except(keys.cast("array<string>"), known.cast("array<string>")),
                F.array().cast("array<string>"),
            ).alias("_unexpected_fields"),
            F.col("_map"),
        )
        .withColumn("_cast_failures", F.coalesce(cast_failures, F.array().cast("array<string>")))
        .withColumn(
            "_missing_fields",
            F.when(F.col("_json_ok"), F.col("_missing_fields")).otherwise(
                F.array().cast("array<string>")
            ),
        )
        .drop("_map")
    )


def flag_duplicates(parsed: DataFrame, key: str, fields: Sequence[Field]) -> DataFrame:
    """Flag exact duplicates (same values as an earlier line) and conflicting ones (same key).

    "Earlier" means landing order: source file, then line. Exact duplicates are dropped and
    counted; a conflicting duplicate (same key, different values) is quarantined, keeping the
    first delivery, because silently picking one version would hide an upstream defect.
    """
    order = [F.col("source_file"), F.col("source_line")]
    eligible = F.col("_json_ok") & F.col(key).isNotNull()
    by_values = Window.partitionBy("date", *[f.name for f in fields]).orderBy(*order)
    by_key = Window.partitionBy("date", key).orderBy(*order)
    flagged = parsed.withColumn(
        "_exact_duplicate", eligible & (F.row_number().over(by_values) > F.lit(1))
    )
    return flagged.withColumn(
        "_conflicting_duplicate",
        eligible & ~F.col("_exact_duplicate") & (F.row_number().over(by_key) > F.lit(1)),
    )


def derive_columns(df: DataFrame, derived: Mapping[str, Column]) -> DataFrame:
    """Add the use case's derived columns (e.g. amounts in the reporting currency)."""
    for name, expr in derived.items():
        df = df.withColumn(name, expr)
    return df


def silver_candidates(bronze: DataFrame, stream: Stream) -> DataFrame:
    """Bronze rows of a stream -> typed, normalised, duplicate-flagged candidates for silver."""
    parsed = parse_lines(bronze, stream.fields)
    if stream.derive is not None:
        parsed = derive_columns(parsed, stream.derive())
    return flag_duplicates(parsed, stream.key, stream.fields)

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

    The line is parsed once into a struct of strings (every JSON scalar keeps its text, so a
    value that will not cast is still seen) and its key set is read with ``json_object_keys``:
    an absent key (a renamed field) is told apart from a JSON null, and a line that is not a
    JSON object has no key set at all. Each later expression reads plain columns, never the JSON.
    """
    schema = ", ".join(f"`{f.name}` string" for f in fields)
    raw_names = {f.name: f"_raw_{f.name}" for f in fields}
    parsed = bronze.select(
        "date",
        *LINEAGE_COLUMNS,
        "raw",
        F.from_json(F.col("raw"), schema).alias("_s"),
        F.json_object_keys(F.col("raw")).cast("array<string>").alias("_keys"),
    ).select(
        "date",
        *LINEAGE_COLUMNS,
        "raw",
        "_keys",
        *[F.col(f"_s.{f.name}").alias(raw_names[f.name]) for f in fields],
    )
    keys = F.col("_keys")
    empty = F.array().cast("array<string>")
    known = F.array(*[F.lit(f.name) for f in fields]).cast("array<string>")
    typed = [_typed(F.col(raw_names[f.name]), f).alias(f.name) for f in fields]
    missing = _names_where(
        [(f.name, ~F.array_contains(keys, f.name)) for f in fields if f.required]
    )
    json_ok = keys.isNotNull()
    out = parsed.select(
        "date",
        *typed,
        *LINEAGE_COLUMNS,
        "raw",
        json_ok.alias("_json_ok"),
        F.when(json_ok, missing).otherwise(empty).alias("_missing_fields"),
        # Both sides cast: Sail refuses to unify List(Utf8) with List(non-null Utf8).
        F.coalesce(F.array_except(keys, known), empty).alias("_unexpected_fields"),
        *[F.col(raw_names[f.name]) for f in fields if f.dtype != "string"],
    )
    cast_failures = _names_where(
        [
            (f.name, F.col(raw_names[f.name]).isNotNull() & F.col(f.name).isNull())
            for f in fields
            if f.dtype != "string"
        ]
    )
    return out.withColumn("_cast_failures", F.coalesce(cast_failures, empty)).drop(
        *[raw_names[f.name] for f in fields if f.dtype != "string"]
    )


def flag_duplicates(parsed: DataFrame, key: str, fields: Sequence[Field]) -> DataFrame:
    """Flag exact duplicates (same values as an earlier line) and conflicting ones (same key).

    "Earlier" means landing order: source file, then line. Exact duplicates are dropped and
    counted; a conflicting duplicate (same key, different values) is quarantined, keeping the
    first delivery, because silently picking one version would hide an upstream defect. Both
    windows are keyed on the record key (and a hash of the values), not on every column.
    """
    order = [F.col("source_file"), F.col("source_line")]
    eligible = F.col("_json_ok") & F.col(key).isNotNull()
    payload = F.xxhash64(
        *[F.coalesce(F.col(f.name).cast("string"), F.lit("\u0000")) for f in fields]
    )
    by_key = Window.partitionBy("date", key).orderBy(*order)
    earlier = by_key.rowsBetween(Window.unboundedPreceding, -1)
    hashed = parsed.withColumn("_payload", payload)
    seen = F.coalesce(F.collect_list("_payload").over(earlier), F.array().cast("array<bigint>"))
    exact = eligible & F.array_contains(seen, F.col("_payload"))
    return (
        hashed.withColumn("_exact_duplicate", exact)
        .withColumn("_conflicting_duplicate", eligible & ~exact & (F.size(seen) > F.lit(0)))
        .drop("_payload")
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

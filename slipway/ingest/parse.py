"""Spark transformations from bronze lines to typed silver candidates (pure DataFrame functions).

These run unchanged on Sail, on any Spark Connect server and on JVM Spark (the parity tests run
them on both). Nothing is dropped here: every bronze row comes out once, with flags that say what
is wrong with it, and the contract step decides between silver and quarantine.

Parsing goes through ``map<string,string>`` rather than a struct so that a renamed or missing
field is *seen* (the key set is compared with the declared fields) instead of silently becoming
null, and so that a value that does not cast is told apart from a JSON null.

What a field declares (``slipway.usecase.Field``) is enforced here, per value, so that nothing
changes meaning or size on the way in: a repeated key (JSON parsers keep the last value), an
object where a scalar belongs (it would be stored as its JSON text), a string over its length
limit, a number that is not finite (``1e309`` overflows to infinity), a timestamp without a zone
(it would be read as UTC) or with digits beyond microseconds (they would be cut). Each becomes
a ``rule|column`` entry of ``_field_failures``, which the contract step turns into quarantine.
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
    "_field_failures",
    "_exact_duplicate",
    "_conflicting_duplicate",
    "_first_copy_date",
)
FAILURE_SEPARATOR = "|"  # a _field_failures entry is "rule|column"
REPEATED_KEY = "repeated_key"
SCALAR_VALUE = "scalar_value"
FINITE_NUMBER = "finite_number"
PARSEABLE_VALUES = "parseable_values"
TIMESTAMP_HAS_ZONE = "timestamp_has_zone"
TIMESTAMP_AT_MOST_MICROSECONDS = "timestamp_at_most_microseconds"
# A zone at the end of a timestamp that has a time: Z, UTC/GMT, or a numeric offset.
_ZONE_RE = r"(?i)\d{2}:\d{2}(:\d{2}(\.\d*)?)?\s*(z|utc|gmt|[+-]\d{2}(:?\d{2})?)$"
_SUB_MICROSECOND_RE = r"\.\d{6}\d*[1-9]"


def max_length_rule(limit: int) -> str:
    return f"string_at_most_{limit}_chars"


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
    value = F.trim(raw).try_cast(_SPARK_TYPES[field.dtype])
    if field.dtype == "timestamp" and field.timezone and field.timezone.upper() != "UTC":
        # The session reads a zoneless value as UTC; it was meant in the declared zone.
        value = F.when(F.trim(raw).rlike(_ZONE_RE), value).otherwise(
            F.to_utc_timestamp(value, field.timezone)
        )
    return value


def _field_failures(fields: Sequence[Field], keys: Column, struct_failed: Column) -> Column:
    """``rule|column`` for every declared promise a value breaks (empty array when none)."""

    def entry(rule: str, name: str) -> str:
        return f"{rule}{FAILURE_SEPARATOR}{name}"

    conditions: list[tuple[str, Column]] = []
    overflow: list[tuple[str, Column]] = []
    for f in fields:
        raw = F.col(f"_raw_{f.name}")
        text = F.trim(raw)
        if f.dtype == "string":
            # An object or array value arrives as its JSON text; a string that merely starts
            # with a brace is told apart by the raw line (the regex runs on those rows only).
            nested = (text.startswith("{") | text.startswith("[")) & F.col("raw").rlike(
                f'"{f.name}"\\s*:\\s*[\\[{{]'
            )
            conditions.append((entry(SCALAR_VALUE, f.name), nested))
            if f.max_length:
                conditions.append(
                    (entry(max_length_rule(f.max_length), f.name), F.length(text) > f.max_length)
                )
        elif f.dtype == "double":
            value = F.col(f.name)
            conditions.append(
                (
                    entry(FINITE_NUMBER, f.name),
                    value.isin(float("inf"), float("-inf")) | F.isnan(value),
                )
            )
        elif f.dtype == "timestamp":
            has_time = raw.isNotNull() & F.col(f.name).isNotNull()
            if not f.timezone:
                conditions.append(
                    (entry(TIMESTAMP_HAS_ZONE, f.name), has_time & ~text.rlike(_ZONE_RE))
                )
            conditions.append(
                (
                    entry(TIMESTAMP_AT_MOST_MICROSECONDS, f.name),
                    has_time & text.rlike(_SUB_MICROSECOND_RE),
                )
            )
        if f.dtype in ("double", "long"):
            # Some engines give up on the whole record when a number overflows (every value
            # null although the keys parsed): find the number that did it in the raw line.
            token = F.regexp_extract(F.col("raw"), f'"{f.name}"\\s*:\\s*(-?[0-9][0-9.eE+-]*)', 1)
            as_double = token.try_cast("double")
            overflow.append(
                (
                    entry(FINITE_NUMBER, f.name),
                    struct_failed
                    & (token != F.lit(""))
                    & (as_double.isNull() | as_double.isin(float("inf"), float("-inf"))),
                )
            )
    empty = F.array().cast("array<string>")
    per_value = _names_where(conditions + overflow)
    unexplained = F.when(
        struct_failed & (F.size(_names_where(overflow)) == 0),
        F.array(F.lit(entry(PARSEABLE_VALUES, ""))),
    ).otherwise(empty)
    repeated = F.when(
        ~_as_declared(keys, fields) & (F.size(keys) > F.size(F.array_distinct(keys))),
        F.transform(
            F.array_distinct(
                F.filter(keys, lambda k: F.size(F.filter(keys, lambda j: j == k)) > 1)
            ),
            lambda k: F.concat(F.lit(entry(REPEATED_KEY, "")), k),
        ),
    ).otherwise(empty)
    return F.concat(
        F.coalesce(per_value, empty), F.coalesce(unexplained, empty), F.coalesce(repeated, empty)
    )


def _struct_failed(fields: Sequence[Field]) -> Column:
    """The line is a JSON object, yet the parser gave up on its values (every one is null).

    Sail's ``from_json`` nulls the whole record when one number overflows (``1e309``); a line
    whose declared values are all JSON null is not such a failure (it has no non-null value).
    """
    keys = F.col("_keys")
    known = _declared_keys(fields)
    declared = _as_declared(keys, fields) | (F.size(F.array_intersect(keys, known)) > 0)
    nothing = F.coalesce(*[F.col(f"_s.{f.name}") for f in fields]).isNull()
    some_value = F.col("raw").rlike(r':\s*[-0-9"\[{tf]')
    return keys.isNotNull() & declared & (F.col("_s").isNull() | (nothing & some_value))


def _declared_keys(fields: Sequence[Field]) -> Column:
    """The declared field names as an array literal (cast: Sail will not unify a list of
    non-null strings with a list of strings)."""
    return F.array(*[F.lit(f.name) for f in fields]).cast("array<string>")


def _as_declared(keys: Column, fields: Sequence[Field]) -> Column:
    """The line's keys are the declared fields, each once, in the declared order (never null).

    The usual line: then nothing is missing, unexpected or repeated, and the per-row array
    operations that find those (set differences, a distinct per row) are skipped; only the
    other lines pay for them. At 1M lines on Sail: 1-2 s of ~10 (docs/benchmarks.md,
    "ingest"). A line in any other order takes the general path and gets the same answer.
    """
    return F.coalesce(keys == _declared_keys(fields), F.lit(False))


def _names_where(conditions: Sequence[tuple[str, Column]]) -> Column:
    """An array of the names whose condition holds (empty array when none)."""
    if not conditions:
        return F.array().cast("array<string>")
    parts = [F.when(cond, F.lit(name)) for name, cond in conditions]
    return F.array_compact(F.array(*parts))


def parse_lines(bronze: DataFrame, fields: Sequence[Field]) -> DataFrame:
    """Parse bronze ``raw`` JSON lines into typed columns plus structural flags.

    Output: ``date``, the declared fields (typed, normalised), lineage columns, ``raw`` and
    ``_json_ok``, ``_missing_fields``, ``_unexpected_fields``, ``_cast_failures``,
    ``_field_failures``.

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
        _struct_failed(fields).alias("_struct_failed"),
        *[F.col(f"_s.{f.name}").alias(raw_names[f.name]) for f in fields],
    )
    keys = F.col("_keys")
    empty = F.array().cast("array<string>")
    known = _declared_keys(fields)
    typed = [_typed(F.col(raw_names[f.name]), f).alias(f.name) for f in fields]
    missing = _names_where(
        [(f.name, ~F.array_contains(keys, f.name)) for f in fields if f.required]
    )
    json_ok = keys.isNotNull()
    as_declared = _as_declared(keys, fields)
    out = parsed.select(
        "date",
        *typed,
        *LINEAGE_COLUMNS,
        "raw",
        "_keys",
        "_struct_failed",
        json_ok.alias("_json_ok"),
        F.when(json_ok & ~as_declared, missing).otherwise(empty).alias("_missing_fields"),
        # Both sides cast: Sail refuses to unify List(Utf8) with List(non-null Utf8).
        F.when(as_declared, empty)
        .otherwise(F.coalesce(F.array_except(keys, known), empty))
        .alias("_unexpected_fields"),
        *[F.col(raw_names[f.name]) for f in fields],
    )
    cast_failures = _names_where(
        [
            (f.name, F.col(raw_names[f.name]).isNotNull() & F.col(f.name).isNull())
            for f in fields
            if f.dtype != "string"
        ]
    )
    return (
        out.withColumn("_cast_failures", F.coalesce(cast_failures, empty))
        .withColumn(
            "_field_failures",
            F.when(
                json_ok, _field_failures(fields, F.col("_keys"), F.col("_struct_failed"))
            ).otherwise(empty),
        )
        .drop("_keys", "_struct_failed", *raw_names.values())
    )


def payload_hash(fields: Sequence[Field]) -> Column:
    """One 64-bit hash of a record's typed values: how an exact duplicate is told from a conflict.

    Computed by the engine at hand each time (never stored), so the same expression over
    candidates and over published silver rows gives comparable values within one run. The
    typed values are hashed as they are (a hash skips a null, so whether each value is null is
    hashed too: a null moved to another field changes the hash); casting every value to text
    first cost about 1 s of 9 at 1M lines on Sail.
    """
    return F.xxhash64(*[F.col(f.name) for f in fields], *[F.col(f.name).isNull() for f in fields])


def flag_duplicates(
    parsed: DataFrame,
    key: str,
    fields: Sequence[Field],
    across_days: bool = True,
    with_payload: bool = False,
) -> DataFrame:
    """Flag exact duplicates (same values as the key's first copy) and conflicting ones.

    "First" means landing order over every day in the frame: date, source file, then line, so an
    id is unique across days, not only within one. Exact duplicates within a day are dropped and
    counted; a conflicting duplicate (same key, values other than the first copy's), or a copy of
    a line of an earlier day, is quarantined, keeping the first delivery, because silently
    picking one version would hide an upstream defect. ``_first_copy_date`` says where the first
    copy lives. ``across_days=False`` keys on (date, key): uniqueness within each day only.
    ``with_payload`` keeps the values' hash as ``_payload``.

    A copy is judged against the first copy only (the one silver keeps), as the key ledger
    judges a copy in a later chunk or against published silver (``uniqueness.KeyLedger``): a
    third copy equal to a quarantined second one is a conflict too, whichever query holds them,
    so where a range's chunks split never changes a verdict.

    Only the lines whose key lands more than once need the ordered look-back, and they are few:
    an unordered count per key over a narrow projection (key, landing position, hash) finds
    them, the ordered window runs over those lines alone, and its flags join back onto every
    line by key and landing position (a line's file and line number name it in bronze). An
    ordered window over every line instead kept one window state per key for every wide row:
    measured at 1M lines on Sail, 18.7 s against 9.5 s for the same query without flags
    (docs/benchmarks.md, "ingest").
    """
    order = [F.col("date"), F.col("source_file"), F.col("source_line")]
    scope = [key] if across_days else ["date", key]
    position = [key, "date", "source_file", "source_line"]
    with_hash = parsed.select("*", payload_hash(fields).alias("_payload"))
    narrow = with_hash.where(F.col(key).isNotNull()).select(*position, "_payload")
    repeated = narrow.select(
        "*", F.count(F.lit(1)).over(Window.partitionBy(*scope)).alias("_copies")
    ).where(F.col("_copies") > 1)
    earlier = Window.partitionBy(*scope).orderBy(*order).rowsBetween(Window.unboundedPreceding, -1)
    # Both window functions in one select: written inline in each flag, Spark (and Sail) plan
    # one window operator per flag, each sorting the rows again.
    looked_back = repeated.select(
        *position,
        "_payload",
        F.first("_payload").over(earlier).alias("_first_payload"),
        F.first("date").over(earlier).alias("_first_date"),
    ).select(
        *position,
        (F.col("_payload") == F.col("_first_payload")).alias("_same_values_before"),
        F.col("_first_payload").isNotNull().alias("_key_before"),  # a hash is never null
        "_first_date",
    )
    # No broadcast hint: Sail ignores it with a warning per query, and JVM Spark's adaptive
    # execution broadcasts the small side once it has seen its size.
    windowed = with_hash.join(looked_back, on=position, how="left")
    eligible = F.col("_json_ok") & F.col(key).isNotNull()
    exact = eligible & F.coalesce(F.col("_same_values_before"), F.lit(False))
    conflicting = eligible & ~exact & F.coalesce(F.col("_key_before"), F.lit(False))
    return windowed.select(
        *parsed.columns,
        exact.alias("_exact_duplicate"),
        conflicting.alias("_conflicting_duplicate"),
        F.when(exact | conflicting, F.col("_first_date")).alias("_first_copy_date"),
        *(["_payload"] if with_payload else []),
    )


def derive_columns(df: DataFrame, derived: Mapping[str, Column]) -> DataFrame:
    """Add the use case's derived columns (e.g. amounts in the reporting currency)."""
    for name, expr in derived.items():
        df = df.withColumn(name, expr)
    return df


def silver_candidates(
    bronze: DataFrame,
    stream: Stream,
    with_payload: bool = False,
    across_days: bool = True,
    with_raw: bool = True,
) -> DataFrame:
    """Bronze rows of a stream -> typed, normalised, duplicate-flagged candidates for silver.

    ``with_payload`` keeps the values' hash as ``_payload``, for the caller that carries
    uniqueness across separate queries (earlier chunks of a range, published days).
    ``with_raw=False`` leaves the landed line out of the result: only quarantined rows need it,
    and a caller that can read it back from bronze by file and line (``ingest.landed_lines``)
    saves moving every line out of the engine (at 1M lines on Sail, about 4 s of 9.5).
    """
    parsed = parse_lines(bronze, stream.fields)
    if not with_raw:
        parsed = parsed.drop("raw")
    if stream.derive is not None:
        parsed = derive_columns(parsed, stream.derive())
    return flag_duplicates(parsed, stream.key, stream.fields, across_days, with_payload)

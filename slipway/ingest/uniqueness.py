"""A stream's key is unique across its whole silver table, not only within one day or query.

Within one Spark query, ``parse.flag_duplicates`` orders every line of the query by landing
order and flags later copies. A range is processed in several queries (chunks of about a million
lines) and the table already holds other days, so this ledger carries what came before: the
keys published on days outside the range, then the first copy of every key of each chunk. A line
whose key is in the ledger is an exact duplicate (same values) or a conflicting one, and
``_first_copy_date`` names the day where the first copy lives.

The cost is one Arrow hash lookup per chunk against every key seen so far, plus reading the
published keys once per run (one column and a hash per published row); docs/benchmarks.md
measures both.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from slipway.ingest.parse import payload_hash
from slipway.usecase import Stream


class KeyLedger:
    """Keys seen so far, with the date and the values' hash of their first copy."""

    def __init__(self) -> None:
        self.keys = pa.array([], pa.string())
        self.dates = pa.array([], pa.date32())
        self.payloads = pa.array([], pa.int64())

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def published(
        cls,
        spark,
        silver_uri: str,
        version: int | None,
        stream: Stream,
        start: dt.date,
        end: dt.date,
    ) -> KeyLedger:
        """The keys silver (at ``version``) publishes on days outside ``[start, end]``."""
        from pyspark.sql import functions as F

        ledger = cls()
        if version is None:
            return ledger
        silver = spark.read.format("delta").option("versionAsOf", version).load(silver_uri)
        outside = (F.col("date") < F.lit(start.isoformat()).cast("date")) | (
            F.col("date") > F.lit(end.isoformat()).cast("date")
        )
        rows = (
            silver.where(outside)
            .select(
                F.col(stream.key).alias("key"),
                F.col("date"),
                payload_hash(stream.fields).alias("payload"),
            )
            .toArrow()
        )
        if rows.num_rows:
            ledger._add(rows["key"], rows["date"], rows["payload"])
        return ledger

    def _add(self, keys, dates, payloads) -> None:
        def joined(old: pa.Array, new) -> pa.Array:
            new = new.combine_chunks() if isinstance(new, pa.ChunkedArray) else new
            return pa.concat_arrays([old, new.cast(old.type)])

        self.keys = joined(self.keys, keys)
        self.dates = joined(self.dates, dates)
        self.payloads = joined(self.payloads, payloads)

    def mark(self, candidates: pa.Table, key: str) -> pa.Table:
        """Flag candidates whose key came before, record the first copies; drops ``_payload``."""
        keys = candidates[key]
        payload = candidates["_payload"]
        exact = candidates["_exact_duplicate"]
        conflicting = candidates["_conflicting_duplicate"]
        first = candidates["_first_copy_date"]
        eligible = pc.and_(pc.fill_null(candidates["_json_ok"], False), pc.is_valid(keys))
        if len(self.keys) and candidates.num_rows:
            index = pc.index_in(keys, value_set=self.keys)
            hit = pc.fill_null(pc.and_(eligible, pc.is_valid(index)), False)
            if pc.any(hit).as_py():
                same = pc.fill_null(pc.equal(payload, pc.take(self.payloads, index)), False)
                exact = pc.if_else(hit, same, exact)
                conflicting = pc.if_else(hit, pc.invert(same), conflicting)
                first = pc.if_else(hit, pc.take(self.dates, index), first)
        else:
            hit = pa.array([False] * candidates.num_rows, pa.bool_())
        fresh = pc.and_(
            eligible,
            pc.invert(
                pc.or_(
                    hit,
                    pc.or_(pc.fill_null(exact, False), pc.fill_null(conflicting, False)),
                )
            ),
        )
        if pc.any(fresh).as_py():
            # The three columns first: filtering the whole (wide) table cost ~1.5 s at 1M rows.
            chosen = candidates.select([key, "date", "_payload"]).filter(fresh)
            self._add(chosen[key], chosen["date"], chosen["_payload"])
        out = candidates.drop_columns(["_payload"])
        for name, column in (
            ("_exact_duplicate", exact),
            ("_conflicting_duplicate", conflicting),
            ("_first_copy_date", first),
        ):
            out = out.set_column(out.schema.get_field_index(name), name, column)
        return out

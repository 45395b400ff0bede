"""The duplicate flags say what one ordered window over every line says, on Sail.

A copy is judged against its key's first copy (the one silver keeps), as the key ledger judges
copies in later chunks: exact when its values are the first copy's, conflicting otherwise.

``flag_duplicates`` runs its ordered look-back over the lines whose key lands more than once
and joins the flags back (docs/benchmarks.md, "ingest"). The reference here is the formulation it
replaced, one ordered window over every line, written out below; both run on the same lines
covering every way a key repeats, in both uniqueness scopes, and must agree row for row.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from slipway.ingest.parse import flag_duplicates, parse_lines, payload_hash
from slipway.usecases.fraud import TRANSACTIONS
from tests.support.records import DAY, bronze, line, tx

FLAGS = ["_exact_duplicate", "_conflicting_duplicate", "_first_copy_date", "_payload"]


def _one_window_over_every_line(parsed, key, fields, across_days):
    order = [F.col("date"), F.col("source_file"), F.col("source_line")]
    by_key = Window.partitionBy(*([key] if across_days else ["date", key])).orderBy(*order)
    earlier = by_key.rowsBetween(Window.unboundedPreceding, -1)
    windowed = parsed.select("*", payload_hash(fields).alias("_payload")).select(
        "*",
        F.first("_payload").over(earlier).alias("_first_payload"),
        F.first("date").over(earlier).alias("_first_date"),
    )
    eligible = F.col("_json_ok") & F.col(key).isNotNull()
    exact = eligible & F.coalesce(F.col("_payload") == F.col("_first_payload"), F.lit(False))
    conflicting = eligible & ~exact & F.col("_first_payload").isNotNull()
    return windowed.select(
        *parsed.columns,
        exact.alias("_exact_duplicate"),
        conflicting.alias("_conflicting_duplicate"),
        F.when(exact | conflicting, F.col("_first_date")).alias("_first_copy_date"),
        "_payload",
    )


def _day(offset: int, lines: list[str], part: str = "part-001") -> pa.Table:
    day = DAY + dt.timedelta(days=offset)
    lines = [text.replace("2026-08-01", day.isoformat()) for text in lines]
    return bronze(lines, day, f"transactions/{day}/{part}.jsonl")


def _lines() -> pa.Table:
    """Every way a key repeats: within a file, across files of a day, across days; exact and
    conflicting; three and more copies in mixed order; null and missing keys; broken lines."""
    a, b, c = tx(1), tx(2), tx(3)
    return pa.concat_tables(
        [
            _day(
                0,
                [
                    line(a),
                    line(a),  # exact, same file
                    line(tx(1, amount=5.0)),  # conflicting, same file
                    line(a),  # exact again after a conflict
                    line(b),
                    line(tx(4, transaction_id=None)),  # null key
                    line(tx(5, transaction_id=...)),  # no key at all
                    line(tx(6, transaction_id=None)),  # another null key: never a duplicate
                    "not json {",
                    line(tx(7, transaction_id="  tx_000002 ")),  # same key after trimming
                    *[line(tx(i)) for i in range(100, 140)],
                ],
            ),
            _day(0, [line(b), line(c), line(tx(3, country="FR"))], part="part-002"),
            _day(1, [line(a), line(tx(2, amount=1.0)), line(tx(200)), "[1, 2]"]),
            # the very same line as day 1's first, landed again a day later: an exact copy
            bronze([line(a)], DAY + dt.timedelta(days=1), "transactions/late/part-009.jsonl"),
            _day(2, [line(tx(200)), line(tx(200)), line(tx(200, channel="web")), line(c)]),
        ]
    )


def _sorted(table: pa.Table) -> pa.Table:
    order = [("date", "ascending"), ("source_file", "ascending"), ("source_line", "ascending")]
    return table.sort_by(order)


@pytest.mark.parametrize("across_days", [True, False])
def test_flags_equal_one_ordered_window_over_every_line(spark, across_days: bool) -> None:
    lines = _lines()
    parsed = parse_lines(spark.createDataFrame(lines.to_pandas()), TRANSACTIONS.fields)
    key, fields = TRANSACTIONS.key, TRANSACTIONS.fields
    ours = _sorted(flag_duplicates(parsed, key, fields, across_days, with_payload=True).toArrow())
    reference = _sorted(_one_window_over_every_line(parsed, key, fields, across_days).toArrow())
    assert ours.num_rows == reference.num_rows == lines.num_rows
    assert ours.column_names == reference.column_names
    for name in ours.column_names:
        assert ours[name].to_pylist() == reference[name].to_pylist(), name
    # The cases are really there: exact and conflicting copies, within and across days.
    exact = pa.compute.sum(ours["_exact_duplicate"]).as_py()
    conflicting = pa.compute.sum(ours["_conflicting_duplicate"]).as_py()
    first = {d for d in ours["_first_copy_date"].to_pylist() if d is not None}
    if across_days:
        # day 2's second tx_000200 equals day 2's first but not the key's first copy (day 1):
        # a conflict, as the key ledger calls it when the two days are in different chunks
        assert (exact, conflicting) == (4, 9)
        second = next(
            i
            for i, (k, d, n) in enumerate(
                zip(
                    ours["transaction_id"].to_pylist(),
                    ours["date"].to_pylist(),
                    ours["source_line"].to_pylist(),
                    strict=True,
                )
            )
            if k == "tx_000200" and d == DAY + dt.timedelta(days=2) and n == 2
        )
        assert ours["_conflicting_duplicate"][second].as_py() is True
        assert first == {DAY, DAY + dt.timedelta(days=1)}
    else:
        assert (exact, conflicting) == (4, 5)
        assert first == {DAY + dt.timedelta(days=n) for n in range(3)}

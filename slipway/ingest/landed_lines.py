"""The landed line of a bronze row, read back from bronze by file and line when it is needed.

Only quarantined rows (and rows with a structural problem, whose failure names the value as
delivered) need the raw line; every other row goes to silver without it. Reading those lines
back from the pinned bronze version costs nothing on a clean day and one filtered read of the
day's files otherwise, where carrying every line through the Spark query cost about 4 s per
million lines on the embedded engine (docs/benchmarks.md, "ingest").
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from slipway.lakehouse import Lakehouse, TableRef

RawLines = Callable[[pa.Table], pa.Array]
"""Given rows with ``date``, ``source_file`` and ``source_line``: their landed lines, aligned."""


def bronze_lines(lakehouse: Lakehouse, bronze: TableRef) -> RawLines:
    """A lookup of landed lines in ``bronze`` at its pinned version (the one silver read).

    The table version is resolved here, once, into a pyarrow dataset: the lookup runs while
    silver streams into its Delta commit, inside the Delta writer's pull of the next batch,
    where opening a Delta table again panics ("Cannot start a runtime from within a runtime").
    """
    dataset = lakehouse.dataset(bronze.name, bronze.version)

    def lookup(rows: pa.Table) -> pa.Array:
        if rows.num_rows == 0:
            return pa.array([], pa.string())
        dates = rows["date"]
        first, last = pc.min(dates).as_py(), pc.max(dates).as_py()
        found = dataset.to_table(
            columns=["source_file", "source_line", "raw"],
            filter=(pads.field("date") >= first)
            & (pads.field("date") <= last)
            & pads.field("source_file").isin(pc.unique(rows["source_file"])),
        )
        return lines_of(rows, found)

    return lookup


def lines_of(rows: pa.Table, lines: pa.Table) -> pa.Array:
    """``lines``' ``raw`` for each of ``rows``, matched on (source_file, source_line).

    A bronze row is named by its file and line; a row without its line, or a pair named twice,
    is a broken bronze table and an error rather than a quarantine row with the wrong text.
    """
    keys = ["source_file", "source_line"]
    position = pa.array(range(rows.num_rows), pa.int64())
    asked = rows.select(keys).append_column("_position", position)
    joined = asked.join(lines.select([*keys, "raw"]), keys=keys, join_type="left outer")
    if joined.num_rows != rows.num_rows:
        raise ValueError(
            f"bronze names {joined.num_rows - rows.num_rows} of the asked (file, line) pairs "
            "more than once; a landed line must appear in bronze exactly once"
        )
    joined = joined.sort_by("_position")
    missing = pc.sum(pc.is_null(joined["raw"])).as_py() or 0
    if missing:
        first = joined.filter(pc.is_null(joined["raw"])).slice(0, 1).to_pylist()[0]
        raise ValueError(
            f"{missing} row(s) have no landed line in bronze, e.g. {first['source_file']} "
            f"line {first['source_line']}"
        )
    return joined["raw"].combine_chunks()

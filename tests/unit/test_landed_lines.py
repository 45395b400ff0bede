"""Landed lines read back from bronze by file and line: aligned, pinned, and never guessed."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from slipway.ingest.bronze import BRONZE_SCHEMA
from slipway.ingest.landed_lines import bronze_lines, lines_of
from slipway.lakehouse import Lakehouse
from tests.support.records import DAY, bronze


def _bronze_days() -> pa.Table:
    days = [DAY, DAY + dt.timedelta(days=1)]
    return pa.concat_tables(
        [
            bronze([f'{{"n": {i}, "day": "{d}"}}' for i in range(5)], d, f"t/{d}/part-001.jsonl")
            for d in days
        ]
        + [bronze(['{"other": 1}', "not json"], days[1], f"t/{days[1]}/part-002.jsonl")]
    )


def test_lines_come_back_in_the_order_asked_from_the_pinned_version(tmp_path) -> None:
    lakehouse = Lakehouse(tmp_path / "lakehouse")
    table = _bronze_days().cast(BRONZE_SCHEMA)
    first = lakehouse.write("bronze.t", table, partition_by=["date"])
    # a later version replaces every line: the lookup must read the one silver read
    changed = table.set_column(3, "raw", pa.array(["changed"] * table.num_rows))
    lakehouse.write("bronze.t", changed, mode="overwrite", partition_by=["date"])
    asked = table.take([6, 0, 11, 4, 10, 5])
    lookup = bronze_lines(lakehouse, lakehouse.ref("bronze.t", first.version))
    assert lookup(asked).to_pylist() == asked["raw"].to_pylist()
    latest = bronze_lines(lakehouse, lakehouse.ref("bronze.t"))
    assert set(latest(asked).to_pylist()) == {"changed"}
    assert lookup(asked.slice(0, 0)).to_pylist() == []


def test_a_line_missing_or_named_twice_is_an_error_not_a_wrong_text() -> None:
    lines = _bronze_days()
    with pytest.raises(ValueError, match=r"part-002\.jsonl line 2"):
        lines_of(lines.slice(0, 12), lines.slice(0, 11))
    with pytest.raises(ValueError, match="more than once"):
        lines_of(lines.slice(0, 3), pa.concat_tables([lines, lines.slice(1, 1)]))

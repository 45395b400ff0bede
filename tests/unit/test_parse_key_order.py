"""A line's flags do not depend on the order of its keys.

Lines whose keys are the declared fields in the declared order skip the per-row set operations
(``parse._as_declared``); every other order takes the general path. The same records written in
both orders must come out with the same flags and values.
"""

from __future__ import annotations

import json

from slipway.ingest.parse import parse_lines
from slipway.usecases.fraud import TRANSACTIONS
from tests.support.records import bronze, tx

FLAGS = ["_json_ok", "_missing_fields", "_unexpected_fields", "_cast_failures", "_field_failures"]


def _records() -> list[dict]:
    return [
        tx(1),
        tx(2, amount=None),
        tx(3, amount="12,5"),
        tx(4, channel=...),  # a declared field missing
        {**tx(5), "note": "extra"},  # an unexpected field
        {**tx(6, device_id=...), "device": "D1"},  # a renamed field: missing and unexpected
        tx(7, customer_id={"id": 1}),  # an object where a scalar belongs
    ]


def _repeated(record: dict, reverse: bool) -> str:
    """A line with its ``amount`` key twice (JSON parsers keep the last value)."""
    body = json.dumps(dict(reversed(record.items())) if reverse else record)
    return body[:-1] + ', "amount": 1.0}'


def _parsed(spark, reverse: bool) -> list[dict]:
    lines = [json.dumps(dict(reversed(r.items())) if reverse else r) for r in _records()]
    lines.append(_repeated(tx(8), reverse))
    frame = spark.createDataFrame(bronze(lines).to_pandas())
    out = parse_lines(frame, TRANSACTIONS.fields).drop("raw").toArrow()
    return out.sort_by("source_line").to_pylist()


def test_flags_and_values_are_the_same_in_any_key_order(spark) -> None:
    declared, reversed_ = _parsed(spark, False), _parsed(spark, True)
    assert declared == reversed_
    by_line = {r["source_line"]: r for r in declared}
    assert all(not by_line[1][f] for f in FLAGS[1:]) and by_line[1]["_json_ok"]
    assert by_line[4]["_missing_fields"] == ["channel"]
    assert by_line[5]["_unexpected_fields"] == ["note"]
    assert by_line[6]["_missing_fields"] == ["device_id"]
    assert by_line[6]["_unexpected_fields"] == ["device"]
    assert by_line[3]["_cast_failures"] == ["amount"]
    assert any(f.startswith("scalar_value") for f in by_line[7]["_field_failures"])
    assert any(f.startswith("repeated_key") for f in by_line[8]["_field_failures"])

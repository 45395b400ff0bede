"""The contract's row rules run once per distinct value of a column and say what they said
over every row.

``contract_failures_by_day`` validates each column's row rules over the column's distinct
values and hands each failing value's failures to every row holding it (contract.py,
``_validate_row_rules``). The reference is Pandera validating the same row rules over the
whole frame, as the contract step did before. The days below repeat failing values across
rows, hold nulls, break several rules in one row, break a rule over several columns, a batch
rule, a dtype and a missing column.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from slipway.ingest import contract
from slipway.ingest.contract import (
    _column_schemas,
    _split_contract,
    _validate,
    _validate_row_rules,
    contract_failures_by_day,
    contract_frame,
)
from slipway.usecases.fraud import TRANSACTIONS

DAY = dt.date(2026, 8, 1)
UTC = pa.timestamp("us", tz="UTC")


def _day(n: int, **columns: list) -> pa.Table:
    """``n`` clean typed rows of ``DAY``, with the given columns' first values replaced."""
    start = dt.datetime(2026, 8, 1, 8, tzinfo=dt.UTC)
    data: dict[str, list] = {
        "date": [DAY] * n,
        "transaction_id": [f"tx_{i:06d}" for i in range(n)],
        "event_time": [start + dt.timedelta(minutes=i) for i in range(n)],
        "received_at": [start + dt.timedelta(minutes=i, seconds=1) for i in range(n)],
        "customer_id": [f"C{i % 7:06d}" for i in range(n)],
        "merchant_id": [f"M{i % 5:05d}" for i in range(n)],
        "amount": [10.0 + i for i in range(n)],
        "currency": ["EUR"] * n,
        "channel": ["pos"] * n,
        "country": ["DE"] * n,
        "merchant_category": ["5411"] * n,
        "device_id": [f"D{i % 9:04x}" for i in range(n)],
        "amount_eur": [10.0 + i for i in range(n)],
        "source_file": ["transactions/2026-08-01/part-001.jsonl"] * n,
        "source_line": list(range(1, n + 1)),
    }
    for name, values in columns.items():
        data[name][: len(values)] = values
    types = {"date": pa.date32(), "event_time": UTC, "received_at": UTC}
    return pa.table({k: pa.array(v, types.get(k)) for k, v in data.items()})


late = dt.datetime(2026, 8, 2, 1, tzinfo=dt.UTC)
CASES = {
    "repeated failing values, nulls, several rules in one row": _day(
        80,
        customer_id=["X1", "X1", None, "X1", "C1"],
        country=["germany", "DE", "germany", None],
        channel=["x", "x", "web", "x"],
        currency=["XXX", None, "EUR", "XXX"],
        amount=[-1.0, 10.0, None, 1e9],
        amount_eur=[-1.0, 30000.0, None, 30000.0],
        merchant_category=["54a1", "54a1", "5411", None],
        transaction_id=["", "tx_000001", "x" * 65, None, "tx_000001"],
    ),
    "a rule over several columns": _day(60, event_time=[late, late], received_at=[late]),
    "a batch rule on every row": _day(60, amount_eur=[100_000.0] * 60),
    "a day too small for batch rules": _day(5, amount_eur=[100_000.0] * 5),
}


def _ranked(found: dict) -> dict:
    return {pos: sorted(f, key=lambda rf: rf[0]) for pos, f in found.items()}


@pytest.fixture(autouse=True)
def _by_value_at_any_size(monkeypatch) -> None:
    """These days are small; per-value validation is otherwise kept for larger frames."""
    monkeypatch.setattr(contract, "BY_VALUE_ROWS", 0)


def _by_value_and_over_every_row(table: pa.Table) -> tuple[dict, dict]:
    schema = TRANSACTIONS.contract()
    order = list(schema.columns)
    frame = contract_frame(table)
    rows, origin, _, _ = _split_contract(schema, frame.head(64))
    by_value = _validate_row_rules(table, rows, origin, order, _column_schemas(rows), lambda: frame)
    return _ranked(by_value), _ranked(_validate(frame, rows, origin, order))


def _whole_frame(monkeypatch) -> None:
    """The contract step as it was: row rules validated over every row of the frame."""

    def over_every_row(table, rows, origin, order, alone, frame):
        return _validate(frame(), rows, origin, order)

    monkeypatch.setattr(contract, "_validate_row_rules", over_every_row)


@pytest.mark.parametrize("case", list(CASES))
def test_by_value_says_what_validating_every_row_says(case: str) -> None:
    by_value, every_row = _by_value_and_over_every_row(CASES[case])
    assert by_value == every_row
    assert by_value  # every case breaks some row rule


def test_a_missing_column_and_a_wrong_dtype_fail_every_row() -> None:
    table = _day(6).drop_columns(["device_id"])
    table = table.set_column(
        table.schema.get_field_index("amount"), "amount", pa.array([str(x) for x in range(6)])
    )
    by_value, every_row = _by_value_and_over_every_row(table)
    assert by_value == every_row
    assert sorted(by_value) == list(range(6))
    assert {f.column for _, f in by_value[0]} >= {"amount", None}


def test_the_whole_contract_says_the_same_per_value_and_over_every_row(monkeypatch) -> None:
    days = list(CASES.values())
    ours = contract_failures_by_day(days, TRANSACTIONS)
    _whole_frame(monkeypatch)
    assert ours == contract_failures_by_day(days, TRANSACTIONS)
    assert sum(len(found) for found in ours) > 70

"""Parsing and contract split on Sail: every landed row ends up in silver, quarantine or the
duplicate count, with the rule that failed; batch-wide breakage trips the circuit breaker."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from slipway.ingest.contract import CIRCUIT_BREAKER_RULE, apply_contract
from slipway.ingest.parse import silver_candidates
from slipway.ingest.pipeline import silver_columns
from slipway.usecase import IngestPolicy
from slipway.usecases.fraud import TRANSACTIONS
from tests.support.records import DAY, bronze, line, tx

OK_FILES = {DAY: [("transactions/2026-08-01/part-001.jsonl", "ok", 0, 0)]}


def _run(spark, lines: list[str], max_bad_share: float = 0.5, statuses=None):
    candidates = silver_candidates(
        spark.createDataFrame(bronze(lines).to_pandas()), TRANSACTIONS
    ).toArrow()
    return apply_contract(
        candidates,
        TRANSACTIONS,
        IngestPolicy(max_bad_share=max_bad_share),
        silver_columns=silver_columns(TRANSACTIONS),
        file_statuses=statuses or OK_FILES,
        days=[DAY],
    )


def test_clean_rows_are_typed_and_normalised(spark) -> None:
    lines = [line(tx(i, currency="gbp", channel=" ECOM ", country="de")) for i in range(60)]
    out = _run(spark, lines)
    (verdict,) = out.verdicts
    assert verdict.rows_silver == 60 and verdict.rows_quarantined == 0 and verdict.conserved
    row = out.silver.slice(0, 1).to_pylist()[0]
    assert row["currency"] == "GBP" and row["channel"] == "ecom" and row["country"] == "DE"
    assert row["amount_eur"] == pytest.approx(row["amount"] * 1.17, rel=1e-6)
    assert out.silver.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert row["source_line"] == 1 and row["source_file"].endswith("part-001.jsonl")


def test_each_broken_row_is_quarantined_with_rule_column_value_and_line(spark) -> None:
    good = [line(tx(i)) for i in range(100)]
    broken = [
        "{not json",
        line(tx(1000, amount=...)).replace('"currency"', '"amount_value": 3.0, "currency"'),
        line(tx(1001, amount="abc")),
        line(tx(1002, customer_id=None)),
        line(tx(1003, channel="telepathy")),
        line(tx(0, amount=99.99)),  # same id as good[0], different values
        good[5],  # exact duplicate
    ]
    out = _run(spark, good + broken)
    (verdict,) = out.verdicts
    assert verdict.rows_landed == 107
    assert verdict.duplicates_dropped == 1
    assert verdict.rows_quarantined == 6
    assert verdict.rows_silver == 100
    assert verdict.conserved and verdict.breaker_reason is None
    q = {r["source_line"]: r for r in out.quarantine.to_pylist()}
    assert q[101]["rule"] == "parseable_json" and q[101]["raw"] == "{not json"
    assert q[102]["rule"] == "required_field_present" and q[102]["column"] == "amount"
    assert "amount_value" in q[102]["value"]
    assert q[103]["rule"] == "parses_as_double" and q[103]["value"] == '"abc"'
    assert q[104]["rule"] == "not_nullable" and q[104]["column"] == "customer_id"
    assert q[105]["column"] == "channel" and q[105]["value"] == "telepathy"
    assert q[106]["rule"] == "unique_transaction_id" and q[106]["record_key"] == "tx_000000"
    assert all(r["source_file"].endswith("part-001.jsonl") for r in q.values())
    # the first delivery of a conflicting id is the one published
    published = {r["transaction_id"]: r for r in out.silver.to_pylist()}
    assert published["tx_000000"]["amount"] == tx(0)["amount"]


def test_every_failure_of_a_row_is_kept(spark) -> None:
    lines = [line(tx(i)) for i in range(60)] + [line(tx(999, channel="x", country="germany"))]
    out = _run(spark, lines)
    (row,) = out.quarantine.to_pylist()
    failures = json.loads(row["failures"])
    assert {f["column"] for f in failures} == {"channel", "country"}


def test_amounts_in_cents_trip_the_breaker_and_hold_the_whole_day(spark) -> None:
    lines = [line(tx(i, amount=int(tx(i)["amount"] * 100))) for i in range(80)]
    out = _run(spark, lines, max_bad_share=0.05)
    (verdict,) = out.verdicts
    assert verdict.breaker_tripped and "batch_median_amount_eur_plausible" in verdict.breaker_reason
    assert out.silver.num_rows == 0 and out.quarantine.num_rows == 80 and verdict.conserved


def test_a_few_bad_rows_do_not_trip_the_breaker_but_many_do(spark) -> None:
    good = [line(tx(i)) for i in range(95)]
    few = good + [line(tx(900 + i, currency="XXX")) for i in range(4)]
    assert _run(spark, few, max_bad_share=0.05).verdicts[0].breaker_reason is None
    many = good + [line(tx(900 + i, currency="XXX")) for i in range(10)]
    out = _run(spark, many, max_bad_share=0.05)
    assert out.verdicts[0].breaker_tripped
    rows = out.quarantine.to_pylist()
    held = [r for r in rows if r["rule"] == CIRCUIT_BREAKER_RULE]
    broken = [r for r in rows if r["rule"] != CIRCUIT_BREAKER_RULE]
    assert len(held) == 95 and len(broken) == 10
    for r in broken:
        checks = {(f["rule"], f["column"]) for f in json.loads(r["failures"])}
        assert ("isin(['CHF', 'EUR', 'GBP', 'PLN', 'SEK', 'USD'])", "currency") in checks


def test_a_truncated_file_holds_the_day_even_when_rows_parse(spark) -> None:
    lines = [line(tx(i)) for i in range(60)]
    statuses = {DAY: [("transactions/2026-08-01/part-001.jsonl", "truncated", 60, 120)]}
    out = _run(spark, lines, statuses=statuses)
    (verdict,) = out.verdicts
    assert (
        verdict.breaker_tripped
        and "truncated" in verdict.breaker_reason
        and "120" in verdict.breaker_reason
    )
    assert out.silver.num_rows == 0 and verdict.rows_quarantined == 60


def test_event_outside_the_partition_day_is_quarantined(spark) -> None:
    lines = [line(tx(i)) for i in range(60)] + [line(tx(777, event_time="2026-07-30T10:00:00Z"))]
    out = _run(spark, lines)
    (row,) = out.quarantine.to_pylist()
    assert row["rule"] == "event_time_in_partition_day"


def test_arrival_before_the_event_or_on_another_day_is_quarantined(spark) -> None:
    """received_at is the stream position: never before the terminal's time, same UTC day."""
    early = tx(777, event_time="2026-08-01T10:00:00.5Z", received_at="2026-08-01T10:00:00Z")
    next_day = tx(778, event_time="2026-08-01T23:59:59Z", received_at="2026-08-02T00:00:01Z")
    lines = [line(tx(i)) for i in range(60)] + [line(early), line(next_day)]
    out = _run(spark, lines)
    rules = {r["record_key"]: r["rule"] for r in out.quarantine.to_pylist()}
    assert rules == {
        "tx_000777": "received_at_not_before_event_time",
        "tx_000778": "received_at_in_partition_day",
    }
    assert out.silver.num_rows == 60
    assert out.silver.schema.field("received_at").type == pa.timestamp("us", tz="UTC")

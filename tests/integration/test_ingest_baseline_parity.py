"""The benchmark's DuckDB baseline applies the project's rules: same tables from the same files.

``benchmarks/ingest_baseline.py`` is what the landing -> silver target is measured against
(within 1.5x of it), so it must do the same work: a faster baseline that skipped rules would make
the comparison meaningless. A small landing world damaged in every way a rule catches (broken
JSON, absent, extra and repeated keys, values that do not cast or that are not scalars, finite,
zoned or microsecond-precise, contract failures alone and several on one row, duplicates exact
and conflicting within a day and across days, a day whose median is in cents, files that do not
match their manifest, a corrupt gzip, a manifest with a byte-order mark, no manifest, no files)
is ingested by both the project's path (bronze, then silver on Sail with Pandera) and the
baseline; their silver rows, quarantine rows (file, line, rule, column, value, every failure),
files table and audit must be the same.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from tests.support.records import line, tx

START = dt.date(2026, 8, 1)
DAYS = 10
NOW = dt.datetime(2026, 8, 20, 6, 0, tzinfo=dt.UTC)


def _tx(day: int, i: int, **overrides: object) -> dict[str, object]:
    """A clean transaction of day ``day`` (ids unique across days)."""
    rec = tx(10_000 * day + i, **overrides)
    when = (START + dt.timedelta(days=day)).isoformat()
    for name in ("event_time", "received_at"):
        if isinstance(rec.get(name), str):
            rec[name] = rec[name].replace("2026-08-01", when)
    return rec


def _broken_lines() -> list[str]:
    """One or more lines per rule, on the first day (a few dozen among many good lines)."""
    ok = line(tx(900_000))
    return [
        "{not json",
        "[1, 2]",
        '{"amount": NaN, "transaction_id": "tx_nan"}',
        line(tx(900_001, amount=...)).replace('"currency"', '"amount_value": 3.0, "currency"'),
        line(tx(900_002, note="an extra key alone is no failure")),
        line(tx(900_003)).replace('"currency"', '"amount": 50.0, "currency"'),
        line(tx(900_004)).replace('"currency"', '"amount": "abc", "currency"'),
        line(tx(900_005, amount="abc")),
        line(tx(900_006, event_time="yesterday")),
        line(tx(900_007, customer_id=None)),
        line(tx(900_008, channel="telepathy", country="germany", customer_id="X1")),
        line(tx(900_009, device_id={"fingerprint": "abc"})),
        line(tx(900_010, merchant_id="M" + "1" * 300)),
        line(tx(900_011, amount="Infinity")),
        line(tx(900_012, amount=1.5)).replace("1.5", "1e309"),
        line(tx(900_013, event_time="2026-08-01T10:00:00")),
        line(tx(900_014, event_time="2026-08-01T10:00:00.123456789Z")),
        line(tx(900_015, event_time="2026-07-30T10:00:00Z")),
        line(tx(900_016, event_time="2026-08-01T10:00:00.5Z", received_at="2026-08-01T10:00:00Z")),
        line(tx(900_017, event_time="2026-08-01T23:59:59Z", received_at="2026-08-02T00:00:01Z")),
        line(tx(900_018, amount=30_000.0)),
        line(tx(900_019, amount=-1.0)),
        line(tx(900_020, amount=600_000.0)),
        line(tx(900_021, currency="XXX")),
        line(tx(900_022, transaction_id="")),
        line(tx(900_023, transaction_id=None)),
        line(tx(900_024, transaction_id=None, amount=12.0)),
        line(tx(900_025, device_id="D" * 200)),
        line(tx(900_026, merchant_category="12a4")),
        line(tx(900_027, event_time="2026-08-01T10:00Z")),
        line(tx(900_028, event_time=None, received_at=None)),
        "{}",
        line({k: None for k in tx(0)} | {"extra": 1}),
        "   ",
        "\t",
        ok,
        ok,  # the same line twice on one day: dropped and counted
        line(tx(900_000, amount=99.99)),  # same id, other values: quarantined
        line(tx(900_029, currency="gbp", channel=" ECOM ", country="de")),  # normalised
        line(tx(900_030, event_time="2026-08-01T12:00:00+02:00")),
        line(tx(900_031, device_id="{abc")),  # a brace in a string is a string
        line(tx(900_032, customer_id="C٣٤")),  # Python's \d: any Unicode digit
    ]


def _write_day(landing: Path, day: int, lines: list[str], name: str = "part-001.jsonl", **how):
    folder = landing / "transactions" / (START + dt.timedelta(days=day)).isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    rows = sum(1 for text in lines if text.strip())
    if how.get("gzip"):
        packed = bytearray(gzip.compress(data))
        packed[len(packed) // 2 : len(packed) // 2 + 64] = b"\xff" * 64
        name, data = name + ".gz", bytes(packed)
    (folder / name).write_bytes(data)
    entries = [{"name": name, "rows": rows + how.get("extra_rows", 0)}]
    entries[0]["sha256"] = hashlib.sha256(data).hexdigest()
    entries += how.get("also_listed", [])
    manifest = json.dumps({"files": entries, "generated_at": "2026-08-20T00:00:00Z"}).encode()
    if how.get("manifest", True):
        (folder / "_manifest.json").write_bytes(
            (b"\xef\xbb\xbf" if how.get("bom") else b"") + manifest
        )
    return folder


def build_world(landing: Path) -> None:
    good = [line(_tx(0, i)) for i in range(1000)]
    broken = _broken_lines()
    _write_day(landing, 0, good[:500] + broken + good[500:])
    # amounts in cents: the day's median is implausible and every row fails the batch rule
    _write_day(landing, 1, [line(_tx(1, i, amount=_tx(1, i)["amount"] * 100)) for i in range(60)])
    # re-sent lines of the first day: one identical (another day), one with another amount and
    # a copy of that one (equal to the conflicting copy, not to the first: a conflict too)
    changed = line(json.loads(good[2]) | {"amount": 1.0})
    resent = [good[1], changed, line(_tx(2, 0)), changed]
    _write_day(landing, 2, [line(_tx(2, i)) for i in range(60)] + resent)
    folder = _write_day(landing, 3, [line(_tx(3, i)) for i in range(20)], extra_rows=5)
    (folder / "notes.txt").write_text("not a data file\n")
    _write_day(landing, 4, [line(_tx(4, i)) for i in range(300)], gzip=True)
    _write_day(landing, 5, [line(_tx(5, i)) for i in range(20)], bom=True)
    _write_day(landing, 6, [line(_tx(6, i)) for i in range(20)], manifest=False)
    # day 7 has no folder at all
    listed = [{"name": "part-002.jsonl", "rows": 3, "sha256": ""}]
    _write_day(landing, 8, [line(_tx(8, i)) for i in range(20)], also_listed=listed)
    # the changed copy once more, a week later (another chunk when days go one per query)
    _write_day(landing, 9, [line(_tx(9, i)) for i in range(20)] + [changed], name="part-001.JSONL")


def _project(landing: Path, root: Path, spark) -> None:
    from slipway.ingest.pipeline import bronze_to_silver, land_to_bronze
    from slipway.lakehouse import Lakehouse
    from slipway.usecases import get_usecase

    usecase = get_usecase("fraud")
    stream, end = usecase.stream("transactions"), START + dt.timedelta(days=DAYS - 1)
    lakehouse = Lakehouse(root)
    land_to_bronze(lakehouse, landing, stream, START, end, run_id="parity", now=NOW)
    bronze_to_silver(lakehouse, spark, stream, usecase.ingest, START, end, "parity", now=NOW)


def _table(root: Path, layer: str, name: str = "transactions") -> pd.DataFrame:
    return DeltaTable(str(root / layer / name)).to_pyarrow_table().to_pandas()


def _sorted(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.sort_values(by).reset_index(drop=True)[sorted(frame.columns)]


@pytest.fixture(scope="module")
def both(tmp_path_factory, spark) -> tuple[Path, Path]:
    from benchmarks.ingest_baseline import run_baseline

    base = tmp_path_factory.mktemp("parity")
    landing = base / "landing"
    build_world(landing)
    _project(landing, base / "project", spark)
    end = START + dt.timedelta(days=DAYS - 1)
    run_baseline(landing, base / "baseline", START, end, run_id="parity", now=NOW)
    return base / "project", base / "baseline"


def test_silver_rows_are_the_same(both) -> None:
    project, baseline = (_table(root, "silver") for root in both)
    assert list(baseline.columns) == list(project.columns)
    assert len(project) > 1000  # most of the world is published
    key = ["date", "source_file", "source_line"]
    pd.testing.assert_frame_equal(_sorted(baseline, key), _sorted(project, key), check_dtype=False)


def _as_json(value: object) -> object:
    """A value as JSON when it is JSON: DuckDB writes a nested object without Python's spaces."""
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


def _failures(frame: pd.DataFrame) -> dict[tuple[str, int], list[tuple]]:
    return {
        (r.source_file, r.source_line): [
            (f["rule"], f["column"], _as_json(f["value"])) for f in json.loads(r.failures)
        ]
        for r in frame.itertuples()
    }


def test_quarantine_rows_and_every_failure_are_the_same(both) -> None:
    project, baseline = (_table(root, "quarantine") for root in both)
    assert list(baseline.columns) == list(project.columns)

    def rules(frame: pd.DataFrame) -> set[tuple]:
        return set(zip(frame.source_file, frame.source_line, frame.rule, strict=True))

    assert rules(baseline) == rules(project)
    key = ["source_file", "source_line"]
    columns = ["date", "stream", "record_key", *key, "rule", "column", "value", "raw"]
    for frame in (project, baseline):
        frame["value"] = frame["value"].map(_as_json)
    pd.testing.assert_frame_equal(
        _sorted(baseline, key)[sorted(columns)], _sorted(project, key)[sorted(columns)]
    )
    assert _failures(baseline) == _failures(project)
    # every rule of the project's path is exercised by this world
    stored = {f[0] for fs in _failures(project).values() for f in fs}
    assert {
        "parseable_json",
        "required_field_present",
        "parses_as_double",
        "parses_as_timestamp",
        "repeated_key",
        "scalar_value",
        "string_at_most_256_chars",
        "finite_number",
        "parseable_values",
        "timestamp_has_zone",
        "timestamp_at_most_microseconds",
        "unique_transaction_id",
        "exact_duplicate_transaction_id",
        "not_nullable",
        "str_length(1, 64)",
        "str_length(1, 128)",
        r"str_matches('^C\d+$')",
        r"str_matches('^[A-Z]{2}$')",
        r"str_matches('^\d{4}$')",
        "greater_than(0)",
        "less_than_or_equal_to(500000.0)",
        "isin(['CHF', 'EUR', 'GBP', 'PLN', 'SEK', 'USD'])",
        "isin(['ecom', 'pos', 'contactless', 'atm'])",
        "amount_eur_at_most_25000",
        "batch_median_amount_eur_plausible",
        "event_time_in_partition_day",
        "received_at_not_before_event_time",
        "received_at_in_partition_day",
        "circuit_breaker",
        "readable_file",
        "expected_file_name",
    } <= stored


def test_files_and_audit_tables_are_the_same(both) -> None:
    key = ["date", "source_file"]
    project, baseline = (_table(root, "bronze", "transactions_files") for root in both)
    assert list(baseline.columns) == list(project.columns)
    pd.testing.assert_frame_equal(_sorted(baseline, key), _sorted(project, key))
    project, baseline = (_sorted(_table(root, "audit"), ["date"]) for root in both)
    # The ten most frequent first rules: among equal counts, which make the ten depends on the
    # order Spark returns rows in, so the counts and the rules they agree on are compared.
    tops = [frame.pop("top_rules").map(json.loads) for frame in (project, baseline)]
    for ours, theirs in zip(*tops, strict=True):
        assert sorted(ours.values()) == sorted(theirs.values())
        assert all(ours[r] == theirs[r] for r in ours.keys() & theirs.keys())
    pd.testing.assert_frame_equal(baseline, project)
    assert project["breaker_tripped"].sum() >= 7  # every kind of held day is in the world


def test_bronze_is_the_same(both) -> None:
    key = ["source_file", "source_line"]
    project, baseline = (_table(root, "bronze") for root in both)
    assert list(baseline.columns) == list(project.columns)
    pd.testing.assert_frame_equal(_sorted(baseline, key), _sorted(project, key))

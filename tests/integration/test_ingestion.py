"""Ingestion through Dagster on simulated landing files: conservation, idempotence, every
broken-upstream scenario, the circuit breaker, and a crash in the middle of a write."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.compute as pc
import pytest

from slipway.ingest.contract import CIRCUIT_BREAKER_RULE
from slipway.lakehouse import Lakehouse
from slipway.usecases.fraud.simulator import BrokenUpstream
from tests.support.pipeline import run_graph, simulate, slipway_env

START = dt.date(2026, 8, 1)
SMALL = {"days": 8, "transactions_per_day": 400, "customers": 150, "merchants": 40}
KINDS = {  # day index -> scenario
    1: BrokenUpstream(START + dt.timedelta(days=1), "cents"),
    2: BrokenUpstream(START + dt.timedelta(days=2), "renamed_field"),
    3: BrokenUpstream(START + dt.timedelta(days=3), "nulls", 0.03),
    4: BrokenUpstream(START + dt.timedelta(days=4), "duplicates", 0.05),
    5: BrokenUpstream(START + dt.timedelta(days=5), "garbage", 0.03),
    6: BrokenUpstream(START + dt.timedelta(days=6), "truncated", 0.3),
}
HELD = {1: "batch_median_amount_eur_plausible", 2: "required_field_present", 6: "truncated"}


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def _checks(result) -> dict[str, object]:
    return {
        f"{e.event_specific_data.asset_key.to_user_string()}:{e.event_specific_data.check_name}": e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def _counts(lakehouse: Lakehouse, name: str) -> dict[dt.date, int]:
    if not lakehouse.exists(name):
        return {}
    return {
        c["values"]: c["counts"]
        for c in pc.value_counts(lakehouse.read(name, columns=["date"])["date"]).to_pylist()
    }


def _landed_lines(landing: Path, d: dt.date) -> int:
    folder = landing / "transactions" / d.isoformat()
    return sum(
        sum(1 for line in p.read_bytes().split(b"\n") if line.strip())
        for p in folder.iterdir()
        if p.name.endswith(".jsonl")
    )


def _content(lakehouse: Lakehouse, name: str) -> list[dict]:
    rows = lakehouse.read(name).drop_columns(["ingest_run_id", "ingested_at"]).to_pylist()
    return sorted(rows, key=lambda r: (r["source_file"], r["source_line"]))


@pytest.fixture(scope="module")
def broken_world(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("broken")
    with slipway_env(data):
        simulate(data, scenarios=tuple(KINDS.values()), **SMALL)
        result = run_graph(day(0), day(7), job="ingestion")
        yield data, Lakehouse(data / "lakehouse" / "fraud"), result


def test_every_landed_row_is_in_silver_quarantine_or_the_duplicate_count(broken_world) -> None:
    data, lakehouse, _ = broken_world
    silver = _counts(lakehouse, "silver.transactions")
    quarantined = _counts(lakehouse, "quarantine.transactions")
    audit = {r["date"]: r for r in lakehouse.read("audit.transactions").to_pylist()}
    for i in range(8):
        landed = _landed_lines(data / "landing" / "fraud", day(i))
        assert landed > 0
        assert audit[day(i)]["rows_landed"] == landed
        assert (
            silver.get(day(i), 0) + quarantined.get(day(i), 0) + audit[day(i)]["duplicates_dropped"]
            == landed
        ), day(i)


def test_broken_upstream_trips_the_breaker_and_holds_the_day(broken_world) -> None:
    _, lakehouse, result = broken_world
    silver = _counts(lakehouse, "silver.transactions")
    audit = {r["date"]: r for r in lakehouse.read("audit.transactions").to_pylist()}
    for i, rule in HELD.items():
        assert audit[day(i)]["breaker_tripped"], day(i)
        assert rule in audit[day(i)]["breaker_reason"], audit[day(i)]["breaker_reason"]
        assert silver.get(day(i), 0) == 0
    for i in (0, 3, 4, 5, 7):
        assert not audit[day(i)]["breaker_tripped"], (day(i), audit[day(i)]["breaker_reason"])
        assert silver[day(i)] > 300
    check = _checks(result)["fraud/silver/transactions:contract"]
    assert not check.passed
    for i in HELD:
        assert day(i).isoformat() in check.description
    assert not result.success  # a failed blocking check fails the run


def test_quarantine_rows_name_file_line_and_rule(broken_world) -> None:
    data, lakehouse, _ = broken_world
    rows = lakehouse.read("quarantine.transactions").to_pylist()
    by_day: dict[dt.date, list[dict]] = {}
    for r in rows:
        by_day.setdefault(r["date"], []).append(r)
    garbage = [r for r in by_day[day(5)] if r["rule"] == "parseable_json"]
    assert len(garbage) >= 5
    for r in garbage[:5]:
        path = data / "landing" / "fraud" / r["source_file"]
        line = path.read_bytes().split(b"\n")[r["source_line"] - 1]
        assert line.decode("utf-8", "backslashreplace").rstrip("\r") == r["raw"]
    nulls = [r for r in by_day[day(3)] if r["rule"] != CIRCUIT_BREAKER_RULE]
    assert nulls and all(
        r["rule"] in {"not_nullable", "parses_as_double", "parses_as_timestamp"} for r in nulls
    )
    assert {r["column"] for r in nulls} <= {
        "customer_id",
        "merchant_id",
        "amount",
        "event_time",
        "currency",
        "amount_eur",
    }
    assert len({r["source_line"] for r in nulls}) == len(nulls)  # one quarantine row per landed row
    conflicts = [r for r in by_day[day(4)] if r["rule"] == "unique_transaction_id"]
    assert conflicts and all(r["record_key"].startswith("tx_") for r in conflicts)
    renamed = by_day[day(2)]
    first = json.loads(renamed[0]["failures"])
    assert any(
        f["rule"] == "required_field_present" and "amount_value" in (f["value"] or "")
        for f in first
    )
    cents = by_day[day(1)]
    assert all(
        any(f["rule"] == "batch_median_amount_eur_plausible" for f in json.loads(r["failures"]))
        for r in cents
    )


def test_rerunning_a_partition_is_idempotent(tmp_path: Path) -> None:
    with slipway_env(tmp_path):
        simulate(tmp_path, **{**SMALL, "days": 3})
        lakehouse = Lakehouse(tmp_path / "lakehouse" / "fraud")
        assert run_graph(day(0), day(2), job="ingestion").success
        before = _content(lakehouse, "silver.transactions")
        quarantine_before = lakehouse.read("quarantine.transactions").num_rows
        version = lakehouse.version("silver.transactions")
        assert run_graph(day(1), day(1), job="ingestion").success
        assert lakehouse.version("silver.transactions") == version + 1
        assert _content(lakehouse, "silver.transactions") == before
        assert lakehouse.read("quarantine.transactions").num_rows == quarantine_before
        # a late extra part for day 1 changes that day only, and re-running converges
        assert run_graph(day(0), day(2), job="ingestion").success
        assert _content(lakehouse, "silver.transactions") == before


CRASH = textwrap.dedent(
    """
    import os, signal, sys, warnings
    warnings.filterwarnings("ignore")
    import deltalake, pyarrow as pa
    import slipway.lakehouse.tables as tables
    real = tables.write_deltalake

    def dying_write(uri, data, **kwargs):
        if not uri.endswith("silver/transactions"):
            return real(uri, data, **kwargs)
        batches = data.to_batches(max_chunksize=50) if isinstance(data, pa.Table) else list(data)
        def stream():
            for i, batch in enumerate(batches):
                if i == len(batches) // 2:
                    os.kill(os.getpid(), signal.SIGKILL)  # killed half-way through the write
                yield batch
        schema = data.schema
        return real(uri, pa.RecordBatchReader.from_batches(schema, stream()), **kwargs)

    tables.write_deltalake = dying_write
    from tests.support.pipeline import run_graph
    import datetime as dt
    run_graph(dt.date(2026, 8, 1), dt.date(2026, 8, 2), job="ingestion")
    print("NOT KILLED")
    """
)


def test_a_write_killed_half_way_leaves_the_previous_version_and_a_rerun_converges(
    tmp_path: Path,
) -> None:
    with slipway_env(tmp_path):
        simulate(tmp_path, **{**SMALL, "days": 2})
        lakehouse = Lakehouse(tmp_path / "lakehouse" / "fraud")
        assert run_graph(day(0), day(0), job="ingestion").success
        version = lakehouse.version("silver.transactions")
        before = _content(lakehouse, "silver.transactions")
        proc = subprocess.run(
            [sys.executable, "-c", CRASH],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=Path(__file__).parents[2],
        )
        assert proc.returncode == -9, proc.stderr[-2000:]
        assert "NOT KILLED" not in proc.stdout
        # still readable, at the version before the crash, with exactly the same rows
        assert lakehouse.version("silver.transactions") == version
        assert _content(lakehouse, "silver.transactions") == before
        assert run_graph(day(0), day(1), job="ingestion").success
        after = _content(lakehouse, "silver.transactions")
        clean = tmp_path / "clean"
        with slipway_env(clean):
            simulate(clean, **{**SMALL, "days": 2})
            assert run_graph(day(0), day(1), job="ingestion").success
            assert after == _content(
                Lakehouse(clean / "lakehouse" / "fraud"), "silver.transactions"
            )


KILL_BETWEEN_COMMITS = textwrap.dedent(
    """
    import os, signal, warnings
    warnings.filterwarnings("ignore")
    import slipway.lakehouse.tables as tables
    real = tables.write_deltalake

    def dying_write(uri, data, **kwargs):
        if uri.endswith("quarantine/transactions"):
            os.kill(os.getpid(), signal.SIGKILL)  # silver is committed, quarantine and audit not
        return real(uri, data, **kwargs)

    tables.write_deltalake = dying_write
    from tests.support.pipeline import run_graph
    import datetime as dt
    run_graph(dt.date(2026, 8, 1), dt.date(2026, 8, 2), job="ingestion")
    print("NOT KILLED")
    """
)


def test_a_run_killed_between_its_commits_publishes_nothing_and_the_next_run_repairs(
    tmp_path: Path,
) -> None:
    from slipway.ingest.pipeline import check_silver, published_versions
    from slipway.usecases.fraud import TRANSACTIONS

    with slipway_env(tmp_path):
        simulate(tmp_path, **{**SMALL, "days": 2})
        lakehouse = Lakehouse(tmp_path / "lakehouse" / "fraud")
        assert run_graph(day(0), day(0), job="ingestion").success
        record = published_versions(lakehouse, "transactions")
        assert record and record["silver.transactions"] == lakehouse.version("silver.transactions")
        before = _content(lakehouse, "silver.transactions")
        proc = subprocess.run(
            [sys.executable, "-c", KILL_BETWEEN_COMMITS],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=Path(__file__).parents[2],
        )
        assert proc.returncode == -9, proc.stderr[-2000:]
        # the dead run's silver commit is there, but no publish record names it
        assert lakehouse.version("silver.transactions") == record["silver.transactions"] + 1
        assert published_versions(lakehouse, "transactions") == record
        # readers that pin the publish record see the day as it was published, conserved
        checks = {c.day: c for c in check_silver(lakehouse, TRANSACTIONS, day(0), day(1))}
        assert checks[day(0)].passed, checks[day(0)]
        assert checks[day(1)].silver == 0 and not checks[day(1)].passed
        # ... and so does dbt: its source loader reads silver at the published version
        from dbt.adapters.duckdb.utils import SourceConfig

        from slipway.gold.dbt_delta_plugin import Plugin

        plugin = Plugin("lakehouse", {"root": str(lakehouse.root)})
        source = SourceConfig("silver", "transactions", "silver", None, {}, [])
        loaded = plugin.load(source)
        assert plugin.read_versions["silver.transactions"] == record["silver.transactions"]
        assert set(loaded["date"].to_pylist()) == {day(0)}
        # the next silver run, even over another range, undoes the unpublished commit
        assert run_graph(day(0), day(0), job="ingestion").success
        assert _content(lakehouse, "silver.transactions") == before
        assert all(c.passed for c in check_silver(lakehouse, TRANSACTIONS, day(0), day(0)))
        assert run_graph(day(0), day(1), job="ingestion").success
        assert all(c.passed for c in check_silver(lakehouse, TRANSACTIONS, day(0), day(1)))

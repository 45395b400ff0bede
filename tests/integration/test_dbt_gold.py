"""The gold layer for real: dbt-duckdb reads silver Delta fixtures and writes Delta marts.

dbt runs in this process (``slipway.gold.dbt_runner``, what the Dagster assets use by default),
with parsed manifests reused across invocations, so several tests check that what a run does
still follows the run's vars (its date window) when the manifest was parsed earlier. The content
and idempotence checks call the runner directly; the Dagster tests check the wiring (partition
range -> one dbt invocation, Delta metadata, tests as asset checks, dbt errors failing the step)
and, once, that the in-process events equal those of dagster-dbt's own ``dbt`` subprocess.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from slipway.gold import dbt_project
from slipway.lakehouse import Lakehouse
from slipway.usecases.fraud import FRAUD

UTC = dt.UTC
D1, D2, D3, D10 = (dt.date(2026, 8, d) for d in (1, 2, 3, 10))
NOW = dt.datetime(2026, 8, 11, tzinfo=UTC)
LINEAGE = {
    "source_file": "fixture.jsonl",
    "source_line": 1,
    "ingest_run_id": "r1",
    "ingested_at": NOW,
}

TRANSACTIONS = pa.schema(
    [
        ("date", pa.date32()),
        ("transaction_id", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("customer_id", pa.string()),
        ("merchant_id", pa.string()),
        ("amount", pa.float64()),
        ("currency", pa.string()),
        ("channel", pa.string()),
        ("country", pa.string()),
        ("merchant_category", pa.string()),
        ("device_id", pa.string()),
        ("amount_eur", pa.float64()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("ingest_run_id", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


def tx(
    tid: str,
    day: dt.date,
    hour: int,
    customer: str,
    merchant: str,
    channel: str,
    country: str,
    eur: float,
) -> dict[str, Any]:
    event_time = dt.datetime(day.year, day.month, day.day, hour, 30, tzinfo=UTC)
    return {
        "date": day,
        "transaction_id": tid,
        "event_time": event_time,
        "received_at": event_time + dt.timedelta(milliseconds=40),
        "customer_id": customer,
        "merchant_id": merchant,
        "amount": eur,
        "currency": "EUR",
        "channel": channel,
        "country": country,
        "merchant_category": "5411",
        "device_id": f"dev-{customer}",
        "amount_eur": eur,
        **LINEAGE,
    }


BASE_TRANSACTIONS = [
    tx("t1", D1, 3, "c1", "m1", "ecom", "DE", 10.0),
    tx("t8", D1, 9, "c2", "m1", "ecom", "DE", 15.0),
    tx("t2", D1, 23, "c2", "m2", "pos", "FR", 20.0),
    tx("t3", D1, 12, "c1", "m2", "ecom", "FR", 30.0),  # c1 lives in DE: foreign
    tx("t4", D2, 0, "c3", "m3", "contactless", "NL", 40.0),
    tx("t5", D2, 17, "c3", "m1", "ecom", "DE", 50.0),  # c3 lives in NL: foreign
    tx("t6", D3, 8, "c2", "m2", "pos", "FR", 60.0),
    tx("t7", D10, 6, "c1", "m1", "atm", "DE", 70.0),
]


def write_silver_transactions(
    lakehouse: Lakehouse, rows: list[dict[str, Any]], start: dt.date, end: dt.date
) -> int:
    table = pa.Table.from_pylist(rows, schema=TRANSACTIONS)
    return lakehouse.write(
        "silver.transactions", table, replace_dates=(start, end), partition_by=["date"]
    ).version


def write_fixtures(lakehouse: Lakehouse) -> None:
    from slipway.ingest.contract import QUARANTINE_SCHEMA

    write_silver_transactions(lakehouse, BASE_TRANSACTIONS, D1, D10)
    chargebacks = [
        {
            "date": D1 + dt.timedelta(days=4),
            "transaction_id": "t1",
            "reported_at": NOW,
            "fraud_type": "cnp",
            **LINEAGE,
        },
        {
            "date": D1 + dt.timedelta(days=5),
            "transaction_id": "t3",
            "reported_at": NOW,
            "fraud_type": "cnp",
            **LINEAGE,
        },
        # t3 reported twice: still one charged-back transaction
        {
            "date": D1 + dt.timedelta(days=6),
            "transaction_id": "t3",
            "reported_at": NOW,
            "fraud_type": "ato",
            **LINEAGE,
        },
        {
            "date": D1 + dt.timedelta(days=8),
            "transaction_id": "t5",
            "reported_at": NOW,
            "fraud_type": "cnp",
            **LINEAGE,
        },
    ]
    lakehouse.write(
        "silver.chargebacks",
        pa.Table.from_pylist(chargebacks),
        mode="overwrite",
        partition_by=["date"],
    )
    snapshot = {"snapshot_date": D1, **LINEAGE}
    customers = [
        {
            **snapshot,
            "customer_id": "c1",
            "signup_date": dt.date(2026, 7, 1),
            "home_country": "DE",
            "segment": "retail",
            "birth_year": 1980,
        },
        {
            **snapshot,
            "customer_id": "c2",
            "signup_date": dt.date(2026, 7, 31),
            "home_country": "FR",
            "segment": "premium",
            "birth_year": 1990,
        },
        {
            **snapshot,
            "customer_id": "c3",
            "signup_date": dt.date(2025, 8, 2),
            "home_country": "NL",
            "segment": "business",
            "birth_year": 1975,
        },
    ]
    lakehouse.write("silver.customers", pa.Table.from_pylist(customers), mode="overwrite")
    merchants = [
        {
            **snapshot,
            "merchant_id": "m1",
            "merchant_name": "Bäckerei",
            "merchant_category": "5411",
            "country": "DE",
        },
        {
            **snapshot,
            "merchant_id": "m2",
            "merchant_name": "Bistro",
            "merchant_category": "5812",
            "country": "FR",
        },
        {
            **snapshot,
            "merchant_id": "m3",
            "merchant_name": "Winkel",
            "merchant_category": "5999",
            "country": "NL",
        },
    ]
    lakehouse.write("silver.merchants", pa.Table.from_pylist(merchants), mode="overwrite")

    def bad(day: dt.date, line: int, rule: str) -> dict[str, Any]:
        return {
            "date": day, "stream": "transactions", "record_key": f"bad{line}", "source_file": "fixture.jsonl",
            "source_line": line, "rule": rule, "column": "amount", "value": "x", "failures": "[]", "raw": "{}",
            "ingest_run_id": "r1", "quarantined_at": NOW,
        }  # fmt: skip

    quarantine = [
        bad(D1, 5, "not_null"),
        bad(D1, 6, "not_null"),
        bad(D1, 7, "accepted_values"),
        bad(D2, 3, "not_null"),
    ]
    lakehouse.write(
        "quarantine.transactions",
        pa.Table.from_pylist(quarantine, schema=QUARANTINE_SCHEMA),
        mode="overwrite",
        partition_by=["date"],
    )


@pytest.fixture
def lakehouse(data_dir: Path) -> Lakehouse:
    """Fraud's own lakehouse under the deployment's root (``data_dir`` sets that root)."""
    return Lakehouse(data_dir / "lakehouse" / "fraud")


@pytest.fixture
def gold(
    data_dir: Path, lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Lakehouse]:
    """Fraud's lakehouse with silver fixtures; a hand-run dbt finds it from the settings
    (``SLIPWAY_LAKEHOUSE_ROOT``/fraud, the default use case)."""
    monkeypatch.setenv("SLIPWAY_LAKEHOUSE_ROOT", str(data_dir / "lakehouse"))
    monkeypatch.setenv("SLIPWAY_DBT_SCRATCH", str(data_dir / "dbt" / "scratch"))
    # dagster-dbt gives each invocation a folder under $DBT_TARGET_PATH: keep them out of the repo
    monkeypatch.setenv("DBT_TARGET_PATH", str(data_dir / "dbt" / "target"))
    write_fixtures(lakehouse)
    yield lakehouse


def dbt(
    tmp_path: Path, *args: str, window: tuple[dt.date, dt.date] | None = None
) -> dict[str, str]:
    """Run dbt in-process in a private target folder; returns {node name: status}."""
    return invoke(tmp_path, *args, window=window).statuses


class Invocation(NamedTuple):
    statuses: dict[str, str]
    manifest_from: str


def invoke(tmp_path: Path, *args: str, window: tuple[dt.date, dt.date] | None = None) -> Invocation:
    from slipway.gold import dbt_runner

    dbt_vars = (
        {"start_date": window[0].isoformat(), "end_date": window[1].isoformat()} if window else None
    )
    run = dbt_runner.invoke(list(args), target_path=tmp_path / "dbt-target", vars=dbt_vars)
    assert run.events, run.error_message()
    statuses = {
        e["data"]["node_info"]["node_name"]: e["data"]["node_info"]["node_status"]
        for e in run.events
    }
    return Invocation(statuses, run.manifest_from)


def rows(lakehouse: Lakehouse, name: str, key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in lakehouse.read(name).to_pylist()}


def enriched_by_date(lakehouse: Lakehouse) -> dict[dt.date, set[str]]:
    """The transaction ids of gold.enriched_transactions, per date partition."""
    found: dict[dt.date, set[str]] = {}
    for r in lakehouse.read(
        "gold.enriched_transactions", columns=["date", "transaction_id"]
    ).to_pylist():
        found.setdefault(r["date"], set()).add(r["transaction_id"])
    return found


# -- (1) a full build: every mart's contents ------------------------------------------------------
def test_build_all_marts(gold: Lakehouse, tmp_path: Path) -> None:
    statuses = dbt(tmp_path, "build")
    assert statuses and all(s in ("success", "pass") for s in statuses.values()), statuses

    enriched = rows(gold, "gold.enriched_transactions", "transaction_id")
    assert set(enriched) == {r["transaction_id"] for r in BASE_TRANSACTIONS}
    t3 = enriched["t3"]
    assert (t3["home_country"], t3["segment"], t3["birth_year"]) == ("DE", "retail", 1980)
    assert (t3["merchant_name"], t3["merchant_country"]) == ("Bistro", "FR")
    assert t3["signup_date"] == dt.date(2026, 7, 1)
    assert t3["is_foreign"] is True and enriched["t1"]["is_foreign"] is False
    assert enriched["t5"]["is_foreign"] is True and enriched["t4"]["is_foreign"] is False
    assert {k: enriched[k]["hour_of_day"] for k in ("t1", "t2", "t4")} == {
        "t1": 3,
        "t2": 23,
        "t4": 0,
    }
    assert enriched["t3"]["customer_tenure_days"] == 31  # 2026-07-01 -> 2026-08-01
    assert enriched["t2"]["customer_tenure_days"] == 1
    assert enriched["t4"]["customer_tenure_days"] == 365
    assert enriched["t7"]["merchant_name"] == "Bäckerei"
    assert DeltaTable(gold.uri("gold.enriched_transactions")).metadata().partition_columns == [
        "date"
    ]

    kpi = {
        (r["date"], r["channel"], r["country"]): r
        for r in gold.read("gold.fraud_kpi_daily").to_pylist()
    }
    assert len(kpi) == 7
    ecom_de = kpi[(D1, "ecom", "DE")]
    assert (ecom_de["transactions"], ecom_de["chargebacks"], ecom_de["amount_eur"]) == (2, 1, 25.0)
    assert ecom_de["fraud_rate"] == pytest.approx(0.5)
    assert ecom_de["chargeback_amount_eur"] == pytest.approx(10.0)
    assert kpi[(D1, "ecom", "FR")]["chargebacks"] == 1  # reported twice, counted once
    assert kpi[(D1, "pos", "FR")]["fraud_rate"] == 0.0
    assert kpi[(D2, "ecom", "DE")]["fraud_rate"] == 1.0
    # latest transaction date is D10: a day is matured when day + 7 <= D10
    assert kpi[(D3, "pos", "FR")]["labels_matured"] is True
    assert kpi[(D10, "atm", "DE")]["labels_matured"] is False
    assert sum(r["transactions"] for r in kpi.values()) == len(BASE_TRANSACTIONS)

    quality = {(r["date"], r["rule"]): r for r in gold.read("gold.quarantine_daily").to_pylist()}
    assert set(quality) == {
        (D1, "not_null"),
        (D1, "accepted_values"),
        (D2, "not_null"),
        (D3, "none"),
        (D10, "none"),
    }
    d1 = quality[(D1, "not_null")]
    assert (d1["quarantined_rows"], d1["day_quarantined_rows"], d1["silver_rows"]) == (2, 3, 4)
    assert d1["bad_share"] == pytest.approx(2 / 7) and d1["day_bad_share"] == pytest.approx(3 / 7)
    assert quality[(D2, "not_null")]["bad_share"] == pytest.approx(1 / 3)
    assert (
        quality[(D3, "none")]["quarantined_rows"] == 0 and quality[(D3, "none")]["bad_share"] == 0.0
    )
    # monitoring has never run here: its sources load empty and the mart is an empty history
    assert gold.read("gold.drift_daily").num_rows == 0


def test_a_quiet_console_keeps_every_result_event(
    gold: Lakehouse, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """``make run`` sets SLIPWAY_DBT_LOG_LEVEL=warn: dbt's per-node lines leave the terminal,
    the result events (what the assets report) and the log file do not."""
    loud = dbt(tmp_path / "loud", "build")
    assert "START sql" in capfd.readouterr().out
    monkeypatch.setenv("SLIPWAY_DBT_LOG_LEVEL", "warn")
    quiet = dbt(tmp_path / "quiet", "build")
    assert "START sql" not in capfd.readouterr().out
    assert quiet == loud and quiet
    assert "START sql" in (tmp_path / "quiet" / "dbt-target" / "dbt.log").read_text()
    monkeypatch.setenv("SLIPWAY_DBT_LOG_LEVEL", "loud")
    with pytest.raises(ValueError, match="SLIPWAY_DBT_LOG_LEVEL"):
        dbt(tmp_path / "bad", "build")


def test_drift_mart_summarises_monitoring_rows(gold: Lakehouse, tmp_path: Path) -> None:
    import pyarrow as pa

    def metric(day, feature, metric, statistic, drifted):
        return {
            "date": day, "model_name": "m", "model_version": 1, "feature": feature,
            "metric": metric, "statistic": statistic, "threshold": 0.1, "drifted": drifted,
        }  # fmt: skip

    gold.write(
        "monitoring.drift_metrics",
        pa.Table.from_pylist(
            [
                metric(D1, "amount_eur", "value_drift", 0.9, True),
                metric(D1, "channel", "value_drift", 0.2, True),
                metric(D1, "hour_of_day", "value_drift", 0.01, False),
                metric(D1, "*", "drift_share", 2 / 3, True),
                metric(D1, "score", "prediction_drift", 0.05, False),
                metric(D2, "amount_eur", "value_drift", 0.02, False),
                metric(D2, "*", "drift_share", 0.0, False),
                metric(D2, "score", "prediction_drift", 0.3, True),
            ]
        ),
        mode="overwrite",
    )
    gold.write(
        "monitoring.performance",
        pa.Table.from_pylist(
            [
                dict(
                    date=D1,
                    model_name="m",
                    model_version=1,
                    status="evaluated",
                    pr_auc=0.7,
                    recall_at_precision=0.5,
                    pr_auc_drop=0.2,
                    degraded=True,
                )
            ]
        ),
        mode="overwrite",
    )
    statuses = dbt(tmp_path, "build", "--select", "drift_daily")
    assert statuses and all(s in ("success", "pass") for s in statuses.values()), statuses
    days = {r["date"]: r for r in gold.read("gold.drift_daily").to_pylist()}
    assert (
        days[D1]["drifted_features"] == 2
        and days[D1]["drifted_feature_list"] == "amount_eur, channel"
    )
    assert days[D1]["day_drifted"] and not days[D1]["prediction_drifted"]
    assert days[D1]["pr_auc"] == pytest.approx(0.7) and days[D1]["degraded"]
    assert days[D2]["prediction_drifted"] and not days[D2]["day_drifted"]
    assert days[D2]["performance_status"] is None and days[D2]["degraded"] is False


# -- (2) + (3) partition windows: idempotent, exact, following upstream ---------------------------
def test_partition_windows_replace_exactly_their_dates(gold: Lakehouse, tmp_path: Path) -> None:
    assert (
        dbt(tmp_path, "build", "--select", "tag:daily", window=(D2, D2))["enriched_transactions"]
        == "success"
    )
    v1 = gold.version("gold.enriched_transactions")
    assert enriched_by_date(gold) == {D2: {"t4", "t5"}}

    dbt(
        tmp_path, "build", "--select", "tag:daily", window=(D2, D2)
    )  # the same day again: same rows
    v2 = gold.version("gold.enriched_transactions")
    assert v2 == v1 + 1 and enriched_by_date(gold) == {D2: {"t4", "t5"}}

    dbt(
        tmp_path, "build", "--select", "tag:daily", window=(D1, D2)
    )  # a 2-day range, one invocation
    assert gold.version("gold.enriched_transactions") == v2 + 1
    assert enriched_by_date(gold) == {D1: {"t1", "t2", "t3", "t8"}, D2: {"t4", "t5"}}
    assert gold.read("gold.enriched_transactions").num_rows == 6  # no duplicates

    # (3) upstream changes: D2 is re-landed with different rows; re-running D2 follows, D1 stays
    replaced = [
        tx("t9", D2, 10, "c2", "m3", "ecom", "NL", 99.0),
        tx("t10", D2, 11, "c1", "m1", "pos", "DE", 1.0),
    ]
    write_silver_transactions(gold, replaced, D2, D2)
    dbt(tmp_path, "build", "--select", "tag:daily", window=(D2, D2))
    assert enriched_by_date(gold) == {D1: {"t1", "t2", "t3", "t8"}, D2: {"t9", "t10"}}
    t9 = rows(gold, "gold.enriched_transactions", "transaction_id")["t9"]
    assert (t9["amount_eur"], t9["is_foreign"], t9["merchant_name"]) == (99.0, True, "Winkel")

    # an empty window empties exactly that window (no placeholder row from dbt-duckdb)
    write_silver_transactions(gold, [], D2, D2)
    dbt(tmp_path, "build", "--select", "tag:daily", window=(D2, D2))
    assert enriched_by_date(gold) == {D1: {"t1", "t2", "t3", "t8"}}


# -- (2b) parsed manifests are reused in one process, and the window still follows the vars -------
def test_window_follows_vars_with_reused_manifests(gold: Lakehouse, tmp_path: Path) -> None:
    """dbt renders the window (vars) into the manifest at parse time: a manifest reused for
    another window would overwrite every date with that window's rows. Each window gets its own."""
    from slipway.gold import dbt_runner

    daily = ("build", "--select", "tag:daily")
    everything = {D1: {"t1", "t2", "t3", "t8"}, D2: {"t4", "t5"}, D3: {"t6"}, D10: {"t7"}}
    dbt_runner.clear_manifest_cache()
    assert invoke(tmp_path, *daily).statuses["enriched_transactions"] == "success"  # no vars: all
    assert enriched_by_date(gold) == everything

    write_silver_transactions(gold, [tx("t9", D2, 10, "c2", "m3", "ecom", "NL", 9.0)], D2, D2)
    first = invoke(tmp_path, *daily, window=(D2, D2))
    assert first.manifest_from == "parse"  # a new window is parsed with its vars
    assert enriched_by_date(gold) == {
        **everything,
        D2: {"t9"},
    }  # exactly D2 replaced, the rest kept

    write_silver_transactions(gold, [tx("t11", D3, 10, "c2", "m3", "ecom", "NL", 9.0)], D3, D3)
    invoke(tmp_path, *daily, window=(D3, D3))
    assert enriched_by_date(gold) == {**everything, D2: {"t9"}, D3: {"t11"}}

    # the same window again reuses its manifest (a fresh copy: dbt mutates the one it runs with)
    write_silver_transactions(gold, [tx("t12", D2, 10, "c1", "m1", "pos", "DE", 2.0)], D2, D2)
    again = invoke(tmp_path, *daily, window=(D2, D2))
    assert again.manifest_from == "memory" and again.statuses["enriched_transactions"] == "success"
    assert enriched_by_date(gold) == {**everything, D2: {"t12"}, D3: {"t11"}}

    rebuilt = invoke(tmp_path, *daily)  # and the vars-less manifest is reused for a full rebuild
    assert rebuilt.manifest_from == "memory"
    assert enriched_by_date(gold) == {**everything, D2: {"t12"}, D3: {"t11"}}


def test_interrupted_invocation_leaves_the_next_one_working(
    gold: Lakehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbtRunner returns even an interrupt as a result: it must reach the caller, and the
    process-global dbt state (lock, callbacks, DuckDB environment) must be usable afterwards."""
    import threading

    from slipway.gold import dbt_runner
    from slipway.gold.dbt_project import DBT_LOCK

    collect = dbt_runner._Collector.__call__

    def interrupt(self: Any, msg: Any) -> None:
        if msg.info.name == "MainReportArgs":
            raise KeyboardInterrupt("stop")
        collect(self, msg)

    monkeypatch.setattr(dbt_runner._Collector, "__call__", interrupt)
    with pytest.raises(KeyboardInterrupt):
        invoke(tmp_path, "build", "--select", "tag:daily")
    monkeypatch.setattr(dbt_runner._Collector, "__call__", collect)

    def probe() -> None:  # from another thread: is the lock free?
        if DBT_LOCK.acquire(blocking=False):
            free.append(True)
            DBT_LOCK.release()

    free: list[bool] = []
    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    assert free == [True]
    assert invoke(tmp_path, "build", "--select", "tag:daily").statuses["enriched_transactions"] == (
        "success"
    )


# -- (4) Dagster: one invocation per partition range, Delta metadata, tests as asset checks -------
def test_dagster_assets_partition_range_metadata_and_checks(
    gold: Lakehouse, data_dir: Path
) -> None:
    import dagster as dg

    from assets.gold.assets import dbt_resource, gold_definitions
    from orchestration.resources import LakehouseResource

    (daily, marts, monitoring_marts), _checks = gold_definitions(FRAUD)
    assert monitoring_marts.keys == {dg.AssetKey(["fraud", "gold", "drift_daily"])}
    assert dg.AssetKey(["fraud", "monitoring", "drift"]) in monitoring_marts.dependency_keys
    assert daily.keys == {dg.AssetKey(["fraud", "gold", "enriched_transactions"])}
    assert marts.keys == {
        dg.AssetKey(["fraud", "gold", "fraud_kpi_daily"]),
        dg.AssetKey(["fraud", "gold", "quarantine_daily"]),
    }
    assert dg.AssetKey(["fraud", "monitoring", "drift"]) not in marts.dependency_keys
    assert dg.AssetKey(["fraud", "silver", "transactions"]) in daily.dependency_keys
    assert dg.AssetKey(["fraud", "quarantine", "transactions"]) in marts.dependency_keys
    assert not any(
        k.path[1] in ("gold_staging", "stg") for k in daily.dependency_keys | marts.dependency_keys
    )
    checks = {c.name for c in daily.check_keys}
    assert {
        "unique_enriched_transactions_transaction_id",
        "not_null_enriched_transactions_date",
    } <= checks

    resources = {
        "dbt": dbt_resource(),
        "lakehouse": LakehouseResource(root=str(data_dir / "lakehouse")),
    }
    range_tags = {
        "dagster/asset_partition_range_start": "2026-08-01",
        "dagster/asset_partition_range_end": "2026-08-02",
    }
    result = dg.materialize([daily], resources=resources, tags=range_tags)
    assert result.success
    assert len(result.get_step_success_events()) == 1  # one step: one dbt invocation for the range
    materializations = result.get_asset_materialization_events()
    assert {m.partition for m in materializations} == {"2026-08-01", "2026-08-02"}
    mart = gold.read("gold.enriched_transactions").to_pylist()
    for m in materializations:
        meta = {k: v.value for k, v in m.materialization.metadata.items()}
        # each day's event carries that day's rows (4 and 2), the range's total is labelled so
        day_rows = sum(1 for r in mart if r["date"].isoformat() == m.partition)
        assert meta["rows_written"] == meta["dagster/row_count"] == day_rows
        assert meta["range_rows_written"] == len(mart) == 6
        assert meta["table_version"] == gold.version("gold.enriched_transactions") == 0
        assert m.materialization.tags["dagster/data_version"] == "0"  # the Delta version
        assert meta["replaced_dates"] == "2026-08-01 .. 2026-08-02"
        assert meta["read_versions"] == {
            "silver.transactions": 0,
            "silver.customers": 0,
            "silver.merchants": 0,
        }
    assert sorted(m.materialization.metadata["rows_written"].value for m in materializations) == [
        2,
        4,
    ]
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == checks and all(e.passed for e in evaluations)
    assert not list((data_dir / "dbt" / "scratch").glob("*")), (
        "scratch files and receipts are removed"
    )

    # a broken upstream row: the dbt tests fail as asset checks (partitioned and full-refresh
    # marts alike, both built in this run) and the steps fail
    broken = [r for r in BASE_TRANSACTIONS if r["date"] == D1]
    broken.append(tx("t666", D1, 5, "c404", "m1", "teleport", "DE", 1.0))
    version = write_silver_transactions(gold, broken, D1, D1)
    failed = dg.materialize(
        [daily, marts], resources=resources, partition_key="2026-08-01", raise_on_error=False
    )
    assert not failed.success
    verdicts = {e.check_name: e.passed for e in failed.get_asset_check_evaluations()}
    assert (
        verdicts["accepted_values_enriched_transactions_channel__ecom__pos__contactless__atm"]
        is False
    )
    assert (
        verdicts["relationships_enriched_transactions_customer_id__customer_id__ref_stg_customers_"]
        is False
    )
    assert verdicts["accepted_values_fraud_kpi_daily_channel__ecom__pos__contactless__atm"] is False
    assert verdicts["unique_enriched_transactions_transaction_id"] is True
    assert verdicts["unique_combination_quarantine_daily_date__rule"] is True
    written = {
        m.asset_key.path[-1]: m.materialization.metadata
        for m in failed.get_asset_materialization_events()
    }
    kpi_meta = {k: v.value for k, v in written["fraud_kpi_daily"].items()}
    assert kpi_meta["table_version"] == gold.version("gold.fraud_kpi_daily") == 0
    assert kpi_meta["dagster/row_count"] == gold.read("gold.fraud_kpi_daily").num_rows == 8
    assert kpi_meta["read_versions"] == {"silver.transactions": version, "silver.chargebacks": 0}
    assert kpi_meta["replaced_dates"] == "all (full overwrite)"
    # the steps fail with dbt's own account of what failed
    errors = step_errors(failed)
    assert "accepted_values_enriched_transactions_channel" in errors["fraud_gold_daily_marts"]
    assert "accepted_values_fraud_kpi_daily_channel" in errors["fraud_gold_marts"]
    assert not list((data_dir / "dbt" / "scratch").glob("*"))


def step_errors(result: Any) -> dict[str, str]:
    """step key -> its failure's messages (the error and its causes)."""
    found = {}
    for event in result.get_step_failure_events():
        error, parts = event.step_failure_data.error, []
        while error is not None:
            parts.append(error.message)
            error = error.cause
        found[event.step_key] = "\n".join(parts)
    return found


# -- (4b) dbt errors fail the step clearly; the next run in the same process works ----------------
def test_dagster_dbt_error_then_windows_in_one_process(
    data_dir: Path, lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from assets.gold.assets import dbt_resource, gold_definitions
    from orchestration.resources import LakehouseResource

    monkeypatch.setenv("DBT_TARGET_PATH", str(data_dir / "dbt" / "target"))
    (daily, *_marts), _checks = gold_definitions(FRAUD)
    # the run's lakehouse resource is what dbt writes to, whatever the environment says
    monkeypatch.setenv("SLIPWAY_LAKEHOUSE_ROOT", str(data_dir / "elsewhere"))
    resources = {
        "dbt": dbt_resource(),
        "lakehouse": LakehouseResource(root=str(data_dir / "lakehouse")),
    }

    # nothing in silver yet: the plugin's error is dbt's error, and the step fails with it
    failed = dg.materialize(
        [daily], resources=resources, partition_key="2026-08-02", raise_on_error=False
    )
    assert not failed.success
    message = step_errors(failed)["fraud_gold_daily_marts"]
    assert "silver.transactions" in message and "does not exist" in message, message
    assert not list((data_dir / "dbt" / "scratch").glob("*"))

    write_fixtures(lakehouse)
    windows = []
    for day in ("2026-08-02", "2026-08-03"):  # two windows, one process: each replaces its own
        result = dg.materialize([daily], resources=resources, partition_key=day)
        assert result.success
        (m,) = result.get_asset_materialization_events()
        windows.append(m.materialization.metadata["replaced_dates"].value)
    assert windows == ["2026-08-02 .. 2026-08-02", "2026-08-03 .. 2026-08-03"]
    dates = {r["date"] for r in lakehouse.read("gold.enriched_transactions").to_pylist()}
    assert dates == {D2, D3}
    assert not (data_dir / "elsewhere").exists()


# -- (4c) the in-process events are dagster-dbt's own --------------------------------------------
def test_in_process_events_equal_dagster_dbt_subprocess(
    gold: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same partition through dagster-dbt's ``dbt`` subprocess (SLIPWAY_DBT_SUBPROCESS=1)
    and in-process: the same outputs, metadata and asset check results, failing ones included."""
    import dagster as dg

    from assets.gold.assets import dbt_resource, gold_definitions
    from orchestration.resources import LakehouseResource
    from slipway.gold.dbt_runner import SUBPROCESS_ENV

    (daily, *_marts), _checks = gold_definitions(FRAUD)
    resources = {
        "dbt": dbt_resource(),
        "lakehouse": LakehouseResource(root=str(Path(gold.root).parent)),
    }
    broken = [r for r in BASE_TRANSACTIONS if r["date"] == D1]
    broken.append(tx("t666", D1, 5, "c404", "m1", "teleport", "DE", 1.0))
    write_silver_transactions(gold, broken, D1, D1)
    volatile = {"invocation_id", "Execution Duration", "table_version"}

    def events(subprocess: bool) -> tuple[Any, ...]:
        monkeypatch.setenv(SUBPROCESS_ENV, "1" if subprocess else "0")
        result = dg.materialize(
            [daily], resources=resources, partition_key="2026-08-01", raise_on_error=False
        )
        outputs = {
            (m.asset_key, m.partition): {
                k: v.value for k, v in m.materialization.metadata.items() if k not in volatile
            }
            for m in result.get_asset_materialization_events()
        }
        checks = {
            e.check_name: (
                e.passed,
                e.severity,
                {k: v.value for k, v in e.metadata.items() if k not in volatile},
            )
            for e in result.get_asset_check_evaluations()
        }
        return result.success, outputs, checks

    in_process, subprocess = events(subprocess=False), events(subprocess=True)
    assert in_process == subprocess
    success, outputs, checks = in_process
    assert not success and len(outputs) == 1 and len(checks) == len(daily.check_keys)
    assert (
        checks["accepted_values_enriched_transactions_channel__ecom__pos__contactless__atm"][0]
        is False
    )


# -- (5) the manifest builds itself ---------------------------------------------------------------
def test_manifest_is_built_when_missing_or_stale(tmp_path: Path) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(
        dbt_project.DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs")
    )
    manifest = project / "target" / "manifest.json"
    assert dbt_project.manifest_is_stale(project)

    assert dbt_project.ensure_manifest(project, project) == manifest
    nodes = json.loads(manifest.read_text())["nodes"]
    assert "model.slipway.enriched_transactions" in nodes
    built = manifest.stat().st_mtime_ns
    assert not dbt_project.manifest_is_stale(project)
    dbt_project.ensure_manifest(project, project)
    assert manifest.stat().st_mtime_ns == built  # fresh: not parsed again

    model = project / "models" / "fraud" / "marts" / "fraud_kpi_daily.sql"
    later = time.time() + 5
    os.utime(model, (later, later))  # an edit after the last parse
    assert dbt_project.manifest_is_stale(project)
    dbt_project.ensure_manifest(project, project)
    assert manifest.stat().st_mtime_ns > built
    assert not list((project / "target").glob(".parse-*")), "the temporary parse folder is removed"

    past = manifest.stat().st_mtime - 1
    os.utime(model, (past, past))  # back from the future: fresh again
    assert not dbt_project.manifest_is_stale(project)
    # parsed by another dbt-core / dbt-duckdb: stale although no project file changed
    versions = project / "target" / dbt_project.PARSE_VERSIONS_FILE
    recorded = versions.read_text()
    versions.write_text(json.dumps({**json.loads(recorded), "dbt-duckdb": "0.0.1"}))
    assert dbt_project.manifest_is_stale(project)
    versions.write_text(recorded)
    assert not dbt_project.manifest_is_stale(project)
    # a deleted model changes no remaining file, only its folder
    time.sleep(0.01)
    (project / "models" / "fraud" / "marts" / "quarantine_daily.sql").unlink()
    assert dbt_project.manifest_is_stale(project)

"""The same transformations on Sail and on JVM Spark give the same rows.

Sail is the embedded default; production may run classic Spark. Every pure DataFrame function
that builds silver or a feature table is run on both engines over the same parquet input (real
simulator output, including broken lines) and compared row by row.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slipway.usecases.fraud.simulator import BrokenUpstream, SimConfig, Simulator
from tests.support import jvm_runner
from tests.support.records import bronze

pytestmark = pytest.mark.jvm
ROOT = Path(__file__).resolve().parents[2]
START = dt.date(2026, 8, 1)


def _bronze_from_landing(landing: Path, stream: str) -> pa.Table:
    tables = []
    for folder in sorted((landing / stream).iterdir()):
        day = dt.date.fromisoformat(folder.name)
        for path in sorted(folder.glob("*.jsonl")):
            lines = [
                ln.decode("utf-8", "backslashreplace")
                for ln in path.read_bytes().split(b"\n")
                if ln.strip()
            ]
            if lines:
                tables.append(
                    bronze(lines, day=day, source_file=f"{stream}/{folder.name}/{path.name}")
                )
    return pa.concat_tables(tables)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Parquet inputs from a small simulated world with duplicates and garbage lines."""
    base = tmp_path_factory.mktemp("parity")
    scenarios = (
        BrokenUpstream(START + dt.timedelta(days=2), "duplicates", 0.05),
        BrokenUpstream(START + dt.timedelta(days=3), "garbage", 0.05),
    )
    sim = Simulator(
        SimConfig(
            days=12, transactions_per_day=300, customers=120, merchants=40, scenarios=scenarios
        )
    )
    sim.write_range(base / "landing")
    paths = {
        "bronze_transactions": _bronze_from_landing(base / "landing", "transactions"),
        "bronze_chargebacks": _bronze_from_landing(base / "landing", "chargebacks"),
    }
    # Feature inputs: the clean transactions as gold would hold them, and the chargebacks.
    tx = pa.Table.from_pandas(
        pd.concat([sim.transactions(d) for d in sim.days()])
        .assign(event_time=lambda f: pd.to_datetime(f["event_time"], utc=True))
        .assign(received_at=lambda f: pd.to_datetime(f["received_at"], utc=True))
        .assign(date=lambda f: f["event_time"].dt.date, amount_eur=lambda f: f["amount"])[
            [
                "date",
                "transaction_id",
                "customer_id",
                "merchant_id",
                "event_time",
                "received_at",
                "amount_eur",
                "country",
                "device_id",
            ]
        ],
        preserve_index=False,
    )
    cb = pa.Table.from_pandas(
        pd.concat([sim.chargebacks(d) for d in sim.days()]).assign(
            reported_at=lambda f: pd.to_datetime(f["reported_at"], utc=True)
        )[["transaction_id", "reported_at"]],
        preserve_index=False,
    )
    customers = pa.Table.from_pandas(sim.customers(), preserve_index=False).set_column(
        1,
        "signup_date",
        pa.array(
            [dt.date.fromisoformat(str(d)[:10]) for d in sim.customers()["signup_date"]],
            pa.date32(),
        ),
    )
    paths |= {
        "gold.enriched_transactions": tx,
        "silver.chargebacks": cb,
        "silver.customers": customers,
    }
    result = {}
    for name, table in paths.items():
        path = base / f"{name}.parquet"
        pq.write_table(
            table, path, coerce_timestamps="us"
        )  # Sail cannot read nanosecond timestamps
        result[name] = path
    return result


CASES = {
    "silver_transactions": (
        {"bronze": "bronze_transactions"},
        ["date", "source_file", "source_line"],
    ),
    "silver_chargebacks": (
        {"bronze": "bronze_chargebacks"},
        ["date", "source_file", "source_line"],
    ),
    "customer_behaviour": (
        {"gold.enriched_transactions": "gold.enriched_transactions"},
        ["transaction_id"],
    ),
    "merchant_risk": (
        {
            "gold.enriched_transactions": "gold.enriched_transactions",
            "silver.chargebacks": "silver.chargebacks",
        },
        ["merchant_id", "date"],
    ),
    "customer_profile": ({"silver.customers": "silver.customers"}, ["customer_id"]),
}


# Window features are integer reductions with one final division: equal bit for bit.
EXACT = {"customer_behaviour"}


def _normalise(value: object) -> object:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value


def _rows(table: pa.Table, keys: list[str]) -> list[dict]:
    rows = [{k: _normalise(v) for k, v in r.items()} for r in table.to_pylist()]
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in keys))


@pytest.fixture(scope="module")
def jvm_outputs(
    inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Every case run on JVM Spark in one subprocess (one JVM start)."""
    base = tmp_path_factory.mktemp("jvm")
    cases = [
        {
            "transform": name,
            "out": str(base / f"{name}.parquet"),
            "inputs": {a: str(inputs[s]) for a, s in mapping.items()},
        }
        for name, (mapping, _) in CASES.items()
    ]
    spec = base / "cases.json"
    spec.write_text(json.dumps(cases))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.jvm_runner", str(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {case["transform"]: Path(case["out"]) for case in cases}


def test_window_backfill_equals_the_reference_on_a_simulated_world(
    inputs: dict[str, Path], spark
) -> None:
    """Every transaction's row (late arrivals included) equals the plain-Python reference fed
    the whole history: the Spark side of the online/offline parity, on real simulator output."""
    from slipway.usecases.fraud import CUSTOMER_WINDOWS
    from slipway.windows.semantics import EventCodec, WindowEvent, features_for

    source = pq.read_table(inputs["gold.enriched_transactions"])
    rows = jvm_runner.transform(
        "customer_behaviour",
        {
            "gold.enriched_transactions": spark.read.parquet(
                str(inputs["gold.enriched_transactions"])
            )
        },
    ).toArrow()
    events = source.to_pylist()
    late = [e for e in events if (e["received_at"] - e["event_time"]).total_seconds() > 1]
    assert late, "the simulated world has late arrivals"
    codec = EventCodec(CUSTOMER_WINDOWS)
    by_customer: dict[str, list[WindowEvent]] = {}
    for e in events:
        by_customer.setdefault(e["customer_id"], []).append(codec.encode(e))
    got = {r["transaction_id"]: r for r in rows.to_pylist()}
    assert len(got) == len(events)
    mismatches = []
    for e in events:
        ev = codec.encode(e)
        want = features_for(CUSTOMER_WINDOWS, by_customer[e["customer_id"]], ev)
        row = got[e["transaction_id"]]
        mismatches += [(e["transaction_id"], k, row[k], v) for k, v in want.items() if row[k] != v]
    assert not mismatches, mismatches[:10]


@pytest.mark.parametrize("name", list(CASES))
def test_sail_and_jvm_spark_agree(
    name: str, inputs: dict[str, Path], jvm_outputs: dict[str, Path], spark
) -> None:
    mapping, keys = CASES[name]
    sail_inputs = {arg: spark.read.parquet(str(inputs[src])) for arg, src in mapping.items()}
    sail = jvm_runner.transform(name, sail_inputs).toArrow()
    jvm = pq.read_table(jvm_outputs[name])
    assert sorted(sail.column_names) == sorted(jvm.column_names)
    assert sail.num_rows == jvm.num_rows > 0
    for ours, theirs in zip(
        _rows(sail, keys), _rows(jvm.select(sail.column_names), keys), strict=True
    ):
        assert ours.keys() == theirs.keys()
        for column, value in ours.items():
            other = theirs[column]
            if name in EXACT:
                assert value == other, (column, ours, theirs)
            elif isinstance(value, float) and isinstance(other, float):
                # Features are rounded to 4 decimals; the engines sum windows in different orders,
                # so a value on a rounding boundary may differ by one unit in the last place.
                assert math.isclose(value, other, rel_tol=1e-9, abs_tol=1.01e-4), (
                    column,
                    ours,
                    theirs,
                )
            else:
                assert value == other, (column, ours, theirs)

"""The upstream simulator: determinism, label timing, learnable fraud, the landing contract,
manifests, late parts, and every drift and broken-upstream scenario."""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slipway.usecases.fraud.simulator import (
    FX_TO_EUR,
    BrokenUpstream,
    CovariateDrift,
    NewFraudPattern,
    SimConfig,
    Simulator,
    parse_scenario,
)
from slipway.usecases.fraud.simulator.cli import main, register
from slipway.usecases.fraud.simulator.config import (
    CHANNELS,
    COUNTRIES,
    CURRENCIES,
    MCCS,
    TRANSACTION_FIELDS,
)

START = dt.date(2026, 8, 1)
SMALL = SimConfig(days=6, customers=400, merchants=40, transactions_per_day=800)


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [line for line in data.split(b"\n") if line]


def parse_all(lines: list[bytes]) -> list[dict | None]:
    out: list[dict | None] = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append(None)
    return out


def landed(root: Path, d: dt.date, stream: str = "transactions") -> list[bytes]:
    folder = root / stream / d.isoformat()
    return [line for p in sorted(folder.glob(f"{stream}_*.jsonl*")) for line in lines_of(p)]


@pytest.fixture(scope="module")
def history() -> tuple[Simulator, pd.DataFrame]:
    """Three weeks of the default world: enough fraud to measure rates and lifts."""
    sim = Simulator(SimConfig(days=21))
    frames = [sim.transactions(d) for d in sim.days()]
    return sim, pd.concat(frames, ignore_index=True)


# -- determinism ------------------------------------------------------------------------------


def test_same_config_gives_byte_identical_landing(tmp_path: Path) -> None:
    cfg = SimConfig(days=4, customers=300, merchants=30, transactions_per_day=500, parts_per_day=2)
    Simulator(cfg).write_range(tmp_path / "a")
    Simulator(cfg).write_range(tmp_path / "b")
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert len(a) > 10
    assert a == b


def test_day_order_and_rewrites_do_not_change_bytes(tmp_path: Path) -> None:
    cfg = SimConfig(days=5, customers=300, merchants=30, transactions_per_day=500)
    forward = Simulator(cfg)
    for d in forward.days():
        forward.write_day(tmp_path / "fwd", d)
        forward.write_chargebacks(tmp_path / "fwd", d)
    backward = Simulator(cfg)
    for d in reversed(backward.days()):
        backward.write_chargebacks(tmp_path / "bwd", d)
        backward.write_day(tmp_path / "bwd", d)
    backward.write_day(tmp_path / "bwd", day(2))  # twice
    assert tree(tmp_path / "fwd") == tree(tmp_path / "bwd")
    # A fresh instance asked for the last day only agrees with one that generated them all.
    assert Simulator(cfg).transactions(day(4)).equals(forward.transactions(day(4)))


def test_different_seed_gives_different_data() -> None:
    a = Simulator(SMALL).transactions(START)
    b = Simulator(SimConfig(**{**SMALL.__dict__, "seed": 8})).transactions(START)
    assert not a[["customer_id", "amount"]].equals(b[["customer_id", "amount"]])
    assert a["amount"].sum() != pytest.approx(b["amount"].sum())


def test_longer_runs_and_later_scenarios_leave_earlier_days_unchanged() -> None:
    short = Simulator(SimConfig(days=3, customers=300, merchants=30, transactions_per_day=500))
    long = Simulator(
        SimConfig(
            days=30,
            customers=300,
            merchants=30,
            transactions_per_day=500,
            scenarios=(CovariateDrift(day(2)), NewFraudPattern(day(2))),
        )
    )
    for i in (0, 1):
        assert short.transactions(day(i)).equals(long.transactions(day(i)))
    assert not short.transactions(day(2)).equals(long.transactions(day(2)))


# -- labels -----------------------------------------------------------------------------------


def test_every_fraud_gets_exactly_one_chargeback_within_the_delay() -> None:
    cfg = SimConfig(
        days=8, customers=400, merchants=40, transactions_per_day=1500, label_delay_days=(2, 5)
    )
    sim = Simulator(cfg)
    tx = pd.concat([sim.transactions(d) for d in sim.days()], ignore_index=True)
    reports = []
    for i in range(cfg.days + cfg.label_delay_days[1]):
        cb = sim.chargebacks(day(i))
        assert (cb["reported_at"].str[:10] == day(i).isoformat()).all()
        reports.append(cb.assign(file_day=day(i)))
    cb = pd.concat(reports, ignore_index=True)
    # Report days after the range also carry frauds of days after it (the simulator goes on).
    cb = cb[cb["transaction_id"].str[3:11] <= cfg.end_date.strftime("%Y%m%d")]
    frauds = tx[tx["is_fraud"]]
    assert len(frauds) > 50
    assert cb["transaction_id"].is_unique
    assert set(cb["transaction_id"]) == set(frauds["transaction_id"])  # only and all frauds
    joined = cb.merge(tx, on="transaction_id", suffixes=("_cb", ""))
    delay = (
        pd.to_datetime(joined["file_day"]) - pd.to_datetime(joined["event_time"].str[:10])
    ).dt.days
    assert delay.between(2, 5).all()
    assert set(delay) == {2, 3, 4, 5}
    assert (joined["fraud_type_cb"] == joined["fraud_type"]).all()
    assert (pd.to_datetime(joined["reported_at"]) > pd.to_datetime(joined["event_time"])).all()
    # Nothing is reported on the first day: no earlier day to report.
    assert sim.chargebacks(START).empty


def test_chargeback_files_land_on_their_report_day(tmp_path: Path) -> None:
    sim = Simulator(SMALL)
    sim.write_range(tmp_path)
    for d in sim.days():
        path = tmp_path / "chargebacks" / d.isoformat() / f"chargebacks_{d.isoformat()}.jsonl"
        records = [json.loads(x) for x in lines_of(path)]
        assert [r["transaction_id"] for r in records] == sim.chargebacks(d)[
            "transaction_id"
        ].tolist()
        assert all(set(r) == {"transaction_id", "reported_at", "fraud_type"} for r in records)
        manifest = json.loads((path.parent / "_manifest.json").read_text())
        assert manifest["stream"] == "chargebacks"
        assert manifest["files"] == [
            {
                "name": path.name,
                "rows": len(records),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
        ]


# -- realism ----------------------------------------------------------------------------------


def test_fraud_rate_is_in_range(history: tuple[Simulator, pd.DataFrame]) -> None:
    _, tx = history
    assert 0.01 <= tx["is_fraud"].mean() <= 0.02
    assert set(tx.loc[tx["is_fraud"], "fraud_type"]) == {
        "card_not_present",
        "account_takeover",
        "test_and_cashout",
    }
    assert tx.loc[~tx["is_fraud"], "fraud_type"].isna().all()


def _signs(sim: Simulator, tx: pd.DataFrame) -> pd.DataFrame:
    """Per transaction: single-feature signs of fraud and the customer's recent activity, fresh
    (earlier today, up to the payment) and day-stale (as of the previous midnight)."""
    tx = tx.copy()
    ts = pd.to_datetime(tx["event_time"])
    tx["t"], tx["day"] = ts, ts.dt.date
    first_seen = tx.groupby(["customer_id", "device_id"])["day"].transform("min")
    home = sim.customers().set_index("customer_id")["home_country"]
    usual = tx[~tx["is_fraud"]].groupby("customer_id")["amount"].median()
    tx = tx.sort_values(["customer_id", "t", "transaction_id"])
    previous = tx.groupby("customer_id")["t"].shift()
    since = (tx["t"] - previous).dt.total_seconds()
    by_day = tx.groupby(["customer_id", "day"]).size().rename("n").reset_index()
    by_day["day"] = by_day["day"] + dt.timedelta(days=1)
    yesterday = tx[["customer_id", "day"]].merge(by_day, on=["customer_id", "day"], how="left")
    return pd.DataFrame(
        {
            "fraud": tx["is_fraud"],
            "type": tx["fraud_type"].fillna("legit"),
            "day": tx["day"],
            "night": ts.loc[tx.index].dt.hour < 6,
            "ecom": tx["channel"] == "ecom",
            "new_device": first_seen.loc[tx.index] == tx["day"],
            "abroad": tx["country"].to_numpy() != home.reindex(tx["customer_id"]).to_numpy(),
            "amount_ratio": tx["amount"] / usual.reindex(tx["customer_id"]).to_numpy(),
            "recent_10min": since.lt(600).to_numpy(),
            "recent_1h": since.lt(3600).to_numpy(),
            "yesterday_count": yesterday["n"].fillna(0).to_numpy(),
        },
        index=tx.index,
    )


def test_fraud_mixes_with_normal_behaviour(history: tuple[Simulator, pd.DataFrame]) -> None:
    """No single feature separates fraud: each sign is shared by many legit payments, and most
    fraud happens at normal hours, in the customer's country, often on their own device."""
    sim, tx = history
    signs = _signs(sim, tx)
    signs = signs[signs["day"] > START]  # day one has no history to compare with
    fraud, legit = signs[signs["fraud"]], signs[~signs["fraud"]]
    base = signs["fraud"].mean()
    for sign in ("night", "ecom", "new_device", "abroad"):
        flagged = signs[sign]
        lift = signs.loc[flagged, "fraud"].mean() / base
        assert 1.2 < lift < 12, (sign, lift)  # a hint, not a giveaway
        assert legit[sign].sum() > 3 * fraud[sign].sum(), sign
    big = signs["amount_ratio"] > 3
    assert signs.loc[big, "fraud"].mean() < 0.3  # big purchases are mostly legit
    small = signs["amount_ratio"] < 0.2
    assert signs.loc[small, "fraud"].mean() < 0.3  # and so are tiny ones
    assert (~fraud["night"]).mean() > 0.6
    assert (~fraud["abroad"]).mean() > 0.6
    assert 0.3 < (~fraud["new_device"]).mean() < 0.6
    assert 0.4 < fraud["ecom"].mean() < 0.85


def test_fraud_comes_in_sequences_only_fresh_features_see(
    history: tuple[Simulator, pd.DataFrame],
) -> None:
    """Card testing then cash-out, and sprees: payments minutes apart on the victim's card. A
    payment minutes after the previous one is a strong sign; yesterday's activity is none."""
    sim, tx = history
    signs = _signs(sim, tx)
    fraud, legit = signs[signs["fraud"]], signs[~signs["fraud"]]
    sequence = fraud["type"].isin(["test_and_cashout", "card_not_present"])
    assert fraud.loc[sequence, "recent_1h"].mean() > 0.7
    assert fraud.loc[fraud["type"] == "test_and_cashout", "recent_10min"].mean() > 0.7
    assert legit["recent_10min"].mean() < 0.25  # shopping runs exist, but are the minority
    lift = signs.loc[signs["recent_10min"], "fraud"].mean() / signs["fraud"].mean()
    assert lift > 2.5
    # Victims are ordinary customers: as of the previous midnight they look like everyone else.
    assert fraud["yesterday_count"].mean() <= 1.2 * legit["yesterday_count"].mean()
    # A test-and-cash-out run: small probes first, then purchases far above them, within minutes.
    runs = tx[tx["fraud_type"] == "test_and_cashout"].copy()
    runs["t"] = pd.to_datetime(runs["event_time"])
    runs["day"] = runs["t"].dt.date
    runs = runs.sort_values(["customer_id", "t"])
    for _, run in list(runs.groupby(["customer_id", "day"]))[:50]:
        eur = (run["amount"] * run["currency"].map(FX_TO_EUR)).to_numpy()
        assert len(run) >= 3
        assert eur[0] < 8.0 and eur[-1] > eur[0]
        assert run["merchant_id"].iloc[:-2].nunique() <= 2  # probes at one or two shops
        assert (run["t"].iloc[-1] - run["t"].iloc[0]) < pd.Timedelta(hours=2)


def test_legit_behaviour_is_personal(history: tuple[Simulator, pd.DataFrame]) -> None:
    _, tx = history
    legit = tx[~tx["is_fraud"]]
    uses = legit.groupby(["customer_id", "device_id"]).size()
    habitual = uses[uses >= 2].groupby("customer_id").size()  # one-off browsers aside
    active = legit.groupby("customer_id").size() >= 10
    assert habitual.reindex(active[active].index).median() <= 2
    counts = legit.groupby("customer_id").size()
    assert counts.max() > 5 * counts.median()  # heterogeneous activity
    hours = pd.to_datetime(legit["event_time"]).dt.hour
    assert hours.between(8, 21).mean() > 0.75
    assert (legit["currency"] == "EUR").mean() > 0.5


# -- the landing contract ---------------------------------------------------------------------

TX_ID = re.compile(r"^tx_\d{8}_\d{6}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_landed_transactions_hold_exactly_the_contract(tmp_path: Path) -> None:
    sim = Simulator(SMALL)
    sim.write_range(tmp_path)
    ids: set[str] = set()
    for d in sim.days():
        records = parse_all(landed(tmp_path, d))
        assert records and all(r is not None for r in records)
        truth = sim.transactions(d)
        assert len(records) == len(truth)
        frame = pd.DataFrame(records)
        assert all(list(r) == list(TRANSACTION_FIELDS) for r in records)  # no leaked column
        assert frame["transaction_id"].str.match(TX_ID).all()
        assert frame["transaction_id"].str[3:11].eq(d.strftime("%Y%m%d")).all()
        assert frame["event_time"].str.match(TIME).all()
        assert frame["event_time"].str[:10].eq(d.isoformat()).all()
        assert frame["received_at"].str.match(TIME).all()
        assert frame["received_at"].str[:10].eq(d.isoformat()).all()  # received the same day
        assert (frame["received_at"] >= frame["event_time"]).all()
        # lines in arrival order, ties by id
        arrival = list(zip(frame["received_at"], frame["transaction_id"], strict=True))
        assert arrival == sorted(arrival)
        assert frame["customer_id"].str.match(r"^C\d{6}$").all()
        assert frame["merchant_id"].str.match(r"^M\d{5}$").all()
        assert frame["device_id"].str.match(r"^D[0-9a-f]{12}$").all()
        assert set(frame["currency"]) <= set(CURRENCIES)
        assert set(frame["channel"]) <= set(CHANNELS)
        assert set(frame["country"]) <= set(COUNTRIES)
        assert set(frame["merchant_category"]) <= set(MCCS)
        amounts = frame["amount"].to_numpy(dtype=float)
        assert (amounts > 0).all() and np.allclose(amounts, np.round(amounts, 2))
        assert frame["amount"].tolist() == truth["amount"].tolist()
        ids |= set(frame["transaction_id"])
        assert (frame.loc[frame["channel"] == "atm", "merchant_category"] == "6011").all()
    assert len(ids) == sum(len(sim.transactions(d)) for d in sim.days())
    assert set(FX_TO_EUR) == set(CURRENCIES)


def test_most_events_arrive_in_milliseconds_and_a_few_late(
    history: tuple[Simulator, pd.DataFrame],
) -> None:
    """Arrival order (received_at) differs from event order for a small, late share of events,
    and lateness never crosses midnight UTC."""
    _, tx = history
    event = pd.to_datetime(tx["event_time"])
    received = pd.to_datetime(tx["received_at"])
    lag = (received - event).dt.total_seconds()
    assert (lag >= 0).all()
    assert (received.dt.date == event.dt.date).all()
    assert lag.median() < 0.2  # milliseconds for the bulk
    late = lag > 1.0
    assert 0.01 <= late.mean() <= 0.02
    assert lag.max() > 3600  # some arrive hours late
    # ids number events in event order, so arrival order visibly differs from it
    ids = tx["transaction_id"].to_numpy()
    in_arrival = tx.sort_values(["received_at", "transaction_id"])["transaction_id"].to_numpy()
    assert (ids == in_arrival).all()  # the frame is listed in arrival order
    assert not (np.sort(ids) == ids).all()


def test_every_generated_category_is_declared_by_the_use_case() -> None:
    from slipway.usecases.fraud.landing import MERCHANT_CATEGORIES

    assert set(MCCS) <= set(MERCHANT_CATEGORIES)


def test_reference_snapshots_cover_every_transacting_customer(tmp_path: Path) -> None:
    cfg = SimConfig(days=16, customers=600, merchants=40, transactions_per_day=400)
    sim = Simulator(cfg)
    sim.write_range(tmp_path)
    snaps = sorted((tmp_path / "reference" / "customers").glob("customers_*.jsonl"))
    assert [p.name[10:20] for p in snaps] == [d.isoformat() for d in (day(0), day(7), day(14))]
    assert (tmp_path / "reference" / "merchants" / "merchants_2026-08-15.jsonl").exists()
    customers = [json.loads(x) for x in lines_of(snaps[0])]
    assert all(
        list(c) == ["customer_id", "signup_date", "home_country", "segment", "birth_year"]
        for c in customers
    )
    assert all(
        c["signup_date"] <= "2026-08-01" and isinstance(c["birth_year"], int) for c in customers
    )
    later = [json.loads(x) for x in lines_of(snaps[-1])]
    assert len(later) > len(customers)  # customers sign up during the period
    merchants = [
        json.loads(x) for x in lines_of(tmp_path / "reference/merchants/merchants_2026-08-01.jsonl")
    ]
    assert len(merchants) == 40
    assert all(
        list(m) == ["merchant_id", "merchant_name", "merchant_category", "country"]
        for m in merchants
    )
    for d in sim.days():
        snap = max(p for p in snaps if p.name[10:20] <= d.isoformat())
        known = {json.loads(x)["customer_id"] for x in lines_of(snap)}
        assert set(sim.transactions(d)["customer_id"]) <= known


# -- manifests and parts ----------------------------------------------------------------------


def test_manifests_list_parts_with_row_counts_and_sha256(tmp_path: Path) -> None:
    cfg = SimConfig(
        days=2,
        customers=300,
        merchants=30,
        transactions_per_day=700,
        parts_per_day=3,
        compress=True,
    )
    sim = Simulator(cfg)
    sim.write_range(tmp_path)
    folder = tmp_path / "transactions" / "2026-08-02"
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["stream"] == "transactions" and manifest["date"] == "2026-08-02"
    assert TIME.match(manifest["generated_at"])
    names = [f["name"] for f in manifest["files"]]
    assert names == [f"transactions_2026-08-02_part-00{i}.jsonl.gz" for i in (1, 2, 3)]
    total = 0
    for entry in manifest["files"]:
        data = (folder / entry["name"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["rows"] == len(lines_of(folder / entry["name"])) > 0
        total += entry["rows"]
    assert total == len(sim.transactions(day(1)))
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temp files


def test_a_late_part_updates_the_manifest(tmp_path: Path) -> None:
    cfg = SimConfig(days=2, customers=300, merchants=30, transactions_per_day=600, parts_per_day=3)
    sim = Simulator(cfg)
    folder = tmp_path / "transactions" / "2026-08-01"
    written = sim.write_day(tmp_path, START, parts=[1, 2])
    assert [p.name for p in written][-1] == "_manifest.json"
    first = json.loads((folder / "_manifest.json").read_text())
    assert [f["name"][-9:] for f in first["files"]] == ["001.jsonl", "002.jsonl"]
    assert not (folder / "transactions_2026-08-01_part-003.jsonl").exists()
    sim.write_day(tmp_path, START, parts=[3])
    second = json.loads((folder / "_manifest.json").read_text())
    assert [f["name"][-9:] for f in second["files"]] == ["001.jsonl", "002.jsonl", "003.jsonl"]
    assert second["files"][:2] == first["files"]
    assert second["generated_at"] > first["generated_at"]
    assert sum(f["rows"] for f in second["files"]) == len(sim.transactions(START))
    # A fresh simulator delivering the whole day at once writes the same parts.
    Simulator(cfg).write_day(tmp_path / "all", START)
    for f in second["files"]:
        assert (folder / f["name"]).read_bytes() == (
            tmp_path / "all/transactions/2026-08-01" / f["name"]
        ).read_bytes()
    with pytest.raises(ValueError, match="no such part"):
        sim.write_day(tmp_path, START, parts=[4])


# -- scenarios --------------------------------------------------------------------------------


def broken_landing(
    tmp_path: Path, *scenarios: BrokenUpstream, parts: int = 1
) -> tuple[Simulator, pd.DataFrame, list[bytes]]:
    sim = Simulator(replace_cfg(SMALL, scenarios=scenarios, parts_per_day=parts))
    sim.write_day(tmp_path, day(2))
    return sim, sim.transactions(day(2)), landed(tmp_path, day(2))


def replace_cfg(cfg: SimConfig, **kw: object) -> SimConfig:
    return SimConfig(**{**cfg.__dict__, **kw})


def test_broken_only_touches_its_day(tmp_path: Path) -> None:
    clean = Simulator(SMALL)
    broken = Simulator(replace_cfg(SMALL, scenarios=(BrokenUpstream(day(2), "garbage"),)))
    for i in (1, 3):
        clean.write_day(tmp_path / "clean", day(i))
        broken.write_day(tmp_path / "broken", day(i))
    assert tree(tmp_path / "clean") == tree(tmp_path / "broken")
    assert broken.transactions(day(2)).equals(clean.transactions(day(2)))  # truth stays clean


def test_cents(tmp_path: Path) -> None:
    _, truth, lines = broken_landing(tmp_path, BrokenUpstream(day(2), "cents"))
    amounts = [json.loads(x)["amount"] for x in lines]
    assert all(isinstance(a, int) for a in amounts)
    assert amounts == [round(a * 100) for a in truth["amount"]]
    assert np.median(amounts) > 50 * truth["amount"].median()


def test_renamed_field(tmp_path: Path) -> None:
    _, truth, lines = broken_landing(tmp_path, BrokenUpstream(day(2), "renamed_field"))
    records = [json.loads(x) for x in lines]
    assert all("amount" not in r and "amount_value" in r for r in records)
    assert [r["amount_value"] for r in records] == truth["amount"].tolist()


def test_nulls(tmp_path: Path) -> None:
    _, truth, lines = broken_landing(tmp_path, BrokenUpstream(day(2), "nulls", fraction=0.2))
    records = [json.loads(x) for x in lines]
    assert len(records) == len(truth)
    nulled = [[k for k, v in r.items() if v is None] for r in records]
    hit = [n for n in nulled if n]
    assert len(hit) == round(0.2 * len(truth))
    assert all(len(n) == 1 for n in hit)
    assert {n[0] for n in hit} == {"customer_id", "merchant_id", "amount", "event_time", "currency"}


def test_duplicates_exact_and_conflicting(tmp_path: Path) -> None:
    _, truth, lines = broken_landing(tmp_path, BrokenUpstream(day(2), "duplicates", fraction=0.1))
    k = round(0.1 * len(truth))
    counts = pd.Series(lines).value_counts()
    assert (counts > 1).sum() == k  # exact repeats of k distinct lines
    records = pd.DataFrame([json.loads(x) for x in lines]).drop_duplicates()
    conflicting = records[records["transaction_id"].duplicated(keep=False)]
    assert conflicting["transaction_id"].nunique() >= 2
    assert (conflicting.groupby("transaction_id")["amount"].nunique() == 2).all()
    assert len(lines) == len(truth) + k + conflicting["transaction_id"].nunique()
    assert set(records["transaction_id"]) == set(truth["transaction_id"])


def test_garbage_lines_do_not_parse(tmp_path: Path) -> None:
    _, truth, lines = broken_landing(tmp_path, BrokenUpstream(day(2), "garbage", fraction=0.05))
    parsed = parse_all(lines)
    bad = [line for line, p in zip(lines, parsed, strict=True) if p is None]
    assert len(bad) == round(0.05 * len(truth))
    assert len(lines) - len(bad) == len(truth)
    assert any(b.startswith(b"<html>") for b in bad) and any(b.startswith(b"\xff") for b in bad)
    assert all(b.strip() for b in bad)


def test_truncated_part_is_shorter_than_its_manifest(tmp_path: Path) -> None:
    sim, truth, _ = broken_landing(
        tmp_path, BrokenUpstream(day(2), "truncated", fraction=0.3), parts=2
    )
    folder = tmp_path / "transactions" / day(2).isoformat()
    manifest = {f["name"]: f for f in json.loads((folder / "_manifest.json").read_text())["files"]}
    first, last = sorted(folder.glob("transactions_*"))
    assert hashlib.sha256(first.read_bytes()).hexdigest() == manifest[first.name]["sha256"]
    data = last.read_bytes()
    intended = sim.landed_files(day(2))[-1].intended
    assert hashlib.sha256(intended).hexdigest() == manifest[last.name]["sha256"]
    assert intended.startswith(data) and 0.6 < len(data) / len(intended) < 0.8
    assert not data.endswith(b"\n")
    lines = data.split(b"\n")
    assert parse_all(lines[-1:]) == [None]
    assert len(lines) - 1 < manifest[last.name]["rows"]
    assert sum(f["rows"] for f in manifest.values()) == len(truth)


def test_broken_kinds_compose(tmp_path: Path) -> None:
    scenarios = (
        BrokenUpstream(day(2), "garbage", 0.05),
        BrokenUpstream(day(2), "cents"),
        BrokenUpstream(day(2), "nulls", 0.1),
    )
    _, truth, lines = broken_landing(tmp_path, *scenarios)
    parsed = parse_all(lines)
    good = [p for p in parsed if p is not None]
    assert len(good) == len(truth)
    assert all(isinstance(p["amount"], int) for p in good if p["amount"] is not None)
    assert sum(any(v is None for v in p.values()) for p in good) == round(0.1 * len(truth))


def test_covariate_drift_shifts_amounts_and_channels_from_its_day() -> None:
    cfg = SimConfig(days=6, customers=500, merchants=40, transactions_per_day=2000)
    base = Simulator(cfg)
    drift = Simulator(
        replace_cfg(
            cfg, scenarios=(CovariateDrift(day(3), amount_factor=2.0, ecom_share_shift=0.2),)
        )
    )
    for i in range(3):
        assert drift.transactions(day(i)).equals(base.transactions(day(i)))
    before = pd.concat([drift.transactions(day(i)) for i in range(3)])
    after = pd.concat([drift.transactions(day(i)) for i in range(3, 6)])
    ratio = (
        after.loc[~after["is_fraud"], "amount"].median()
        / before.loc[~before["is_fraud"], "amount"].median()
    )
    assert 1.6 < ratio < 2.5
    assert (
        after.loc[after["is_fraud"], "amount"].median()
        > 1.5 * before.loc[before["is_fraud"], "amount"].median()
    )
    assert (after["channel"] == "ecom").mean() > (before["channel"] == "ecom").mean() + 0.1


def test_new_fraud_pattern_appears_only_from_its_day() -> None:
    cfg = replace_cfg(SMALL, scenarios=(NewFraudPattern(day(3), rate=0.02),))
    sim = Simulator(cfg)
    for i in range(3):
        assert (sim.transactions(day(i))["fraud_type"] != "card_testing").all()
    tx = pd.concat([sim.transactions(day(i)) for i in range(3, 6)])
    ct = tx[tx["fraud_type"] == "card_testing"]
    assert 0.01 < len(ct) / len(tx) < 0.04
    assert ct["amount"].between(0.5, 2.0).all()
    assert pd.to_datetime(ct["event_time"]).dt.hour.between(9, 17).all()
    home = sim.customers().set_index("customer_id")["home_country"]
    assert (ct["country"].to_numpy() == home.reindex(ct["customer_id"]).to_numpy()).all()
    assert ct["merchant_id"].nunique() <= 3
    # On a device the customer uses for legit payments too.
    legit_devices = set(
        zip(
            tx.loc[~tx["is_fraud"], "customer_id"],
            tx.loc[~tx["is_fraud"], "device_id"],
            strict=True,
        )
    )
    seen = [
        (c, dv) in legit_devices for c, dv in zip(ct["customer_id"], ct["device_id"], strict=True)
    ]
    assert np.mean(seen) > 0.5
    labelled = pd.concat([sim.chargebacks(day(i)) for i in range(3, 14)])
    assert set(ct["transaction_id"]) <= set(
        labelled.loc[labelled["fraud_type"] == "card_testing", "transaction_id"]
    )


def test_parse_scenario() -> None:
    assert parse_scenario("drift:2026-09-10") == CovariateDrift(dt.date(2026, 9, 10))
    assert parse_scenario("drift:2026-09-10:2.5").amount_factor == 2.5
    assert parse_scenario("new-fraud:2026-09-10") == NewFraudPattern(dt.date(2026, 9, 10))
    assert parse_scenario("broken:2026-09-05:cents") == BrokenUpstream(dt.date(2026, 9, 5), "cents")
    assert parse_scenario("broken:2026-09-05:nulls:0.3").fraction == 0.3
    for bad in (
        "broken:2026-09-05:melted",
        "drift:yesterday",
        "volcano:2026-09-05",
        "broken:2026-09-05",
    ):
        with pytest.raises(ValueError):
            parse_scenario(bad)


# -- CLI and scale ----------------------------------------------------------------------------


def test_cli_writes_a_landing_zone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "landing"
    argv = [
        "--out",
        str(out),
        "--days",
        "3",
        "--customers",
        "200",
        "--merchants",
        "30",
        "--per-day",
        "300",
    ]
    assert main([*argv, "--parts", "2", "--compress", "--scenario", "broken:2026-08-02:cents"]) == 0
    printed = capsys.readouterr().out
    assert "3 days" in printed and "fraud rate" in printed and str(out) in printed
    assert len(list(out.glob("transactions/*/*.jsonl.gz"))) == 6
    cents = [json.loads(x)["amount"] for x in landed(out, day(1))]
    assert all(isinstance(a, int) for a in cents)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "simulate",
            "--days",
            "2",
            "--scenario",
            "drift:2026-08-02:2",
            "--scenario",
            "new-fraud:2026-08-02",
        ]
    )
    assert args.func is not None and len(args.scenario) == 2 and args.days == 2
    assert main(["--out", str(out), "--scenario", "broken:2026-08-02:melted"]) == 2


def test_generation_is_vectorised_and_fast() -> None:
    sim = Simulator(SimConfig(customers=20_000, merchants=500, transactions_per_day=100_000))
    sim.transactions(START)  # build the world
    import time

    began = time.perf_counter()
    tx = sim.transactions(day(1))
    files = sim.landed_files(day(1))
    elapsed = time.perf_counter() - began
    assert len(tx) > 80_000 and files[0].rows == len(tx)
    assert elapsed < 5.0  # ~0.5 s here; a per-row Python loop would take far longer

"""Landing files the upstream got wrong, through the Dagster ingestion job over one range.

Clean simulated days are damaged by hand, one kind per day: a part renamed to upper case
`.JSONL`, a corrupt `.jsonl.gz`, a manifest with a byte-order mark, a manifest cut mid-JSON, an
unlisted `part-002.json`, and a day that re-sends two transactions of an earlier day (one
identical, one with another amount). One run over the whole range must not crash: each bad
file's day is held by the circuit breaker, naming the file and the reason in quarantine, in
the audit and in the check; every other day publishes; every file is accounted for; and a
transaction id is unique across the whole table, not only within its day.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from slipway.ingest.contract import CIRCUIT_BREAKER_RULE
from slipway.lakehouse import Lakehouse
from tests.support.pipeline import run_graph, simulate, slipway_env

START = dt.date(2026, 8, 1)
WORLD = {"days": 7, "transactions_per_day": 250, "customers": 100, "merchants": 30}
UPPER, GZIP, BOM, CUT, UNLISTED, RESENT, CLEAN = range(7)


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def _folder(landing: Path, i: int) -> Path:
    return landing / "transactions" / day(i).isoformat()


def _part(folder: Path) -> Path:
    (path,) = sorted(folder.glob("*.jsonl"))
    return path


def _relist(folder: Path) -> None:
    """Rewrite the day's manifest so that it lists every data file as it is now."""
    manifest = folder / "_manifest.json"
    doc = json.loads(manifest.read_text())
    entries = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        data = path.read_bytes()
        text = gzip.decompress(data) if path.name.lower().endswith(".gz") else data
        rows = sum(1 for ln in text.split(b"\n") if ln.strip())
        entries.append(
            {"name": path.name, "rows": rows, "sha256": hashlib.sha256(data).hexdigest()}
        )
    doc["files"] = entries
    manifest.write_text(json.dumps(doc, indent=2))


def _damage(landing: Path) -> dict[str, object]:
    facts: dict[str, object] = {}
    # upper-case extension, listed as such in the manifest: a normal delivery
    folder = _folder(landing, UPPER)
    part = _part(folder)
    part.rename(part.with_name(part.name.replace(".jsonl", ".JSONL")))
    _relist(folder)
    # a gzip whose deflate stream is corrupt in the middle (zlib.error, not OSError)
    folder = _folder(landing, GZIP)
    part = _part(folder)
    packed = bytearray(gzip.compress(part.read_bytes()))
    middle = len(packed) // 2
    packed[middle : middle + 64] = b"\xff" * 64
    gz = part.with_name(part.name + ".gz")
    gz.write_bytes(bytes(packed))
    part.unlink()
    manifest = json.loads((folder / "_manifest.json").read_text())
    manifest["files"][0]["name"] = gz.name
    (folder / "_manifest.json").write_text(json.dumps(manifest))
    facts["gzip"] = gz.name
    # a manifest with a UTF-8 byte-order mark, and one cut off mid-JSON
    bom = _folder(landing, BOM) / "_manifest.json"
    bom.write_bytes(b"\xef\xbb\xbf" + bom.read_bytes())
    cut = _folder(landing, CUT) / "_manifest.json"
    text = cut.read_bytes()
    cut.write_bytes(text[: len(text) // 2])
    # an unlisted file that does not match *.jsonl*
    folder = _folder(landing, UNLISTED)
    lines = _part(folder).read_bytes().split(b"\n")[:10]
    rows = [json.loads(ln) for ln in lines]
    for n, row in enumerate(rows):
        row["transaction_id"] = f"tx_unlisted_{n}"
    (folder / "part-002.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    # a later day re-sends two transactions of the first day: one as it was, one changed
    upper_part = next(_folder(landing, UPPER).glob("*.JSONL"))
    original = [ln for ln in upper_part.read_bytes().split(b"\n") if ln.strip()][:2]
    same, changed = json.loads(original[0]), json.loads(original[1])
    changed["amount"] = round(float(changed["amount"]) * 2 + 1, 2)
    folder = _folder(landing, RESENT)
    part = _part(folder)
    part.write_bytes(
        part.read_bytes().rstrip(b"\n")
        + b"\n"
        + json.dumps(same).encode()
        + b"\n"
        + json.dumps(changed).encode()
        + b"\n"
    )
    _relist(folder)
    facts["resent"] = (same["transaction_id"], changed["transaction_id"])
    return facts


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("files")
    with slipway_env(data):
        simulate(data, **WORLD)
        facts = _damage(data / "landing" / "fraud")
        result = run_graph(day(0), day(6), job="ingestion")
        yield data, Lakehouse(data / "lakehouse" / "fraud"), result, facts


def _audit(lakehouse: Lakehouse) -> dict[dt.date, dict]:
    return {r["date"]: r for r in lakehouse.read("audit.transactions").to_pylist()}


def test_the_range_runs_and_only_the_bad_files_days_are_held(damaged) -> None:
    _, lakehouse, result, _ = damaged
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"}
    # bronze and silver ran for the whole range; only the blocking check fails, as it must
    assert steps == {"fraud__silver__transactions_contract"}, steps
    audit = _audit(lakehouse)
    assert set(audit) == {day(i) for i in range(7)}
    held = {d for d, r in audit.items() if r["breaker_tripped"]}
    assert held == {day(GZIP), day(BOM), day(CUT), day(UNLISTED)}, {
        d: r["breaker_reason"] for d, r in audit.items()
    }
    silver = lakehouse.read("silver.transactions", columns=["date"])["date"]
    published = set(pc.unique(silver).to_pylist())
    assert published == {day(UPPER), day(RESENT), day(CLEAN)}


def test_each_held_day_names_the_file_and_the_reason(damaged) -> None:
    _, lakehouse, result, facts = damaged
    audit = _audit(lakehouse)
    reasons = {i: audit[day(i)]["breaker_reason"] for i in (GZIP, BOM, CUT, UNLISTED)}
    assert facts["gzip"] in reasons[GZIP] and "unreadable" in reasons[GZIP]
    assert "_manifest.json" in reasons[BOM] and "byte-order mark" in reasons[BOM]
    assert "_manifest.json" in reasons[CUT] and "not valid JSON" in reasons[CUT]
    assert "part-002.json" in reasons[UNLISTED] and "unexpected" in reasons[UNLISTED]
    check = next(
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == "contract"
        and e.event_specific_data.asset_key.path == ["fraud", "silver", "transactions"]
    )
    assert not check.passed
    for i, reason in reasons.items():
        assert day(i).isoformat() in check.description and reason[:40] in check.description
    quarantine = lakehouse.read("quarantine.transactions").to_pylist()
    file_rows = {(r["date"], r["rule"]): r for r in quarantine if r["source_line"] == 0}
    gz_row = file_rows[(day(GZIP), "readable_file")]
    assert gz_row["source_file"].endswith(facts["gzip"]) and "unreadable" in gz_row["value"]
    assert file_rows[(day(BOM), "readable_file")]["source_file"].endswith("_manifest.json")
    assert file_rows[(day(CUT), "readable_file")]["source_file"].endswith("_manifest.json")
    unexpected = file_rows[(day(UNLISTED), "expected_file_name")]
    assert unexpected["source_file"].endswith("part-002.json") and "10 lines" in unexpected["value"]
    held_rows = [r for r in quarantine if r["date"] == day(BOM) and r["source_line"] > 0]
    assert held_rows and all(
        any(f["rule"] == CIRCUIT_BREAKER_RULE for f in json.loads(r["failures"])) for r in held_rows
    )


def test_every_file_in_a_days_folder_is_accounted_for(damaged) -> None:
    data, lakehouse, _, _ = damaged
    files = lakehouse.read("bronze.transactions_files").to_pylist()
    recorded = {r["source_file"] for r in files}
    for i in range(7):
        folder = _folder(data / "landing" / "fraud", i)
        for path in folder.iterdir():
            if not path.name.startswith(".") and path.name != "_manifest.json":
                assert f"transactions/{day(i).isoformat()}/{path.name}" in recorded, path
    status = {
        r["source_file"].rsplit("/", 1)[1]: r["status"] for r in files if r["date"] == day(UPPER)
    }
    assert [s for n, s in status.items() if n.endswith(".JSONL")] == ["ok"], status
    assert not [r for r in files if r["status"] == "missing"], [
        (r["source_file"], r["status"]) for r in files if r["status"] == "missing"
    ]


def test_an_id_re_sent_on_a_later_day_is_quarantined_naming_the_first_day(damaged) -> None:
    _, lakehouse, _, facts = damaged
    same, changed = facts["resent"]
    silver = lakehouse.read("silver.transactions", columns=["transaction_id", "date"])
    assert len(pc.unique(silver["transaction_id"])) == silver.num_rows
    for tx in (same, changed):
        dates = silver.filter(pc.equal(silver["transaction_id"], tx))["date"].to_pylist()
        assert dates == [day(UPPER)], (tx, dates)
    quarantine = [
        r for r in lakehouse.read("quarantine.transactions").to_pylist() if r["date"] == day(RESENT)
    ]
    rules = {r["record_key"]: r for r in quarantine}
    assert rules[same]["rule"] == "exact_duplicate_transaction_id"
    assert rules[changed]["rule"] == "unique_transaction_id"
    for tx in (same, changed):
        assert day(UPPER).isoformat() in rules[tx]["value"]
    audit = _audit(lakehouse)[day(RESENT)]
    assert not audit["breaker_tripped"]
    assert audit["rows_quarantined"] == 2 and audit["duplicates_dropped"] == 0


def test_the_re_sent_day_alone_is_judged_against_the_published_first_copies(damaged) -> None:
    """Re-running the re-sent day by itself checks it against the keys and values' hashes
    read back from published silver (the key ledger), not the window of one query: the
    identical copy is still an exact duplicate and the changed one a conflict, and the re-run
    converges to the same tables."""
    from slipway.ingest.pipeline import bronze_to_silver
    from slipway.spark import get_spark
    from slipway.usecases import get_usecase

    data, lakehouse, _, facts = damaged
    same, changed = facts["resent"]
    before = sorted(
        (r["date"], r["source_line"], r["rule"])
        for r in lakehouse.read("quarantine.transactions").to_pylist()
    )
    silver_before = lakehouse.read("silver.transactions").num_rows
    uc = get_usecase("fraud")
    with slipway_env(data):
        result = bronze_to_silver(
            lakehouse,
            get_spark(),
            uc.stream("transactions"),
            uc.ingest,
            day(RESENT),
            day(RESENT),
            run_id="re-run",
        )
    (verdict,) = result.verdicts
    assert verdict.rows_quarantined == 2 and verdict.duplicates_dropped == 0
    quarantine = lakehouse.read("quarantine.transactions").to_pylist()
    rules = {r["record_key"]: r["rule"] for r in quarantine if r["date"] == day(RESENT)}
    assert rules == {same: "exact_duplicate_transaction_id", changed: "unique_transaction_id"}
    assert sorted((r["date"], r["source_line"], r["rule"]) for r in quarantine) == before
    assert lakehouse.read("silver.transactions").num_rows == silver_before


def test_the_range_in_one_chunk_per_day_says_the_same(damaged, monkeypatch) -> None:
    """With one Spark query per day, every day after the first is contracted while silver
    streams into its commit (inside the Delta writer's pull): the quarantined rows' landed
    lines are read back from bronze there too, and the run converges to the same tables."""
    from slipway.ingest import pipeline
    from slipway.spark import get_spark
    from slipway.usecases import get_usecase

    data, lakehouse, _, _ = damaged

    def quarantined() -> list[tuple]:
        rows = lakehouse.read("quarantine.transactions").to_pylist()
        return sorted(
            (r["date"], r["source_file"], r["source_line"], r["rule"], r["raw"] or "") for r in rows
        )

    before, silver_before = quarantined(), lakehouse.read("silver.transactions").num_rows
    assert any(r[0] > day(0) and r[2] > 0 for r in before)  # line rows beyond the first chunk
    monkeypatch.setattr(pipeline, "CHUNK_ROWS", 1)
    uc = get_usecase("fraud")
    with slipway_env(data):
        result = pipeline.bronze_to_silver(
            lakehouse, get_spark(), uc.stream("transactions"), uc.ingest, day(0), day(6), "by-day"
        )
    assert len(result.verdicts) == 7
    assert quarantined() == before
    assert lakehouse.read("silver.transactions").num_rows == silver_before

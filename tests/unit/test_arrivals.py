"""What the landing sensor sees: new days, late files, first tick after `make run`."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from slipway.ingest.arrivals import detect_arrivals

D1, D2, D3 = dt.date(2026, 8, 1), dt.date(2026, 8, 2), dt.date(2026, 8, 3)


def _deliver(
    root: Path, day: dt.date, part: int = 1, manifest: bool = True, stream: str = "transactions"
) -> None:
    folder = root / stream / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stream}_{day}_part-{part:03d}.jsonl").write_text('{"x": 1}\n')
    if manifest:
        parts = sorted(p.name for p in folder.glob("*.jsonl"))
        (folder / "_manifest.json").write_text(
            json.dumps({"files": [{"name": p, "rows": 1} for p in parts]})
        )


def test_new_days_are_one_run_each_and_only_once(tmp_path: Path) -> None:
    _deliver(tmp_path, D1)
    _deliver(tmp_path, D2)
    first, state = detect_arrivals(tmp_path, ["transactions"], None, "transactions")
    assert first.new_ranges == [(D1, D1), (D2, D2)] and first.late_from is None
    again, state = detect_arrivals(tmp_path, ["transactions"], state, "transactions")
    assert again.empty


def test_a_day_without_manifest_waits(tmp_path: Path) -> None:
    _deliver(tmp_path, D1, manifest=False)
    waiting, state = detect_arrivals(tmp_path, ["transactions"], None, "transactions")
    assert waiting.empty and waiting.ready_days == []
    _deliver(tmp_path, D1, part=2)  # the manifest arrives with the last part
    ready, _ = detect_arrivals(tmp_path, ["transactions"], state, "transactions")
    assert ready.new_ranges == [(D1, D1)] and ready.late_from is None


def test_a_late_file_rebuilds_from_its_day_through_the_newest(tmp_path: Path) -> None:
    for d in (D1, D2, D3):
        _deliver(tmp_path, d)
    _, state = detect_arrivals(tmp_path, ["transactions", "chargebacks"], None, "transactions")
    _deliver(tmp_path, D2, part=2)
    late, state = detect_arrivals(tmp_path, ["transactions", "chargebacks"], state, "transactions")
    assert late.late_from == D2 and late.ready_days[-1] == D3
    assert any("part-002" in f for f in late.late_files) and late.new_ranges == []
    # a re-delivered chargebacks file counts as late too
    _deliver(tmp_path, D1, stream="chargebacks")
    again, _ = detect_arrivals(tmp_path, ["transactions", "chargebacks"], state, "transactions")
    assert again.late_from == D1


def test_a_changed_file_is_late_even_with_the_same_name(tmp_path: Path) -> None:
    _deliver(tmp_path, D1)
    _, state = detect_arrivals(tmp_path, ["transactions"], None, "transactions")
    path = next((tmp_path / "transactions" / D1.isoformat()).glob("*.jsonl"))
    path.write_text('{"x": 2}\n{"x": 3}\n')
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    late, _ = detect_arrivals(tmp_path, ["transactions"], state, "transactions")
    assert late.late_from == D1


def test_first_tick_trusts_what_the_lakehouse_already_processed(tmp_path: Path) -> None:
    for d in (D1, D2, D3):
        _deliver(tmp_path, d)
    arrivals, _ = detect_arrivals(
        tmp_path, ["transactions"], None, "transactions", processed_before={D1, D2}
    )
    assert arrivals.new_ranges == [(D3, D3)] and arrivals.late_from is None

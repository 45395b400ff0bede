"""docs/benchmarks.md: unlike measurements get their own tables, and sections cannot disagree."""

from __future__ import annotations

import json

from benchmarks import features, serving
from benchmarks.__main__ import render_tables


def _table(lines: list[str], heading: str) -> list[str]:
    start = lines.index(f"*{heading}*") + 2
    end = lines.index("", start)
    return lines[start:end]


def test_rows_of_different_kinds_get_their_own_columns() -> None:
    rows = [
        {"measure": "HTTP POST /score at 100 req/s, run 1", "p99_ms": 22.8, "achieved_rps": 100.0},
        {"measure": "feature lookup, 1 entity", "p99_ms": 4.4, "iterations": 300, "store": ""},
        {"measure": "OnlineScorer.score_many, 1 txn", "p99_ms": 9.9, "iterations": 300},
    ]
    lines = render_tables(rows, serving.table_of)

    http = _table(
        lines, "HTTP POST /score, open loop: repeated at 100 req/s, then a sweep of rates"
    )
    assert http[0] == "| measure | p99_ms | achieved_rps |"
    assert len(http) == 3  # header, rule, one row
    lookups = _table(
        lines, "Online feature lookups in process: Feast's call against the serving path"
    )
    # the measure leads; an empty value does not make a column
    assert lookups[0] == "| measure | p99_ms | iterations |"
    assert lookups[2] == "| feature lookup, 1 entity | 4.400 | 300 |"
    assert "achieved_rps" not in "".join(lookups)


def test_feature_doc_shows_the_serving_benchmarks_current_lookups(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(features, "RESULTS", tmp_path)
    stale = {"measure": "feature lookup, 1 entity", "p99_ms": 99.0}
    own = {"measure": "feature table merchant_risk", "seconds (median)": 0.3}
    current = {"measure": "feature lookup, 1 entity", "p99_ms": 4.4}
    http = {"measure": "HTTP POST /score at 100 req/s, run 1", "p99_ms": 22.8}
    (tmp_path / "serving.json").write_text(json.dumps({"rows": [http, current]}))

    assert features.doc_rows([own, stale]) == [own, current]
    (tmp_path / "serving.json").unlink()
    assert features.doc_rows([own, stale]) == [own]

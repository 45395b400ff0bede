"""Two processes writing the same new table at the same moment never duplicate its rows.

Each round starts two writer processes that meet at a barrier just before calling the
lakehouse, on a table that does not exist yet (the case that used to double every table: both
created it with an unconditioned overwrite, and the second commit removed nothing). Either both
commits land one after the other (the second replacing the first) or the second fails with an
error that says what happened; the table always holds exactly one copy of the range.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
from pathlib import Path

import pyarrow as pa
import pytest

from slipway.lakehouse import ConcurrentWriteError, Lakehouse

DAY = dt.date(2026, 8, 1)
ROWS = 50
ROUNDS = 4


def _data(tag: str) -> pa.Table:
    return pa.table(
        {
            "date": pa.array([DAY] * ROWS, pa.date32()),
            "id": [f"{tag}-{i}" for i in range(ROWS)],
        }
    )


def _writer(root: str, name: str, tag: str, streamed: bool, barrier, results) -> None:
    lakehouse = Lakehouse(root)
    data = _data(tag)
    try:
        barrier.wait(timeout=60)
        if streamed:
            lakehouse.write_batches(
                name, data.schema, iter([data]), replace_dates=(DAY, DAY), partition_by=["date"]
            )
        else:
            lakehouse.write(name, data, replace_dates=(DAY, DAY), partition_by=["date"])
        results.put((tag, "ok"))
    except ConcurrentWriteError as err:
        results.put((tag, f"conflict: {err}"))
    except Exception as err:  # anything else is a failure of the guard
        results.put((tag, f"UNEXPECTED {type(err).__name__}: {err}"))


@pytest.mark.parametrize("streamed", [False, True], ids=["table", "streamed"])
def test_two_concurrent_first_writes_never_duplicate(tmp_path: Path, streamed: bool) -> None:
    ctx = mp.get_context("spawn")  # delta-rs's runtime does not survive fork
    root = str(tmp_path / "lakehouse")
    for round_ in range(ROUNDS):
        name = f"silver.race_{round_}"
        barrier = ctx.Barrier(2)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_writer, args=(root, name, tag, streamed, barrier, results))
            for tag in ("a", "b")
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        outcomes = dict(results.get(timeout=10) for _ in procs)
        assert not [o for o in outcomes.values() if o.startswith("UNEXPECTED")], outcomes
        assert any(o == "ok" for o in outcomes.values()), outcomes
        for outcome in outcomes.values():
            if outcome != "ok":
                assert name in outcome and "re-run" in outcome, outcome
        table = Lakehouse(root).read(name)
        assert table.num_rows == ROWS, (round_, outcomes, Lakehouse(root).history(name))
        assert len({i.split("-")[0] for i in table["id"].to_pylist()}) == 1


def test_a_later_write_after_a_conflict_converges(tmp_path: Path) -> None:
    lakehouse = Lakehouse(tmp_path / "lakehouse")
    lakehouse.write("silver.t", _data("a"), replace_dates=(DAY, DAY), partition_by=["date"])
    lakehouse.write("silver.t", _data("b"), replace_dates=(DAY, DAY), partition_by=["date"])
    table = lakehouse.read("silver.t")
    assert table.num_rows == ROWS and set(table["id"].to_pylist()) == {
        f"b-{i}" for i in range(ROWS)
    }

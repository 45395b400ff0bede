"""`make run`'s console: one line per step with duration and figures, progress, failures."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestration.console import execute_readable, materialization_figures


@dg.asset
def landed(context) -> dg.MaterializeResult:
    context.log.info("day 1 of 2 parsed")
    context.log.debug("a debug line nobody wants on the console")
    return dg.MaterializeResult(metadata={"rows_written": 12345, "table_version": 7})


@dg.asset
def many_days(context) -> None:
    # A long step reporting per day: the console throttles it to a line now and then.
    for day in range(1, 41):
        context.log.info(f"day {day} of 40 done")


@dg.asset(deps=[landed])
def modelled() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"note": "no figures"})


@dg.asset_check(asset=landed)
def landed_is_clean() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, description="3 rows quarantined")


@dg.asset(deps=[modelled])
def broken() -> None:
    raise RuntimeError("the upstream file is unreadable\nsecond line")


def _run(capsys: pytest.CaptureFixture[str]) -> list[str]:
    defs = dg.Definitions(
        assets=[landed, many_days, modelled, broken],
        asset_checks=[landed_is_clean],
        jobs=[dg.define_asset_job("all", selection="*")],
    )
    result = execute_readable(
        defs.resolve_job_def("all"), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success
    return capsys.readouterr().out.splitlines()


def test_one_line_per_step_with_figures_progress_and_failures(capsys):
    lines = _run(capsys)
    text = "\n".join(lines)
    assert any("✓ landed" in line and "rows 12,345 · v7" in line for line in lines), text
    assert any("landed: day 1 of 2 parsed" in line for line in lines), text
    assert "a debug line nobody wants" not in text
    assert any(
        "✗ check landed:landed_is_clean" in line and "3 rows quarantined" in line for line in lines
    )
    assert any(
        "✗ broken failed: RuntimeError: the upstream file is unreadable" in line for line in lines
    ), text
    assert "second line" not in text
    # No Dagster DEBUG event lines: each line is one of ours.
    assert all(line.startswith("[") for line in lines), text
    progress = [line for line in lines if "many_days: day" in line]
    assert progress[0].endswith("day 1 of 40 done"), text
    assert progress[-1].endswith("day 40 of 40 done (+38 more)"), text
    assert len(progress) == 2, text
    assert len(lines) < 20, text


def test_figures_pick_rows_and_version_only():
    assert materialization_figures({"rows_written": 5, "table_version": 2, "x": 1}) == "rows 5 · v2"
    assert materialization_figures({"note": "text"}) == ""
    assert materialization_figures({"rows_written": dg.MetadataValue.int(1_000)}) == "rows 1,000"

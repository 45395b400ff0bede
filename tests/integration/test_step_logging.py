"""The core logs through Python's logging and Dagster captures it into the step's event log.

``.dagster/dagster.yaml`` (and the production template) list ``slipway`` as a managed Python
logger at INFO: what ``slipway.ingest.pipeline`` logs while a step runs is a log event of that
step (the UI's run log, ``make run``'s console), with no callback threaded through the core.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from slipway.settings import PROJECT_ROOT
from tests.support.pipeline import run_graph, simulate, slipway_env

SMALL = {"days": 2, "transactions_per_day": 200, "customers": 60, "merchants": 20}


def _python_logs(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["python_logs"]


def test_both_instances_capture_the_core_loggers() -> None:
    for path in (PROJECT_ROOT / ".dagster/dagster.yaml", PROJECT_ROOT / "deploy/prod/dagster.yaml"):
        logs = _python_logs(path)
        assert logs["managed_python_loggers"] == ["slipway"], path
        assert logs["python_log_level"] == "INFO", path


def test_the_cores_progress_is_in_the_steps_event_log(tmp_path: Path) -> None:
    settings = _python_logs(PROJECT_ROOT / ".dagster/dagster.yaml")
    with slipway_env(tmp_path):
        days = simulate(tmp_path, **SMALL)
        with dg.instance_for_test(overrides={"python_logs": settings}) as instance:
            result = run_graph(days[0], days[0], instance=instance, job="ingestion")
            assert result.success
            entries = instance.all_logs(result.run_id)
    messages = [(e.step_key, e.user_message, e.level) for e in entries if e.dagster_event is None]
    day = days[0].isoformat()
    bronze = [m for m in messages if m[1].startswith(f"bronze transactions {day}")]
    assert bronze, [m[1] for m in messages][:20]
    step, _, level = bronze[0]
    assert step and "bronze" in step and level == 20  # INFO, attributed to the bronze step

"""`make run`: simulate the default data if there is none, then run the whole graph once.

The run goes through the Dagster instance in ``DAGSTER_HOME`` (the project's ``.dagster/``), so
it appears in the web UI (``make ui``) with its logs, metadata and check results afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import warnings

import dagster as dg

from slipway.ingest.landing import list_days
from slipway.settings import load_settings


def _say(message: str) -> None:
    print(f"[slipway] {message}", flush=True)


def ensure_landing(days: int | None, per_day: int | None, customers: int | None) -> list[dt.date]:
    """The landed transaction days, simulating the default data first if there are none."""
    settings = load_settings()
    landed = list_days(settings.landing_root, "transactions")
    if landed:
        _say(
            f"landing zone {settings.landing_root}: {len(landed)} days already there ({landed[0]} .. {landed[-1]})"
        )
        return landed
    from slipway.simulator import SimConfig, Simulator

    overrides = {
        k: v
        for k, v in {"days": days, "transactions_per_day": per_day, "customers": customers}.items()
        if v is not None
    }
    config = SimConfig(start_date=dt.date.fromisoformat(settings.partition_start), **overrides)
    _say(
        f"no landing files: simulating {config.days} days x ~{config.transactions_per_day} transactions "
        f"({config.customers} customers) into {settings.landing_root}"
    )
    summary = Simulator(config).write_range(
        settings.landing_root, progress=lambda m: _say(f"  {m}")
    )
    _say(f"simulated {summary.transactions:,} transactions, fraud rate {summary.fraud_rate:.2%}")
    return list_days(settings.landing_root, "transactions")


def run_end_to_end(
    start: dt.date, end: dt.date, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    """Materialize every asset for ``[start, end]`` in one run (single-run backfill)."""
    from orchestration.definitions import defs

    instance = instance or dg.DagsterInstance.get()
    job = defs.get_job_def("end_to_end")
    return job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat(),
            "slipway/trigger": "make run",
        },
        raise_on_error=False,
    )


def summarise(result: dg.ExecuteInProcessResult) -> int:
    from slipway.lakehouse import Lakehouse
    from slipway.registry import ModelRegistry
    from slipway.registry.store import CHAMPION
    from slipway.usecases import get_usecase

    failed = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    bad_checks = [e for e in checks if not e.event_specific_data.passed]
    settings = load_settings()
    _say(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    for e in failed:
        _say(
            f"  step {e.step_key} failed: {e.event_specific_data.error.message.strip().splitlines()[0]}"
        )
    _say(f"asset checks: {len(checks) - len(bad_checks)} passed, {len(bad_checks)} failed")
    for e in bad_checks:
        data = e.event_specific_data
        _say(f"  {data.asset_key.to_user_string()}:{data.check_name}: {data.description}")
    usecase = get_usecase()
    lakehouse = Lakehouse(settings.lakehouse_root)
    registry = ModelRegistry(lakehouse)
    if usecase.model and (champion := registry.alias(usecase.model.name, CHAMPION)) is not None:
        m = registry.get(usecase.model.name, champion).metrics
        _say(
            f"champion {usecase.model.name} v{champion}: PR-AUC {m['pr_auc']:.4f}, ROC-AUC {m['roc_auc']:.4f}, "
            f"recall@{m['precision_target']:.0%} precision {m['recall_at_precision']:.4f}, log loss {m['log_loss']:.4f}"
        )
    if lakehouse.exists("scoring.predictions"):
        _say(
            f"predictions: {lakehouse.read('scoring.predictions', columns=['date']).num_rows:,} rows"
        )
    _say(
        f"lakehouse: {settings.lakehouse_root} (bronze/, silver/, quarantine/, gold/, features/, training/, mlflow/, scoring/)"
    )
    _say(
        "open the UI with `make ui` (http://127.0.0.1:3000): the run, its metadata and checks are there"
    )
    _say("training runs and the model registry: `make mlflow` (http://127.0.0.1:5000)")
    return 0 if result.success else 1


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(prog="python -m orchestration.main")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate default data if needed, then run the whole graph")
    run.add_argument(
        "--days", type=int, default=None, help="days to simulate when the landing zone is empty"
    )
    run.add_argument("--per-day", type=int, default=None, help="transactions per simulated day")
    run.add_argument("--customers", type=int, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    days = ensure_landing(args.days, args.per_day, args.customers)
    _say(f"running the whole graph for {days[0]} .. {days[-1]} (one run, every asset and check)")
    result = run_end_to_end(days[0], days[-1])
    code = summarise(result)
    _say(f"done in {time.perf_counter() - started:.0f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())

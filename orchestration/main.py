"""`make run`: land the use case's sample data if there is none, then run its whole graph once.

The use case is ``SLIPWAY_USECASE`` (``make run USECASE=name``), else the default one; its
``sample_data`` (fraud: the seeded simulator) fills its empty landing area, and its own
``<usecase>_end_to_end`` job runs every asset and check of it for the landed days.

The run goes through the Dagster instance in ``DAGSTER_HOME`` (the project's ``.dagster/``), so
it appears in the web UI (``make ui``) with its logs, metadata and check results afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import socket
import sys
import time
import warnings
from functools import partial

import dagster as dg

from orchestration.console import execute_readable
from slipway.ingest.landing import list_days
from slipway.settings import load_settings
from slipway.usecase import UseCase
from slipway.usecases import get_usecase


def _say(message: str) -> None:
    print(f"[slipway] {message}", flush=True)


def ensure_landing(usecase: UseCase, days: int | None = None, **overrides: int) -> list[dt.date]:
    """The landed days of ``usecase``'s primary stream, landing its sample data first if there
    are none (``days`` and ``overrides``, e.g. ``transactions_per_day``, go to its writer)."""
    settings = load_settings(usecase.name)
    primary = usecase.primary.name
    landed = list_days(settings.landing_root, primary)
    if landed:
        _say(
            f"landing zone {settings.landing_root}: {len(landed)} days already there ({landed[0]} .. {landed[-1]})"
        )
        return landed
    sample = usecase.sample_data
    if sample is None:
        raise SystemExit(
            f"{usecase.name}: no landing files under {settings.landing_root} and the use case "
            "declares no sample_data to land"
        )
    days = days or sample.days
    extra = {k: v for k, v in overrides.items() if v is not None}
    _say(
        f"no landing files: landing {days} days of {sample.description or 'sample data'} "
        f"from {sample.start} into {settings.landing_root}"
    )
    sample.write(
        settings.landing_root, sample.start, days, progress=lambda m: _say(f"  {m}"), **extra
    )
    return list_days(settings.landing_root, primary)


PID_TAG, HOST_TAG = "slipway/pid", "slipway/host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the runs an earlier `make run` left STARTED when its process died, freeing their slots.

    Without a daemon nobody notices a killed in-process run: it would keep its concurrency-pool
    slots, and the next run's ingestion steps would wait for them forever.
    """
    released = []
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
            tags={"slipway/trigger": "make run"},
        )
    )
    for run in runs:
        pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
        if not pid or host != socket.gethostname() or _alive(int(pid)):
            continue
        instance.report_run_failed(run, f"the process that ran it (pid {pid}) is gone")
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
    return released


def ensure_pools(instance: dg.DagsterInstance, job: dg.JobDefinition) -> None:
    """Create the job's concurrency pools with the instance's default limit, before any run does.

    Two processes creating the same pool at the same instant on SQLite storage can leave a step
    waiting for a slot nobody assigns; created once up front, they never race.
    """
    limit = instance.get_concurrency_config().pool_config.default_pool_limit
    storage = instance.event_log_storage
    if limit is None or not storage.supports_global_concurrency_limits:
        return
    existing = set(storage.get_concurrency_keys())
    for node in job.graph.node_defs:
        for pool in getattr(node, "pools", set()) or set():
            if pool not in existing:
                storage.set_concurrency_slots(pool, limit)


# Libraries that attach their own console handlers at INFO (MLflow's run and model messages,
# its database migrations, Feast's materialization banners): warnings only on `make run`'s
# terminal; `--verbose` keeps them. The core's own progress reaches the console through Dagster.
NOISY_LOGGERS = ("mlflow", "alembic", "feast", "urllib3", "httpx")


def quiet_libraries() -> None:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow sets its level on import
    os.environ.setdefault("SLIPWAY_DBT_LOG_LEVEL", "warn")  # in-process dbt: its log file keeps all
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def run_end_to_end(
    usecase: UseCase,
    start: dt.date,
    end: dt.date,
    instance: dg.DagsterInstance | None = None,
    verbose: bool = False,
) -> dg.ExecuteInProcessResult:
    """Materialize every asset of ``usecase`` for ``[start, end]`` in one run (single-run
    backfill).

    The terminal shows one line per step (``orchestration.console``); ``verbose`` keeps Dagster's
    own console logger (every event at DEBUG). The UI has the full event log either way.
    """
    from orchestration.definitions import defs

    instance = instance or dg.DagsterInstance.get()
    job = defs.get_job_def(f"{usecase.name}_end_to_end")
    for run_id in release_dead_runs(instance):
        _say(f"run {run_id} was left started by a process that is gone: marked failed")
    ensure_pools(instance, job)
    execute = job.execute_in_process if verbose else partial(execute_readable, job)
    return execute(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat(),
            "slipway/trigger": "make run",
            PID_TAG: str(os.getpid()),
            HOST_TAG: socket.gethostname(),
        },
        raise_on_error=False,
    )


def summarise(usecase: UseCase, result: dg.ExecuteInProcessResult) -> int:
    from slipway.lakehouse import Lakehouse
    from slipway.registry import ModelRegistry
    from slipway.registry.store import CHAMPION

    failed = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    bad_checks = [e for e in checks if not e.event_specific_data.passed]
    settings = load_settings(usecase.name)
    _say(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    for e in failed:
        _say(
            f"  step {e.step_key} failed: {e.event_specific_data.error.message.strip().splitlines()[0]}"
        )
    _say(f"asset checks: {len(checks) - len(bad_checks)} passed, {len(bad_checks)} failed")
    for e in bad_checks:
        data = e.event_specific_data
        _say(f"  {data.asset_key.to_user_string()}:{data.check_name}: {data.description}")
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


def replay_live(
    usecase: UseCase, day: dt.date, rate: float, instance: dg.DagsterInstance | None = None
) -> int:
    """The last day again, through the live path: stream -> consumer -> served log -> Delta ->
    consistency check (the drain and the check run as Dagster jobs, so they are in the UI)."""
    from orchestration.definitions import defs
    from slipway.lakehouse import Lakehouse
    from slipway.serving.scorer import OnlineScorer
    from slipway.streaming.replay import landed_lines, replay, seed_window_state
    from slipway.streaming.streams import open_streams

    instance = instance or dg.DagsterInstance.get()
    settings = load_settings(usecase.name)
    lakehouse = Lakehouse(settings.lakehouse_root)
    lines = landed_lines(settings.landing_root, usecase.primary.name, day)
    scorer = OnlineScorer.from_env(usecase)
    scorer.warm_up()
    seeded = seed_window_state(scorer, lakehouse, day)
    if seeded:
        shown = ", ".join(f"{k}: {v:,} events added" for k, v in seeded.items())
        _say(f"live replay of {day}: window state seeded from the days before it ({shown})")
    streams = open_streams(usecase)
    where = streams.url
    try:
        result = replay(usecase, scorer, streams, lines, rate=rate)
    finally:
        streams.close()
    _say(
        f"live replay of {day}: {result.appended:,} events appended to {where} at {rate:,.0f}/s, "
        f"{result.decided:,} decided, {result.dead_lettered} dead-lettered"
    )
    lat = result.latency_ms
    if lat:
        _say(
            f"live latency (append -> decision logged): p50 {lat['p50']:.1f} ms, "
            f"p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms"
        )
    drained = execute_readable(
        defs.get_job_def(f"{usecase.name}_drain_served"),
        instance=instance,
        tags={"slipway/trigger": "make run (live replay)"},
        raise_on_error=False,
    )
    served = len(  # decisions, not rows: a challenger in shadow adds a row per event
        set(lakehouse.read("scoring.served", dates=(day, day), columns=["event_id"])["event_id"])
    )
    _say(f"served log drained into scoring.served: {served:,} decisions for {day}")
    checked = execute_readable(
        defs.get_job_def(f"{usecase.name}_live_consistency"),
        instance=instance,
        partition_key=day.isoformat(),
        tags={"slipway/trigger": "make run (live replay)"},
        raise_on_error=False,
    )
    evaluations = checked.get_asset_check_evaluations() if checked.success else []
    for evaluation in evaluations:
        verdict = "passed" if evaluation.passed else "FAILED"
        _say(f"online/offline consistency {verdict}: {evaluation.description}")
    ok = drained.success and checked.success and all(e.passed for e in evaluations)
    return 0 if ok and result.decided == len(lines) else 1


def _sample_options(items: list[str]) -> dict[str, int | float | str]:
    """``KEY=VALUE`` pairs for the sample-data writer; numbers become numbers."""
    options: dict[str, int | float | str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--sample takes KEY=VALUE, got {item!r}")
        for cast in (int, float):
            try:
                options[key] = cast(raw)
                break
            except ValueError:
                continue
        else:
            options[key] = raw
    return options


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(prog="python -m orchestration.main")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="land the use case's sample data if needed, then run its whole graph"
    )
    run.add_argument(
        "--usecase", default=None, help="the use case to run (default: SLIPWAY_USECASE, else fraud)"
    )
    run.add_argument(
        "--days", type=int, default=None, help="days of sample data when the landing zone is empty"
    )
    run.add_argument(
        "--sample",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the use case's sample-data writer (repeatable), e.g. "
        "fraud's simulator: --sample transactions_per_day=500",
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="print Dagster's whole event log, not a line per step",
    )
    run.add_argument(
        "--live-rate",
        type=float,
        default=1000.0,
        help="events per second of the live replay of the last day (0: skip the replay)",
    )
    args = parser.parse_args(argv)
    if not args.verbose:
        quiet_libraries()
    started = time.perf_counter()
    usecase = get_usecase(args.usecase)
    days = ensure_landing(usecase, args.days, **_sample_options(args.sample))
    _say(
        f"running {usecase.name}'s whole graph for {days[0]} .. {days[-1]} "
        "(one run, every asset and check)"
    )
    result = run_end_to_end(usecase, days[0], days[-1], verbose=args.verbose)
    code = summarise(usecase, result)
    if result.success and args.live_rate > 0 and usecase.serving is not None:
        code = max(code, replay_live(usecase, days[-1], args.live_rate))
    _say(f"done in {time.perf_counter() - started:.0f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())

"""``slipway simulate``: write a simulated landing zone from the command line.

``register`` plugs the sub-command into the platform's CLI; ``python -m slipway.usecases.fraud.simulator`` runs
it standalone. Defaults come from ``SimConfig`` and the landing root from the settings
(fraud's landing area: ``$SLIPWAY_LANDING_ROOT/fraud``, else ``data/landing/fraud``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from slipway.usecases.fraud.simulator.config import SimConfig
from slipway.usecases.fraud.simulator.engine import Simulator
from slipway.usecases.fraud.simulator.scenarios import parse_scenario


def _default_landing() -> str:
    from slipway.settings import load_settings

    return load_settings("fraud").landing_root


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``simulate`` options (shared by ``register`` and the standalone entry point)."""
    d = SimConfig()
    parser.add_argument(
        "--out",
        default=None,
        help="landing folder (default: fraud's, $SLIPWAY_LANDING_ROOT/fraud or data/landing/fraud)",
    )
    parser.add_argument(
        "--days", type=int, default=d.days, help=f"days to simulate (default {d.days})"
    )
    parser.add_argument(
        "--start", type=dt.date.fromisoformat, default=d.start_date, help="first day, YYYY-MM-DD"
    )
    parser.add_argument("--customers", type=int, default=d.customers)
    parser.add_argument("--merchants", type=int, default=d.merchants)
    parser.add_argument(
        "--per-day", type=int, default=d.transactions_per_day, help="mean transactions per day"
    )
    parser.add_argument("--fraud-rate", type=float, default=d.fraud_rate)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--parts", type=int, default=d.parts_per_day, help="files per day")
    parser.add_argument("--compress", action="store_true", help="write .jsonl.gz parts")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="SPEC",
        help="repeatable: drift:DATE[:factor], new-fraud:DATE[:rate], broken:DATE:KIND[:fraction] "
        "(KIND: cents, renamed_field, nulls, duplicates, garbage, truncated)",
    )


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``simulate`` sub-command to a CLI's subparsers; dispatches via ``args.func``."""
    parser = subparsers.add_parser(
        "simulate",
        help="write a simulated card-payment landing zone",
        description="Write daily transactions, chargebacks and reference snapshots into a landing folder.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    scenarios = tuple(parse_scenario(s) for s in args.scenario)
    return SimConfig(
        seed=args.seed,
        start_date=args.start,
        days=args.days,
        customers=args.customers,
        merchants=args.merchants,
        transactions_per_day=args.per_day,
        fraud_rate=args.fraud_rate,
        parts_per_day=args.parts,
        compress=args.compress,
        scenarios=scenarios,
    )


def run(args: argparse.Namespace) -> int:
    """Simulate and print progress and a summary; 0 on success, 2 on a bad option."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    landing = Path(args.out or _default_landing())
    print(
        f"simulating {config.days} days from {config.start_date} "
        f"(~{config.transactions_per_day:,}/day, {config.customers:,} customers, seed {config.seed}) into {landing}",
        flush=True,
    )
    for s in config.scenarios:
        print(f"  scenario: {s}", flush=True)
    summary = Simulator(config).write_range(landing, progress=lambda m: print(f"  {m}", flush=True))
    print(
        f"done: {len(summary.days)} days, {summary.transactions:,} transactions, "
        f"fraud rate {summary.fraud_rate:.2%}, {summary.chargebacks:,} chargebacks, "
        f"{summary.files} files in {summary.seconds:.1f}s -> {landing}",
        flush=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m slipway.usecases.fraud.simulator", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))

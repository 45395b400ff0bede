"""The `slipway` command: trace a prediction, manage the registry, seed the window state,
calibrate drift thresholds, and the commands use cases contribute (fraud's `simulate`).

Every command acts on one use case: ``--usecase NAME`` (default ``SLIPWAY_USECASE``, else the
default use case), in that use case's own lakehouse. A use case adds commands of its own through
``UseCase.extras["cli"]``, a ``register(subparsers)`` function.
"""

from __future__ import annotations

import argparse
import json
import sys

from slipway.settings import load_settings


def _usecase():
    from slipway.usecases import get_usecase

    return get_usecase(_selected)


_selected: str | None = None


def _lakehouse():
    from slipway.lakehouse import Lakehouse

    return Lakehouse(load_settings(_usecase().name).lakehouse_root)


def cmd_lineage(args: argparse.Namespace) -> int:
    from slipway.lineage import LineageError, render, trace_prediction, trace_served

    try:
        if args.served:
            tree = trace_served(_lakehouse(), args.prediction_id, _usecase())
        else:
            tree = trace_prediction(_lakehouse(), args.prediction_id, _usecase())
    except LineageError as exc:
        print(f"lineage: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(tree.as_dict(), indent=2, default=str) if args.json else render(tree))
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    from slipway.registry import ModelRegistry
    from slipway.registry.store import CHAMPION

    spec = _usecase().model
    assert spec is not None
    registry = ModelRegistry(_lakehouse())
    name = args.model or spec.name
    if args.action == "list":
        aliases = registry.aliases(name)
        for v in registry.versions(name):
            tags = [alias for alias, holder in sorted(aliases.items()) if holder == v.version]
            print(
                f"v{v.version:<4} {v.created_at:%Y-%m-%d %H:%M}  pr_auc={v.metrics.get('pr_auc', float('nan')):.4f}  "
                f"device={v.device:<4} training_set=v{v.training_set.get('version')}  "
                f"run={v.mlflow_run_id[:8]}  {' '.join(tags)}"
            )
        print(f"store: {registry.store.display_uri}")
        return 0
    if args.action == "history":
        for move in registry.alias_history(name):
            target = f"v{move.version}" if move.version >= 0 else "(cleared)"
            print(
                f"{move.set_at:%Y-%m-%d %H:%M:%S}  {move.alias:<10} -> {target:<9}  {move.reason}"
            )
        return 0
    if args.action == "rollback":
        try:
            version = registry.rollback(name, args.version, reason=args.reason or "manual rollback")
        except (KeyError, ValueError) as exc:
            print(f"registry: {exc.args[0] if exc.args else exc}", file=sys.stderr)
            return 1
        print(f"{name}: champion is now v{version} (models:/{name}@{CHAMPION})")
        return 0
    raise AssertionError(args.action)


def cmd_windows(args: argparse.Namespace) -> int:
    """Bootstrap the window aggregator's state from the lakehouse for a live day."""
    import datetime as dt

    from slipway.windows import aggregator_from_settings
    from slipway.windows.seeding import seed_until

    usecase = _usecase()
    settings = load_settings(usecase.name)
    day = dt.date.fromisoformat(args.day)
    for fs in usecase.window_features:
        agg = aggregator_from_settings(fs, settings)
        try:
            seed_until(agg, _lakehouse(), day, progress=print)
        finally:
            agg.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    global _selected
    from slipway.monitoring import calibrate
    from slipway.usecases import deployed_usecases

    parser = argparse.ArgumentParser(prog="slipway", description=__doc__)
    parser.add_argument(
        "--usecase",
        dest="selected_usecase",
        default=None,
        help="the use case to act on (default: SLIPWAY_USECASE)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for usecase in deployed_usecases():
        register = usecase.extras.get("cli")
        if register is not None:
            register(sub)
    calibrate.register(sub)
    lineage = sub.add_parser("lineage", help="trace a prediction back to its landing file and line")
    lineage.add_argument(
        "prediction_id", help="as in scoring.predictions, e.g. tx_20260801_000123:v2"
    )
    lineage.add_argument("--json", action="store_true", help="print the tree as JSON")
    lineage.add_argument(
        "--served",
        action="store_true",
        help="the id is an event id in scoring.served: trace the online decision",
    )
    lineage.set_defaults(func=cmd_lineage)
    registry = sub.add_parser(
        "registry",
        help="list versions, show alias history, roll back the champion (the MLflow registry)",
    )
    registry.add_argument("action", choices=["list", "history", "rollback"])
    registry.add_argument("--model", default=None)
    registry.add_argument(
        "--version", type=int, default=None, help="rollback target (default: previous champion)"
    )
    registry.add_argument("--reason", default=None)
    registry.set_defaults(func=cmd_registry)
    windows = sub.add_parser(
        "windows-seed",
        help="load the window state with the history a live day needs (idempotent)",
    )
    windows.add_argument("day", help="the live day, YYYY-MM-DD: seeds the days before it")
    windows.set_defaults(func=cmd_windows)
    args = parser.parse_args(argv)
    # a sub-command's own --usecase (monitoring-calibrate) counts as well
    _selected = args.selected_usecase or getattr(args, "usecase", None)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

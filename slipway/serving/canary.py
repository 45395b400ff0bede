"""The canary guard: live figures of the challenger against the champion on the same events.

On canary traffic both models score every event on the same features (the challenger decides,
the champion is scored in shadow), so the comparison needs no sampling assumptions: the score
distribution shift (PSI of the challenger's scores against the champion's), the flag rates, the
challenger's error rate (events it failed to score; the champion decided them) and its model
latency, each against a limit (``GuardLimits``). The same function judges a scorer's in-process
window of recent canary events (``CanaryMonitor``, which trips within one pass) and a day of
``scoring.served`` (the Dagster check ``canary_guard``, which shows the figures in the UI).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from slipway.serving.routing import GuardLimits


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (quantile bins of
    ``expected``, 1e-4 floor per bin so an empty bin does not make it infinite)."""
    expected = np.asarray(expected, dtype="float64")
    actual = np.asarray(actual, dtype="float64")
    if len(expected) == 0 or len(actual) == 0:
        return float("nan")
    edges = np.unique(np.quantile(expected, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    pe = np.maximum(e / e.sum(), 1e-4)
    pa = np.maximum(a / a.sum(), 1e-4)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


@dataclass(frozen=True)
class CanaryFigures:
    """The canary's live figures on ``events`` events scored by both models."""

    events: int
    errors: int
    score_psi: float
    champion_flag_rate: float
    challenger_flag_rate: float
    agreement: float  # share of events where both models flag alike
    champion_ms_p95: float
    challenger_ms_p95: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.events if self.events else 0.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "error_rate": self.error_rate}


def figures(
    champion_scores: Sequence[float],
    challenger_scores: Sequence[float],
    champion_threshold: float,
    challenger_threshold: float,
    errors: int = 0,
    champion_ms: Sequence[float] = (),
    challenger_ms: Sequence[float] = (),
) -> CanaryFigures:
    """Figures from paired scores (the challenger's errors are counted, not paired)."""
    cp = np.asarray(champion_scores, dtype="float64")
    ch = np.asarray(challenger_scores, dtype="float64")
    cp_flag, ch_flag = cp >= champion_threshold, ch >= challenger_threshold
    n = len(cp) + errors

    def p95(values: Sequence[float]) -> float:
        return float(np.percentile(values, 95)) if len(values) else 0.0

    return CanaryFigures(
        events=n,
        errors=errors,
        score_psi=psi(cp, ch) if len(cp) else 0.0,
        champion_flag_rate=float(cp_flag.mean()) if len(cp) else 0.0,
        challenger_flag_rate=float(ch_flag.mean()) if len(ch) else 0.0,
        agreement=float((cp_flag == ch_flag).mean()) if len(cp) else 1.0,
        champion_ms_p95=p95(champion_ms),
        challenger_ms_p95=p95(challenger_ms),
    )


def breaches(f: CanaryFigures, limits: GuardLimits) -> list[str]:
    """Every limit the figures cross, in words (empty: the canary may go on). Nothing is judged
    before ``limits.min_events`` events."""
    if f.events < limits.min_events:
        return []
    out = []
    if f.score_psi > limits.max_score_psi:
        out.append(
            f"score distribution shift: PSI {f.score_psi:.3f} of the challenger's scores against "
            f"the champion's on the same {f.events} events > {limits.max_score_psi:g}"
        )
    ratio_cap = f.champion_flag_rate * limits.max_flag_rate_ratio
    if (
        f.challenger_flag_rate > ratio_cap
        and f.challenger_flag_rate - f.champion_flag_rate > limits.max_flag_rate_delta
    ):
        out.append(
            f"flag rate {f.challenger_flag_rate:.2%} against the champion's "
            f"{f.champion_flag_rate:.2%} on the same events (limits x{limits.max_flag_rate_ratio:g} "
            f"and +{limits.max_flag_rate_delta:.0%})"
        )
    if f.error_rate > limits.max_error_rate:
        out.append(
            f"error rate {f.error_rate:.2%} ({f.errors} of {f.events} events) "
            f"> {limits.max_error_rate:.2%}"
        )
    if f.challenger_ms_p95 - f.champion_ms_p95 > limits.max_latency_ms:
        out.append(
            f"latency: challenger p95 {f.challenger_ms_p95:.2f} ms against the champion's "
            f"{f.champion_ms_p95:.2f} ms (+{limits.max_latency_ms:g} ms allowed)"
        )
    return out


class CanaryMonitor:
    """A scorer's window of recent canary events, judged after every pass.

    Keyed by the challenger version the canary runs: a new canary starts an empty window.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._pairs: deque[tuple[float, float]] = deque()
        self._errors: deque[int] = deque()
        self._ms: deque[tuple[float, float]] = deque()
        self.thresholds = (0.5, 0.5)

    def add(
        self,
        key: tuple[int, int],
        limits: GuardLimits,
        thresholds: tuple[float, float],
        pairs: Sequence[tuple[float, float]],
        errors: int,
        model_ms: tuple[float, float],
    ) -> list[str]:
        """Record one pass's canary events; returns the breaches of the window now."""
        with self._lock:
            if key != self._key:
                self._key = key
                self._pairs, self._errors, self._ms = (
                    deque(maxlen=limits.window),
                    deque(maxlen=limits.window),
                    deque(maxlen=256),
                )
            self.thresholds = thresholds
            self._pairs.extend(pairs)
            self._errors.extend([0] * len(pairs) + [1] * errors)
            self._ms.append(model_ms)
            return breaches(self.current(), limits)

    def current(self) -> CanaryFigures:
        cp = [p[0] for p in self._pairs]
        ch = [p[1] for p in self._pairs]
        return figures(
            cp,
            ch,
            self.thresholds[0],
            self.thresholds[1],
            errors=sum(self._errors),
            champion_ms=[m[0] for m in self._ms],
            challenger_ms=[m[1] for m in self._ms],
        )

    def reset(self) -> None:
        with self._lock:
            self._key = None
            self._pairs.clear()
            self._errors.clear()
            self._ms.clear()


@dataclass(frozen=True)
class GuardReport:
    """The canary guard's view of ``scoring.served`` and the routing (for the Dagster check)."""

    mode: str
    share: float
    champion_version: int | None
    challenger_version: int | None
    figures: CanaryFigures | None
    breaches: list[str]
    tripped: str | None  # why traffic went back to the champion (now or earlier)
    reason: str
    tripped_now: bool = False

    @property
    def passed(self) -> bool:
        return self.tripped is None

    def description(self) -> str:
        if self.tripped:
            return f"canary guard: traffic back to the champion: {self.tripped}"
        if self.mode != "canary":
            return f"no canary running (routing: {self.mode}; {self.reason})"
        seen = self.figures.events if self.figures else 0
        return f"canary of v{self.challenger_version} at {self.share:.1%} within limits ({seen} events)"


def served_canary_figures(
    lakehouse: Any, champion_version: int, challenger_version: int
) -> CanaryFigures | None:
    """The figures of the canary events in ``scoring.served`` (decided by the challenger, the
    champion's shadow row beside each)."""
    import pyarrow.compute as pc

    if not lakehouse.exists("scoring.served"):
        return None
    table = lakehouse.read(
        "scoring.served",
        columns=[
            "event_id",
            "role",
            "decided",
            "routing",
            "score",
            "threshold",
            "model_version",
            "shadow_error",
            "champion_version",
            "challenger_version",
            "timing_ms",
        ],
    )
    keep = pc.and_(
        pc.equal(table["routing"], "canary"),
        pc.and_(
            pc.equal(table["champion_version"], champion_version),
            pc.equal(table["challenger_version"], challenger_version),
        ),
    )
    frame = table.filter(pc.fill_null(keep, False)).to_pandas()
    if frame.empty:
        return None
    by = frame[frame["decided"] & (frame["role"] == "challenger")]
    cp = frame[~frame["decided"] & (frame["role"] == "champion")].set_index("event_id")
    pairs = by.set_index("event_id").join(cp[["score", "threshold"]], rsuffix="_champion")
    pairs = pairs[pairs["score_champion"].notna()]
    errors = int(
        (frame["decided"] & (frame["role"] == "champion") & frame["shadow_error"].notna()).sum()
    )
    if pairs.empty and not errors:
        return None
    timings = [json.loads(t or "{}") for t in by["timing_ms"]]
    return figures(
        pairs["score_champion"].to_numpy(),
        pairs["score"].to_numpy(),
        float(pairs["threshold_champion"].iloc[0]) if len(pairs) else 0.5,
        float(pairs["threshold"].iloc[0]) if len(pairs) else 0.5,
        errors=errors,
        champion_ms=[t.get("model", 0.0) for t in timings],
        challenger_ms=[t.get("shadow", 0.0) for t in timings],
    )


def guard_served(lakehouse: Any, model_name: str, run_id: str | None = None) -> GuardReport:
    """Judge the running canary on ``scoring.served``; trip it when a limit is crossed."""
    from slipway.registry.store import CHALLENGER, CHAMPION, ModelRegistry

    registry = ModelRegistry(lakehouse)
    aliases = registry.state(model_name)[0]
    champion, challenger = aliases.get(CHAMPION), aliases.get(CHALLENGER)
    routing = registry.routing(model_name)
    effective = routing.effective(challenger)
    found: CanaryFigures | None = None
    judged: list[str] = []
    version = challenger if routing.tripped is None else routing.challenger_version
    if champion is not None and version is not None:
        found = served_canary_figures(lakehouse, champion, version)
    if found is not None:
        judged = breaches(found, routing.limits)
    tripped_now = False
    if judged and effective.mode == "canary":
        reason = "; ".join(judged)
        routing = routing.with_(
            mode="shadow", share=0.0, tripped=reason, reason=f"canary guard: {reason}"
        )
        registry.set_routing(model_name, routing, run_id)
        tripped_now = True
    return GuardReport(
        mode=routing.mode,
        share=routing.share,
        champion_version=champion,
        challenger_version=version,
        figures=found,
        breaches=judged,
        tripped=routing.tripped,
        reason=routing.reason,
        tripped_now=tripped_now,
    )

"""The promotion gate: a challenger replaces the champion only if it is better on the same data.

Both models are scored on the challenger's holdout (the latest matured days of its training set,
which the champion has not been trained on when it is older); the challenger must beat the
champion's figure by the policy's margin. With no champion yet, the challenger must clear the
absolute floors instead, so a broken first model never reaches production either.

Live evidence (``slipway.registry.evidence``): when the deployment requires it
(``SLIPWAY_GATE_LIVE_EVIDENCE``), a challenger that passed the holdout must also have run in
shadow on enough live events, agree with the champion on them, and, once their labels matured,
be at least as good on the same served events (``PromotionPolicy.live``). Until then the
decision says it is waiting, and the challenger keeps running in shadow. Either way the decision
lists the evidence it used (``evidence``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from slipway.training.metrics import Metrics, compute_metrics
from slipway.training.train import load_booster, predict
from slipway.usecase import ModelSpec, PromotionPolicy


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    metric: str
    challenger_version: int
    challenger: dict[str, float]
    champion_version: int | None
    champion: dict[str, float] | None
    evidence: list[str] = field(default_factory=list)  # what the decision rests on, in words
    live: dict[str, Any] | None = None  # the live figures (LiveEvidence.as_dict())
    waiting: bool = False  # not rejected: waiting for live evidence

    def as_metadata(self) -> dict[str, object]:
        return {
            "evidence": self.evidence,
            "live": self.live,
            "waiting": self.waiting,
            "passed": self.passed,
            "reason": self.reason,
            "metric": self.metric,
            "challenger_version": self.challenger_version,
            "champion_version": self.champion_version,
            "challenger_metrics": self.challenger,
            "champion_metrics": self.champion,
        }


def score_holdout(model_text: str, holdout: pd.DataFrame, spec: ModelSpec) -> Metrics:
    """A model's metrics on ``holdout`` (which carries the label column)."""
    scores = predict(load_booster(model_text), holdout, spec)
    return compute_metrics(
        holdout[spec.target].astype(int).to_numpy(), scores, spec.precision_target
    )


def decide(
    policy: PromotionPolicy,
    challenger_version: int,
    challenger: Metrics,
    champion_version: int | None = None,
    champion: Metrics | None = None,
    live: Any = None,
    require_live: bool = False,
) -> GateDecision:
    """Apply the policy to the holdout metrics, then (``require_live``) to the live evidence."""
    holdout = _decide_holdout(policy, challenger_version, challenger, champion_version, champion)
    evidence = [f"holdout: {challenger.rows:,} rows, both models on the same rows"]
    if champion is None:
        evidence = [f"holdout: {challenger.rows:,} rows against the absolute floors"]
    if live is not None:
        evidence.append(
            ("live (required): " if require_live else "live (recorded): ") + live.summary()
        )
    decision = replace(
        holdout, evidence=evidence, live=live.as_dict() if live is not None else None
    )
    if not require_live or champion is None or not holdout.passed:
        return decision
    return _decide_live(policy, decision, live)


def _decide_live(policy: PromotionPolicy, decision: GateDecision, live: Any) -> GateDecision:
    rules = policy.live
    events = live.shadow_events if live is not None else 0
    if events < rules.min_shadow_events:
        return replace(
            decision,
            passed=False,
            waiting=True,
            reason=f"waiting for live evidence: {events:,} of {rules.min_shadow_events:,} shadow "
            f"events (holdout passed: {decision.reason})",
        )
    if live.agreement < rules.min_agreement:
        return replace(
            decision,
            passed=False,
            reason=f"disagrees with the champion on live traffic: flag agreement "
            f"{live.agreement:.4f} < {rules.min_agreement:.4f} over {events:,} events",
        )
    labelled = live.challenger_metric is not None and live.positives >= rules.min_positives
    if not labelled:
        if rules.require_labels:
            return replace(
                decision,
                passed=False,
                waiting=True,
                reason=f"waiting for matured labels on served traffic: {live.positives} of "
                f"{rules.min_positives} positives (agreement {live.agreement:.4f} over {events:,})",
            )
        return replace(
            decision,
            reason=f"{decision.reason}; live: agrees with the champion on {events:,} shadow events "
            f"({live.agreement:.4f} >= {rules.min_agreement:.4f}), labels not matured yet",
        )
    delta = live.challenger_metric - live.champion_metric
    verdict = (
        f"on {live.labelled_events:,} labelled served events ({live.positives} positive) "
        f"{live.metric} challenger {live.challenger_metric:.4f} vs champion "
        f"{live.champion_metric:.4f} (delta {delta:+.4f}, margin {rules.margin:+.4f})"
    )
    if delta < rules.margin:
        return replace(decision, passed=False, reason="loses on served traffic: " + verdict)
    return replace(
        decision,
        reason=f"{decision.reason}; wins on served traffic: {verdict}, flag agreement "
        f"{live.agreement:.4f} over {events:,} shadow events",
    )


def _decide_holdout(
    policy: PromotionPolicy,
    challenger_version: int,
    challenger: Metrics,
    champion_version: int | None = None,
    champion: Metrics | None = None,
) -> GateDecision:
    """Apply the policy to metrics measured on the same holdout."""
    ch = challenger.as_dict()
    metric = policy.metric
    if champion is None or champion_version is None:
        misses = [
            f"{name} {ch[name]:.4f} < floor {floor:.4f}"
            for name, floor in policy.floors.items()
            if ch[name] < floor
        ]
        if misses:
            return GateDecision(
                False,
                "first model below floors: " + "; ".join(misses),
                metric,
                challenger_version,
                ch,
                None,
                None,
            )
        floors = ", ".join(
            f"{name} {ch[name]:.4f} >= {floor:.4f}" for name, floor in policy.floors.items()
        )
        return GateDecision(
            True,
            f"first model clears the floors ({floors})",
            metric,
            challenger_version,
            ch,
            None,
            None,
        )
    cp = champion.as_dict()
    delta = ch[metric] - cp[metric]
    verdict = (
        f"challenger v{challenger_version} {metric} {ch[metric]:.4f} vs champion v{champion_version} "
        f"{cp[metric]:.4f} on the same {challenger.rows}-row holdout (delta {delta:+.4f}, margin {policy.margin:.4f})"
    )
    if delta >= policy.margin:
        return GateDecision(
            True,
            "beats the champion: " + verdict,
            metric,
            challenger_version,
            ch,
            champion_version,
            cp,
        )
    return GateDecision(
        False,
        "does not beat the champion: " + verdict,
        metric,
        challenger_version,
        ch,
        champion_version,
        cp,
    )

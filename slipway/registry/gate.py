"""The promotion gate: a challenger replaces the champion only if it is better on the same data.

Both models are scored on the challenger's holdout (the latest matured days of its training set,
which the champion has not been trained on when it is older); the challenger must beat the
champion's figure by the policy's margin. With no champion yet, the challenger must clear the
absolute floors instead, so a broken first model never reaches production either.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def as_metadata(self) -> dict[str, object]:
        return {
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

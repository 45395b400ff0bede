"""Routing, the canary guard and the live gate as plain functions (no world needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slipway.registry.evidence import LiveEvidence
from slipway.registry.gate import decide
from slipway.serving.canary import CanaryMonitor, breaches, figures, psi
from slipway.serving.routing import (
    CANARY,
    CHAMPION_ONLY,
    SHADOW,
    GuardLimits,
    Routing,
    bucket,
    to_challenger,
)
from slipway.training.metrics import Metrics
from slipway.usecase import LiveEvidencePolicy, PromotionPolicy


def test_buckets_are_stable_and_the_share_holds_within_sampling_error() -> None:
    routing = Routing(mode=CANARY, share=0.2)
    entities = [f"cust_{i:05d}" for i in range(20_000)]
    routed = [to_challenger(routing, "v7", e) for e in entities]
    assert routed == [to_challenger(routing, "v7", e) for e in entities]  # stable
    share = sum(routed) / len(routed)
    sigma = math.sqrt(0.2 * 0.8 / len(routed))
    assert abs(share - 0.2) < 4 * sigma, share
    # another salt is another draw, a smaller share a subset of the same salt's larger one
    other = [to_challenger(routing, "v8", e) for e in entities]
    assert other != routed
    small = Routing(mode=CANARY, share=0.05)
    assert all(r for r, s in zip(routed, entities, strict=True) if to_challenger(small, "v7", s))
    assert 0.0 <= bucket("v7", "x") < 1.0


def test_routing_round_trips_and_applies_only_to_its_challenger() -> None:
    routing = Routing(
        mode=CANARY, share=0.1, challenger_version=5, limits=GuardLimits(min_events=9)
    )
    again = Routing.from_json(routing.to_json())
    assert again == routing and again.limits.min_events == 9
    assert routing.effective(5).mode == CANARY
    assert routing.effective(6).mode == SHADOW  # a canary for v5 does not route v6
    assert routing.effective(None).mode == CHAMPION_ONLY
    assert Routing.from_json(None).mode == SHADOW  # a challenger runs in shadow by default
    assert "sha256('v5:' + customer_id) < 0.1" in routing.rule("customer_id", 5)
    with pytest.raises(ValueError):
        Routing(mode="everything")
    with pytest.raises(ValueError):
        Routing(mode=CANARY, share=1.5)


def _scores(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).beta(0.3, 12.0, n)


def test_the_guard_passes_a_like_challenger_and_trips_a_worse_one() -> None:
    limits = GuardLimits(min_events=100)
    champion = _scores(1000)
    same = figures(champion, champion * 1.01, 0.3, 0.3)
    assert breaches(same, limits) == []
    logit = np.log(champion / (1 - champion))
    worse = 1 / (1 + np.exp(-(logit + 3.0)))
    found = breaches(figures(champion, worse, 0.3, 0.3), limits)
    assert any("PSI" in b for b in found) and any("flag rate" in b for b in found)
    failing = figures(champion[:900], champion[:900], 0.3, 0.3, errors=100)
    assert any("error rate" in b for b in breaches(failing, limits))
    slow = figures(champion, champion, 0.3, 0.3, champion_ms=[1.0] * 10, challenger_ms=[40.0] * 10)
    assert any("latency" in b for b in breaches(slow, limits))
    few = figures(champion[:50], worse[:50], 0.3, 0.3)
    assert breaches(few, limits) == []  # not judged before min_events
    assert psi(champion, champion) == pytest.approx(0.0, abs=1e-9)


def test_the_monitor_keeps_a_window_per_canary() -> None:
    monitor = CanaryMonitor()
    limits = GuardLimits(min_events=10, window=50)
    pairs = [(0.01, 0.9)] * 20
    assert monitor.add((1, 2), limits, (0.5, 0.5), pairs, 0, (1.0, 1.0))
    assert monitor.current().events == 20
    assert not monitor.add((1, 3), limits, (0.5, 0.5), pairs[:5], 0, (1.0, 1.0))
    assert monitor.current().events == 5  # a new canary starts an empty window


def _metrics(pr_auc: float) -> Metrics:
    return Metrics(
        rows=1000,
        positives=20,
        pr_auc=pr_auc,
        roc_auc=0.95,
        recall_at_precision=0.5,
        precision_target=0.9,
        threshold_at_precision=0.5,
        log_loss=0.05,
        brier=0.01,
        ece=0.01,
    )


def _live(
    events: int, agreement: float, cp: float | None, ch: float | None, pos: int
) -> LiveEvidence:
    return LiveEvidence(1, 2, events, agreement, 0.02, 0.02, events, pos, "pr_auc", cp, ch, ["d"])


def test_the_gate_names_its_evidence_and_waits_for_live_traffic() -> None:
    policy = PromotionPolicy(live=LiveEvidencePolicy(min_shadow_events=500, min_positives=10))
    better, champion = _metrics(0.7), _metrics(0.6)
    holdout_only = decide(policy, 2, better, 1, champion, live=_live(10, 1.0, None, None, 0))
    assert holdout_only.passed and holdout_only.evidence[0].startswith("holdout")
    assert "live (recorded)" in holdout_only.evidence[1]
    waiting = decide(
        policy, 2, better, 1, champion, live=_live(10, 1.0, None, None, 0), require_live=True
    )
    assert not waiting.passed and waiting.waiting and "10 of 500" in waiting.reason
    disagrees = decide(
        policy, 2, better, 1, champion, live=_live(900, 0.5, None, None, 0), require_live=True
    )
    assert not disagrees.passed and "agreement" in disagrees.reason
    wins = decide(
        policy, 2, better, 1, champion, live=_live(900, 0.99, 0.5, 0.6, 15), require_live=True
    )
    assert wins.passed and "wins on served traffic" in wins.reason
    assert "live (required)" in wins.evidence[1] and wins.live["positives"] == 15
    loses = decide(
        policy, 2, better, 1, champion, live=_live(900, 0.99, 0.6, 0.5, 15), require_live=True
    )
    assert not loses.passed and "loses on served traffic" in loses.reason
    worse_holdout = decide(
        policy, 2, champion, 1, better, live=_live(900, 0.99, 0.5, 0.6, 15), require_live=True
    )
    assert not worse_holdout.passed and "does not beat" in worse_holdout.reason

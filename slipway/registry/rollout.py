"""Rolling a challenger out on live traffic, and back: shadow, canary, promotion, rollback.

Each step is one write to the registry (an alias or the routing tag, ``slipway.serving.routing``)
and one logged move with its reason; every live scorer picks it up on its next registry check
(``SLIPWAY_SERVING_RELOAD_SECONDS``), without a restart. ``slipway rollback`` undoes the latest
live change: a running canary goes back to shadow (the champion decides everything again), else
the champion alias goes back to the previous champion.
"""

from __future__ import annotations

from dataclasses import dataclass

from slipway.registry.store import CHALLENGER, ModelRegistry
from slipway.serving.routing import CANARY, CHAMPION_ONLY, SHADOW, GuardLimits, Routing


@dataclass(frozen=True)
class RolloutChange:
    """What a rollout command changed, in words."""

    what: str  # "canary", "shadow", "champion-only", "rollback-canary", "rollback-promotion"
    detail: str


def start_canary(
    registry: ModelRegistry,
    model_name: str,
    share: float,
    entity: str | None = None,
    reason: str = "canary started",
    limits: GuardLimits | None = None,
    run_id: str | None = None,
) -> RolloutChange:
    """Route ``share`` of the entities to the challenger (it must exist)."""
    challenger = registry.alias(model_name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"{model_name} has no challenger to put on canary")
    current = registry.routing(model_name)
    routing = current.with_(
        mode=CANARY,
        share=float(share),
        entity=entity if entity is not None else current.entity,
        challenger_version=challenger,
        limits=limits or current.limits,
        reason=reason,
        tripped=None,
    )
    registry.set_routing(model_name, routing, run_id)
    return RolloutChange("canary", f"v{challenger} decides {share:.1%} of entities: {reason}")


def set_mode(
    registry: ModelRegistry,
    model_name: str,
    mode: str,
    reason: str,
    run_id: str | None = None,
) -> RolloutChange:
    """Shadow only (``shadow``) or no challenger scoring at all (``champion``)."""
    if mode not in (SHADOW, CHAMPION_ONLY):
        raise ValueError(f"mode must be {SHADOW!r} or {CHAMPION_ONLY!r}")
    current = registry.routing(model_name)
    routing = current.with_(mode=mode, share=0.0, reason=reason, tripped=None)
    registry.set_routing(model_name, routing, run_id)
    return RolloutChange("champion-only" if mode == CHAMPION_ONLY else "shadow", reason)


def rollback_live(
    registry: ModelRegistry,
    model_name: str,
    target: str = "auto",
    to_version: int | None = None,
    reason: str = "rollback",
    run_id: str | None = None,
) -> RolloutChange:
    """Undo the latest live change: ``canary`` ends a canary (back to shadow), ``promotion``
    moves the champion alias back (to ``to_version`` or the previous champion), ``auto`` the
    canary when one runs, else the promotion."""
    routing: Routing = registry.routing(model_name)
    if target == "auto":
        target = "canary" if routing.mode == CANARY and to_version is None else "promotion"
    if target == "canary":
        if routing.mode != CANARY:
            raise ValueError(f"{model_name} runs no canary (routing: {routing.mode})")
        registry.set_routing(
            model_name,
            routing.with_(mode=SHADOW, share=0.0, reason=f"canary rolled back: {reason}"),
            run_id,
        )
        return RolloutChange("rollback-canary", f"the champion decides every event again: {reason}")
    if target != "promotion":
        raise ValueError(f"rollback target must be auto, canary or promotion, not {target!r}")
    version = registry.rollback(model_name, to_version, reason=reason, run_id=run_id)
    if routing.mode == CANARY:  # a canary of the demoted model makes no sense any more
        registry.set_routing(
            model_name,
            routing.with_(mode=SHADOW, share=0.0, reason=f"promotion rolled back: {reason}"),
            run_id,
        )
    return RolloutChange("rollback-promotion", f"champion is now v{version}: {reason}")

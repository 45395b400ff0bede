"""Which model decides a live event: the champion, with the challenger in shadow or on canary.

The routing is a small JSON document kept on the registered model in MLflow (tag ``routing``),
beside the ``champion``/``challenger`` aliases: the scorer's watcher reads both in the one query
it already makes to notice a promotion, so a change of routing (a canary started, a rollback, a
guard trip) reaches every live scorer within ``SLIPWAY_SERVING_RELOAD_SECONDS`` without a
restart, exactly like a promotion does.

Modes:

* ``shadow`` (the default whenever a challenger exists): every event is scored by both models on
  the same features; the champion decides; the challenger's score is logged beside it.
* ``canary``: as shadow, but the events of a stable ``share`` of entities are decided by the
  challenger (the champion's score is then the one logged beside it). An entity's bucket is
  ``sha256(salt ":" entity value)`` read as a number in [0, 1): the same customer always lands
  in the same bucket, so one customer sees one model for the whole canary; a new salt (by
  default the challenger's version) reshuffles for the next canary.
* ``champion``: the challenger is not even scored (shadow switched off).

A guard trip or a rollback sets the mode back to ``shadow`` and records why (``tripped``,
``reason``); the scorer reports it with every decision.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

SHADOW = "shadow"
CANARY = "canary"
CHAMPION_ONLY = "champion"
MODES = (SHADOW, CANARY, CHAMPION_ONLY)
ROUTING_TAG = "routing"
_SCALE = float(1 << 64)


@dataclass(frozen=True)
class GuardLimits:
    """When the canary guard sends traffic back to the champion.

    Judged on the canary's events (decided by the challenger, scored by the champion in shadow on
    the same features) once ``min_events`` of them are in the guard's window:

    * ``max_score_psi``: population stability index of the challenger's scores against the
      champion's on those same events (bins: deciles of the champion's scores);
    * ``max_flag_rate_ratio`` / ``max_flag_rate_delta``: the challenger flags more than this
      multiple *and* this many points above the champion's flag rate on the same events;
    * ``max_error_rate``: share of events the challenger failed to score (the champion decided);
    * ``max_latency_ms``: the challenger's model time per pass, p95, above the champion's by more
      than this.
    """

    min_events: int = 200
    window: int = 2000
    max_score_psi: float = 0.25
    max_flag_rate_ratio: float = 2.0
    max_flag_rate_delta: float = 0.02
    max_error_rate: float = 0.01
    max_latency_ms: float = 20.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> GuardLimits:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


@dataclass(frozen=True)
class Routing:
    """The routing document (see the module docstring)."""

    mode: str = SHADOW
    share: float = 0.0
    entity: str | None = None  # None: the use case's first entity column
    salt: str | None = None  # None: "v<challenger version>"
    challenger_version: int | None = None  # the canary is for this version only
    limits: GuardLimits = field(default_factory=GuardLimits)
    reason: str = "default: a challenger runs in shadow"
    set_at: str | None = None
    tripped: str | None = None  # the guard's reason, when it sent traffic back

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"routing mode must be one of {MODES}, got {self.mode!r}")
        if not 0.0 <= float(self.share) <= 1.0:
            raise ValueError(f"canary share must be in [0, 1], got {self.share}")

    # -- (de)serialisation --------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Routing:
        if not text:
            return cls()
        data = json.loads(text)
        data["limits"] = GuardLimits.from_dict(data.get("limits"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_(self, **changes: Any) -> Routing:
        return replace(self, set_at=dt.datetime.now(dt.UTC).isoformat(), **changes)

    # -- routing ------------------------------------------------------------------------------
    def effective(self, challenger_version: int | None) -> Routing:
        """What applies to the challenger loaded now: a canary set for another version (or
        for no challenger at all) is shadow only."""
        if challenger_version is None:
            return replace(self, mode=CHAMPION_ONLY, share=0.0)
        if self.mode == CANARY and self.challenger_version not in (None, challenger_version):
            return replace(
                self,
                mode=SHADOW,
                share=0.0,
                reason=f"canary was set for v{self.challenger_version}, "
                f"the challenger is v{challenger_version}: shadow only",
            )
        return self

    def salt_for(self, challenger_version: int | None) -> str:
        return self.salt if self.salt is not None else f"v{challenger_version}"

    def rule(self, entity: str, challenger_version: int | None) -> str:
        """The routing rule in words, recorded with each decision."""
        if self.mode != CANARY:
            return self.mode
        return (
            f"canary: sha256('{self.salt_for(challenger_version)}:' + {entity}) "
            f"< {self.share:g} -> challenger"
        )


def bucket(salt: str, value: Any) -> float:
    """The entity's stable position in [0, 1): the first 8 bytes of sha256(salt ':' value)."""
    digest = hashlib.sha256(f"{salt}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def to_challenger(routing: Routing, salt: str, value: Any) -> bool:
    """Whether the canary sends this entity's events to the challenger."""
    if routing.mode != CANARY or routing.share <= 0.0 or value is None:
        return False
    return bucket(salt, value) < routing.share

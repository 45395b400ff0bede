"""Online scoring: one transaction (or a list) in, the champion's score out.

``OnlineScorer`` (``slipway.serving.scorer``) is framework-free and usable from any Python
process; ``slipway.serving.app`` wraps it in a small FastAPI service (``make serve``). Imports
here are lazy so that ``import slipway.serving`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slipway.serving.champion import ModelLoadError, NoChampionError
    from slipway.serving.request import InvalidTransaction
    from slipway.serving.scorer import OnlineScorer, ScoreResult

__all__ = ["InvalidTransaction", "ModelLoadError", "NoChampionError", "OnlineScorer", "ScoreResult"]

_LAZY = {
    "InvalidTransaction": "slipway.serving.request",
    "ModelLoadError": "slipway.serving.champion",
    "NoChampionError": "slipway.serving.champion",
    "OnlineScorer": "slipway.serving.scorer",
    "ScoreResult": "slipway.serving.scorer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

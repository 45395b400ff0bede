"""Window features declared once (``UseCase.window_features``), computed twice, equal by test.

* ``semantics``: the definition in plain Python (the reference; the embedded aggregator runs it);
* ``aggregator``: the online contract (:class:`WindowAggregator`, :class:`WindowResult`) and
  :func:`open_aggregator` (``redis://`` -> Redis, empty -> an embedded SQLite file);
* ``embedded`` / ``redis_aggregator``: the two online implementations;
* ``backfill``: the Spark backfill of the offline table ``features.<name>`` (one row per event).
"""

from slipway.windows.aggregator import (
    WindowAggregator,
    WindowResult,
    WindowStoreUnavailable,
    aggregator_from_settings,
    open_aggregator,
)
from slipway.windows.semantics import InvalidWindowEvent, empty_features

__all__ = [
    "InvalidWindowEvent",
    "WindowAggregator",
    "WindowResult",
    "WindowStoreUnavailable",
    "aggregator_from_settings",
    "empty_features",
    "open_aggregator",
]

"""A seeded card processor that writes a realistic landing zone (see ``Simulator``).

It plays the upstream of the fraud use case: daily transaction files with manifests, chargebacks
that arrive days later, and reference snapshots, with drift, new fraud and broken deliveries
switchable from a given day. Same config, same bytes.
"""

from slipway.usecases.fraud.simulator.config import FX_TO_EUR, SimConfig
from slipway.usecases.fraud.simulator.engine import RangeSummary, Simulator
from slipway.usecases.fraud.simulator.scenarios import (
    BrokenUpstream,
    CovariateDrift,
    NewFraudPattern,
    Scenario,
    parse_scenario,
)

__all__ = [
    "FX_TO_EUR",
    "BrokenUpstream",
    "CovariateDrift",
    "NewFraudPattern",
    "RangeSummary",
    "Scenario",
    "SimConfig",
    "Simulator",
    "parse_scenario",
]

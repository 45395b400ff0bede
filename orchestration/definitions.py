"""The code location: every deployed use case's capabilities, merged, plus the resources.

Each capability folder under ``assets/`` ends in ``definitions(usecase) -> dg.Definitions``
(its assets, checks, jobs, sensors and schedules); this loader calls every one of them for every
use case of ``deployed_usecases()`` (``SLIPWAY_USECASES``, default: all registered) and merges
them. Nothing here knows a capability's insides, and nothing in a capability knows another use
case: keys, groups, jobs, sensors, schedules and pools all start with the use case's name.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import dagster as dg

import assets.automation
import assets.feast
import assets.features
import assets.gold
import assets.ingestion
import assets.monitoring
import assets.scoring
import assets.streaming
import assets.training
from assets.gold.assets import dbt_resource
from orchestration.resources import build_resources
from slipway.usecase import UseCase
from slipway.usecases import deployed_usecases

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

# In graph order; each returns that capability's dg.Definitions for one use case.
CAPABILITIES: tuple[Callable[[UseCase], dg.Definitions], ...] = (
    assets.ingestion.definitions,
    assets.gold.definitions,
    assets.features.definitions,
    assets.feast.definitions,
    assets.training.definitions,
    assets.scoring.definitions,
    assets.monitoring.definitions,
    assets.streaming.definitions,
    assets.automation.definitions,
)


def usecase_definitions(usecase: UseCase) -> dg.Definitions:
    """Everything of one use case (no resources)."""
    return dg.Definitions.merge(*(capability(usecase) for capability in CAPABILITIES))


def build_definitions(usecases: Sequence[UseCase] | None = None) -> dg.Definitions:
    """The code location for ``usecases`` (default: the deployed ones), with the resources."""
    usecases = list(usecases) if usecases is not None else deployed_usecases()
    return dg.Definitions.merge(
        *(usecase_definitions(u) for u in usecases),
        dg.Definitions(resources={**build_resources(), "dbt": dbt_resource()}),
    )


defs = build_definitions()

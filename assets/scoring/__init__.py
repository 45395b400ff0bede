"""Batch scoring: each day's examples scored by the champion, the challenger in shadow."""

from __future__ import annotations

import dagster as dg

from assets.scoring.assets import scoring_definitions
from slipway.usecase import UseCase


def definitions(usecase: UseCase) -> dg.Definitions:
    return dg.Definitions(assets=scoring_definitions(usecase))

"""Feast: the use case's registry (`feast apply` as an asset) and its online store."""

from __future__ import annotations

import dagster as dg

from assets.feast.assets import feast_definitions
from slipway.usecase import UseCase


def definitions(usecase: UseCase) -> dg.Definitions:
    return dg.Definitions(assets=feast_definitions(usecase))

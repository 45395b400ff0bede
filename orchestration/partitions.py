"""Partitions shared by the graph: one per landing day."""

from __future__ import annotations

import dagster as dg

from slipway.settings import load_settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=load_settings().partition_start,
    timezone="UTC",
    fmt="%Y-%m-%d",
)

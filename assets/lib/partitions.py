"""Partitions shared by the graph: one per landing day."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from slipway.settings import load_settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=load_settings().partition_start,
    timezone="UTC",
    fmt="%Y-%m-%d",
)


def partition_dates(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> tuple[dt.date, dt.date]:
    """The run's partition key range as inclusive dates (a daily window's end is exclusive)."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()

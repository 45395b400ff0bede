"""Partitions shared by the graph: one per landing day, from each use case's first day."""

from __future__ import annotations

import datetime as dt
from functools import cache

import dagster as dg

from slipway.settings import load_settings
from slipway.usecase import UseCase


def partition_start(usecase: UseCase) -> str:
    """The use case's first daily partition (its own ``partition_start``, else the settings')."""
    return usecase.partition_start or load_settings().partition_start


@cache
def _daily(start: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC", fmt="%Y-%m-%d")


def daily_partitions(usecase: UseCase) -> dg.DailyPartitionsDefinition:
    """The use case's daily partitions; one definition object per start date, so every asset of
    a use case (and any two use cases starting the same day) shares it."""
    return _daily(partition_start(usecase))


def partition_dates(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> tuple[dt.date, dt.date]:
    """The run's partition key range as inclusive dates (a daily window's end is exclusive)."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()

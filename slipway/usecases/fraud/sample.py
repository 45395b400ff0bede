"""The fraud use case's sample data: the seeded simulator, written into an empty landing area."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from slipway.ingest.landing import list_days


def write_sample(
    landing_root: str,
    start: str,
    days: int,
    progress: Callable[[str], None] | None = None,
    **overrides: int,
) -> list[dt.date]:
    """Simulate ``days`` days from ``start`` (overrides: ``transactions_per_day``, ``customers``)."""
    from slipway.usecases.fraud.simulator import SimConfig, Simulator

    config = SimConfig(start_date=dt.date.fromisoformat(start), days=days, **overrides)
    summary = Simulator(config).write_range(landing_root, progress=progress)
    if progress is not None:
        progress(
            f"simulated {summary.transactions:,} transactions, fraud rate {summary.fraud_rate:.2%}"
        )
    return list_days(landing_root, "transactions")

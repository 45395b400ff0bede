"""Fraud labels as the processor reports them: chargebacks that arrive days after the payment.

Each fraud *event* (a burst, a takeover, a card-testing run) gets one delay, so all of its
transactions are reported together, as a cardholder disputing a statement would. Each fraud
transaction gets exactly one chargeback; legit ones never do, which is why a transaction is
only known legit once ``max(label_delay_days)`` days have passed without one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from slipway.usecases.fraud.simulator.clock import HOUR_US, iso_utc
from slipway.usecases.fraud.simulator.config import CHARGEBACK_FIELDS, SimConfig

S_LABELS = 10  # random stream base; + fraud kind


def draw_labels(
    cfg: SimConfig, day: dt.date, kind: int, event: np.ndarray, n_events: int
) -> tuple[np.ndarray, np.ndarray]:
    """Chargeback delay (days) and report time of day for each row, drawn once per event."""
    rng = np.random.default_rng([cfg.seed, day.toordinal(), S_LABELS + kind])
    lo, hi = cfg.label_delay_days
    delay = rng.integers(lo, hi + 1, size=n_events)
    report = rng.integers(6 * HOUR_US, 20 * HOUR_US, size=n_events)
    return delay[event], report[event]


def label_frame(
    day: dt.date,
    tx_id: np.ndarray,
    fraud_type: np.ndarray,
    delay: np.ndarray,
    report_us: np.ndarray,
) -> pd.DataFrame:
    """The future chargebacks of one day's frauds, with the ordinal of the day they are reported."""
    report_ordinal = day.toordinal() + delay.astype(np.int64)
    return pd.DataFrame(
        {
            "transaction_id": tx_id.astype(object),
            "reported_at": iso_utc(report_ordinal, report_us).astype(object),
            "fraud_type": fraud_type.astype(object),
            "report_ordinal": report_ordinal,
        }
    )


def source_days(cfg: SimConfig, day: dt.date) -> list[dt.date]:
    """Transaction days whose frauds can be reported on ``day`` (none before the start)."""
    lo, hi = cfg.label_delay_days
    days = [day - dt.timedelta(days=d) for d in range(hi, lo - 1, -1)]
    return [d for d in days if d >= cfg.start_date]


def reported_on(frames: Iterable[pd.DataFrame], day: dt.date) -> pd.DataFrame:
    """The chargebacks reported on ``day``, in report order: the landed chargeback records."""
    ordinal = day.toordinal()
    picked = [f[f["report_ordinal"] == ordinal] for f in frames]
    picked = [p for p in picked if len(p)]
    if not picked:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CHARGEBACK_FIELDS})
    out = pd.concat(picked, ignore_index=True)
    out = out.sort_values(["reported_at", "transaction_id"], kind="stable", ignore_index=True)
    return out[list(CHARGEBACK_FIELDS)]

"""Request-time features: the incoming transaction combined with the customer's stored state.

Defined once, as a pandas function, and used everywhere through Feast's on-demand feature view
``transaction_context``: by the point-in-time training set, by batch scoring and by the online
scorer. The stored state (``customer_behaviour``) describes the customer after their previous
transaction, so these features are exactly what was knowable when the transaction arrived.

Inputs (columns): the request fields ``amount_eur``, ``country``, ``device_id``, ``event_epoch``
(seconds since the epoch, UTC) and the stored features ``last_txn_epoch``, ``amount_avg_30d``,
``countries_30d``, ``devices_30d``, ``home_country``, ``signup_epoch``. Missing state (a new
customer, or state past its TTL) gives NaN where there is nothing to compare with and 1.0 for
novelty (everything is new to a customer we know nothing about).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400.0
NIGHT_HOURS = 6  # 00:00-05:59 UTC

OUTPUTS: dict[str, str] = {
    "seconds_since_last_txn": "float",
    "amount_to_avg_30d": "float",
    "is_new_country": "float",
    "is_new_device": "float",
    "is_foreign": "float",
    "account_age_days": "float",
    "hour_of_day": "float",
    "is_night": "float",
}


def _novelty(values: pd.Series, seen: pd.Series) -> np.ndarray:
    out = np.ones(len(values), dtype="float64")
    for i, (value, known) in enumerate(zip(values.tolist(), seen.tolist(), strict=True)):
        if (
            known is not None
            and not (isinstance(known, float) and np.isnan(known))
            and len(known) > 0
        ):
            out[i] = 0.0 if value in set(known) else 1.0
    return out


def _num(df: pd.DataFrame, name: str) -> pd.Series:
    return (
        pd.to_numeric(df[name], errors="coerce").astype("float64")
        if name in df
        else pd.Series(np.nan, index=df.index)
    )


def transaction_context(inputs: pd.DataFrame) -> pd.DataFrame:
    """The request-time features for each row of ``inputs`` (same index, float columns)."""
    t = _num(inputs, "event_epoch")
    out = pd.DataFrame(index=inputs.index)
    since = t - _num(inputs, "last_txn_epoch")
    out["seconds_since_last_txn"] = since.where(since >= 0)
    avg = _num(inputs, "amount_avg_30d")
    out["amount_to_avg_30d"] = (_num(inputs, "amount_eur") / avg.where(avg > 0)).round(6)
    out["is_new_country"] = (
        _novelty(inputs["country"], inputs["countries_30d"]) if "countries_30d" in inputs else 1.0
    )
    out["is_new_device"] = (
        _novelty(inputs["device_id"], inputs["devices_30d"]) if "devices_30d" in inputs else 1.0
    )
    home = (
        inputs["home_country"]
        if "home_country" in inputs
        else pd.Series(None, index=inputs.index, dtype=object)
    )
    foreign = (inputs["country"].astype(object) != home.astype(object)).astype("float64")
    out["is_foreign"] = foreign.where(home.notna())
    out["account_age_days"] = ((t - _num(inputs, "signup_epoch")) / SECONDS_PER_DAY).round(4)
    hour = np.floor((t % SECONDS_PER_DAY) / 3600.0)
    out["hour_of_day"] = hour
    out["is_night"] = (hour < NIGHT_HOURS).astype("float64").where(hour.notna())
    return out

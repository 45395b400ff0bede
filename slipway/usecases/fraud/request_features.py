"""Request-time features: the incoming transaction combined with the customer's stored state.

Defined once, as a pandas function, and used everywhere through Feast's on-demand feature view
``transaction_context``: by the point-in-time training set, by batch scoring and by the online
scorer. The window features (``customer_behaviour``) describe the customer's transactions that
arrived before this one (offline: the transaction's own row; online: the window aggregator), so
these features are exactly what was knowable when the transaction arrived.

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


def _num(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def transaction_context(inputs: pd.DataFrame) -> pd.DataFrame:
    """The request-time features for each row of ``inputs`` (same index, float columns).

    Computed on numpy arrays and assembled once: it runs inside every online request.
    """
    n = len(inputs)
    t = _num(inputs, "event_epoch")
    with np.errstate(invalid="ignore", divide="ignore"):
        since = t - _num(inputs, "last_txn_epoch")
        avg = _num(inputs, "amount_avg_30d")
        ratio = np.round(_num(inputs, "amount_eur") / np.where(avg > 0, avg, np.nan), 6)
        hour = np.floor((t % SECONDS_PER_DAY) / 3600.0)
    country = (
        inputs["country"].to_numpy(dtype=object)
        if "country" in inputs
        else np.full(n, None, dtype=object)
    )
    home = (
        inputs["home_country"].to_numpy(dtype=object)
        if "home_country" in inputs
        else np.full(n, None, dtype=object)
    )
    home_known = pd.notna(home)
    out = {
        "seconds_since_last_txn": np.where(since >= 0, since, np.nan),
        "amount_to_avg_30d": ratio,
        "is_new_country": _novelty(inputs["country"], inputs["countries_30d"])
        if "countries_30d" in inputs
        else np.ones(n),
        "is_new_device": _novelty(inputs["device_id"], inputs["devices_30d"])
        if "devices_30d" in inputs
        else np.ones(n),
        "is_foreign": np.where(home_known, (country != home).astype("float64"), np.nan),
        "account_age_days": np.round((t - _num(inputs, "signup_epoch")) / SECONDS_PER_DAY, 4),
        "hour_of_day": hour,
        "is_night": np.where(np.isnan(hour), np.nan, (hour < NIGHT_HOURS).astype("float64")),
    }
    return pd.DataFrame(out, index=inputs.index)

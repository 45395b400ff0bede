"""Request-time features: the incoming transaction combined with the customer's stored state.

Defined once, on columns, and used everywhere through Feast's on-demand feature view
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

from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from slipway.featurestore.on_demand import (
    Columns,
    columnar,
    is_arrow,
    is_null,
    numeric,
    objects,
    values_of,
)

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


_VECTOR_ROWS = 1024  # from this many rows on, novelty is computed on flattened arrays


def _novelty(values: Any, seen: Any) -> np.ndarray:
    """1.0 where the value is not among the row's seen values, 0.0 where it is; 1.0 when
    nothing was seen (None, NaN or empty). Online (a few rows) the plain loop is cheapest; a
    training set's 200k rows with ~10 seen devices each take one vectorised comparison; from
    the offline store (Arrow), the lists are compared without leaving Arrow."""
    if is_arrow(values) and is_arrow(seen):
        out = _novelty_arrow(values, seen)
        if out is not None:
            return out
    if len(values) >= _VECTOR_ROWS:
        try:
            return _novelty_vectorised(objects(values), objects(seen))
        except (TypeError, ValueError):  # pd.NA compared, a seen value not a list: the loop
            pass
    return _novelty_loop(values_of(values), values_of(seen))


def _novelty_loop(values: list[object], seen: list[object]) -> np.ndarray:
    out = np.ones(len(values), dtype="float64")
    for i, (value, known) in enumerate(zip(values, seen, strict=True)):
        if not is_null(known) and len(known) > 0:  # type: ignore[arg-type]
            out[i] = 0.0 if value in set(known) else 1.0  # type: ignore[arg-type]
    return out


def _novelty_vectorised(value: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The loop's answer, with string values compared to the flattened seen lists at once
    (``str ==`` is set membership for strings); other values (None, NA) go through the loop."""
    n = len(known)
    counts = np.zeros(n, dtype=np.int64)
    present = ~pd.isna(known)
    counts[present] = np.fromiter(map(len, known[present]), dtype=np.int64)
    is_str = np.fromiter(map(isinstance, value, repeat(str, n)), dtype=bool, count=n)
    out = np.ones(n, dtype="float64")
    fast = (counts > 0) & is_str
    if fast.any():
        flat = np.concatenate(known[fast], dtype=object)
        hits = np.asarray(flat == np.repeat(value[fast], counts[fast]), dtype=bool)
        starts = np.concatenate(([0], np.cumsum(counts[fast])[:-1]))
        out[fast] = np.where(np.logical_or.reduceat(hits, starts), 0.0, 1.0)
    slow = (counts > 0) & ~is_str
    if slow.any():
        out[slow] = _novelty_loop(value[slow].tolist(), known[slow].tolist())
    return out


def _novelty_arrow(
    values: pa.ChunkedArray | pa.Array, seen: pa.ChunkedArray | pa.Array
) -> np.ndarray | None:
    """The loop's answer on Arrow columns (None where the types do not allow it: the caller
    then takes the pandas route). A missing value counts as seen where the list holds a null
    item, as ``None in set(known)`` does."""
    if isinstance(seen, pa.ChunkedArray):
        seen = seen.combine_chunks()
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (pa.types.is_list(seen.type) or pa.types.is_large_list(seen.type)):
        return None
    item = seen.type.value_type
    if not (pa.types.is_string(item) or pa.types.is_large_string(item)):
        return None
    if values.type != item:
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            return None
        values = values.cast(item)
    n = len(seen)
    if n == 0:
        return np.ones(0, dtype="float64")
    # Items and their rows from the offsets themselves: a null list may still span items in
    # the child array, which list_flatten skips but list_parent_indices does not.
    offsets = np.asarray(seen.offsets.to_numpy(), dtype=np.int64)
    flat = seen.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    parents = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    listed = np.asarray(seen.is_valid().to_numpy(zero_copy_only=False), dtype=bool)[parents]
    equal = pc.equal(flat, values.take(pa.array(parents)))
    # A null value meets a null item: both null; a valid value meets an equal item.
    item_null = np.asarray(flat.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    value_null = np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    hit = np.asarray(pc.fill_null(equal, False).to_numpy(zero_copy_only=False), dtype=bool)
    hit = (hit | (item_null & value_null[parents])) & listed  # items of null lists: none
    found = np.bincount(parents[hit], minlength=n) > 0  # so a null or empty list is never found
    return np.where(found, 0.0, 1.0)


def _num(inputs: Columns, name: str, n: int) -> np.ndarray:
    return numeric(inputs[name]) if name in inputs else np.full(n, np.nan)


def _obj(inputs: Columns, name: str, n: int) -> np.ndarray:
    return objects(inputs[name]) if name in inputs else np.full(n, None, dtype=object)


@columnar
def transaction_context(inputs: Columns, n: int) -> dict[str, np.ndarray]:
    """The request-time features for each of the ``n`` rows of ``inputs`` (float columns).

    Written on columns (``ColumnarTransform``): Feast calls it with a frame, the live path with
    the pass's lists; it runs inside every online request.
    """
    t = _num(inputs, "event_epoch", n)
    with np.errstate(invalid="ignore", divide="ignore"):
        since = t - _num(inputs, "last_txn_epoch", n)
        avg = _num(inputs, "amount_avg_30d", n)
        ratio = np.round(_num(inputs, "amount_eur", n) / np.where(avg > 0, avg, np.nan), 6)
        hour = np.floor((t % SECONDS_PER_DAY) / 3600.0)
    country = _obj(inputs, "country", n)
    home = _obj(inputs, "home_country", n)
    home_known = pd.notna(home)
    return {
        "seconds_since_last_txn": np.where(since >= 0, since, np.nan),
        "amount_to_avg_30d": ratio,
        "is_new_country": _novelty(inputs["country"], inputs["countries_30d"])
        if "countries_30d" in inputs
        else np.ones(n),
        "is_new_device": _novelty(inputs["device_id"], inputs["devices_30d"])
        if "devices_30d" in inputs
        else np.ones(n),
        "is_foreign": np.where(home_known, (country != home).astype("float64"), np.nan),
        "account_age_days": np.round((t - _num(inputs, "signup_epoch", n)) / SECONDS_PER_DAY, 4),
        "hour_of_day": hour,
        "is_night": np.where(np.isnan(hour), np.nan, (hour < NIGHT_HOURS).astype("float64")),
    }

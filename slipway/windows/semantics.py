"""The window semantics in plain Python: what every implementation must compute.

For event ``e`` of entity ``k`` and an aggregation with window ``W``, the value aggregates ``k``'s
events ``x`` that arrived before ``e`` -- ``(arrival_x, id_x) < (arrival_e, id_e)`` -- with event
time ``t_e - W <= t_x < t_e`` (whole microseconds). Arrival order, not processing order, decides
what "before" means, so an implementation that filters on it gives the same answer whatever order
it happened to see the events in, and a redelivered event gets the answer it got the first time.

Values are encoded once (:class:`EventCodec`): times as integer microseconds since the epoch,
fixed-point numbers as integers of ``10**-decimals`` units (sums are exact in any order), strings
as strings. :func:`raw_aggregates` reduces the earlier events to integers and sets, and
:func:`finalize` turns those into feature values with the same floating-point steps the Spark
backfill takes (one division, in the same order), so the two agree bit for bit.

The embedded aggregator runs this module as is; the Redis aggregator runs the same reduction in
Lua and finalizes here; the Spark backfill is tested against it.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from slipway.usecase import NUMERIC_WINDOW_OPS, WindowAggregation, WindowFeatureSet

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ONE_MICROSECOND = dt.timedelta(microseconds=1)
MICROS_PER_SECOND = 1_000_000

InputKind = Literal["time", "number", "string"]


class InvalidWindowEvent(ValueError):
    """An event the aggregator cannot place: a missing key, time or arrival, or a bad value."""


def micros(value: Any) -> int:
    """Whole microseconds since the epoch of a timestamp (datetime, pandas Timestamp, ISO text).

    A naive time is UTC, as silver's Spark session reads it. It runs twice per event: a plain
    UTC datetime and a pandas Timestamp (whose ``value`` is its exact nanoseconds since the
    epoch, in UTC; naive ones count wall time as UTC, as above) take no timedelta arithmetic
    beyond one subtraction, which is what a Timestamp's own subtraction costs (~8 µs) avoids.
    Both give ``floor((t - epoch) / 1 µs)``, as the general path does.
    """
    if type(value) is dt.datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return (value - EPOCH) // ONE_MICROSECOND
    nanos = getattr(value, "value", None)
    if type(nanos) is int and isinstance(value, dt.datetime):  # pandas Timestamp
        return nanos // 1000
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.strip())
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return (value - EPOCH) // ONE_MICROSECOND
    raise TypeError(f"expected a timestamp, got {type(value).__name__} {value!r}")


def to_units(value: float, decimals: int) -> int:
    """``value`` in integer ``10**-decimals`` units, rounded half away from zero (Spark's round)."""
    scaled = float(value) * 10**decimals
    return int(math.copysign(math.floor(abs(scaled) + 0.5), scaled))


def input_kinds(fs: WindowFeatureSet) -> dict[str, InputKind]:
    """How each input column is stored: times, fixed-point numbers or strings."""
    kinds: dict[str, InputKind] = {}
    for agg in fs.aggregations:
        if agg.input is None:
            continue
        if agg.input in (fs.event_time, fs.arrival):
            kind: InputKind = "time"
        elif agg.op in NUMERIC_WINDOW_OPS or agg.decimals is not None:
            kind = "number"
        else:
            kind = "string"
        if kinds.setdefault(agg.input, kind) != kind:
            raise ValueError(
                f"{fs.name}: {agg.input!r} is aggregated both as a {kinds[agg.input]} and as a {kind}"
            )
    return kinds


def decimals_of(fs: WindowFeatureSet, column: str) -> int:
    for agg in fs.aggregations:
        if agg.input == column and agg.decimals is not None:
            return agg.decimals
    return 0


def window_micros(fs: WindowFeatureSet, agg: WindowAggregation) -> int:
    return fs.window_of(agg) // ONE_MICROSECOND


class WindowEvent(NamedTuple):
    """One event as the state keeps it: keys, times in microseconds, encoded inputs.

    A named tuple, not a dataclass: the embedded aggregator builds one per stored event read.
    """

    event_id: str
    entity: str
    t_us: int
    a_us: int
    values: tuple[Any, ...]  # one per ``fs.inputs``: int (time, units), str, or None

    @property
    def arrival_key(self) -> tuple[int, str]:
        return (self.a_us, self.event_id)


class EventCodec:
    """Turns an incoming event mapping into a :class:`WindowEvent` for one feature set."""

    def __init__(self, fs: WindowFeatureSet) -> None:
        self.fs = fs
        self.kinds = input_kinds(fs)
        self._plan = [(c, k, decimals_of(fs, c)) for c, k in self.kinds.items()]

    def encode(self, event: Mapping[str, Any]) -> WindowEvent:
        """The event as the state keeps it; :class:`InvalidWindowEvent` says what is wrong.

        Written for the per-event path (the aggregators call it once per event): one lookup per
        column, the parse chosen once per column in ``__init__``.
        """
        fs = self.fs
        get = event.get
        entity, event_id = get(fs.entity), get(fs.event_id)
        t_raw, a_raw = get(fs.event_time), get(fs.arrival)
        if _null(entity) or _null(event_id) or _null(t_raw) or _null(a_raw):
            missing = [
                c for c in (fs.entity, fs.event_id, fs.event_time, fs.arrival) if _null(get(c))
            ]
            raise InvalidWindowEvent(f"{fs.name}: event lacks {', '.join(missing)}")
        try:
            t_us = micros(t_raw)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidWindowEvent(f"{fs.name}: {fs.event_time}={t_raw!r}: {exc}") from exc
        try:
            a_us = micros(a_raw)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidWindowEvent(f"{fs.name}: {fs.arrival}={a_raw!r}: {exc}") from exc
        values: list[Any] = []
        for column, kind, decimals in self._plan:
            raw = get(column)
            if raw is None or (isinstance(raw, float) and raw != raw):  # null or NaN
                values.append(None)
            elif kind == "string":
                values.append(raw if type(raw) is str else str(raw))
            elif kind == "number":
                values.append(_field(fs, column, to_units, raw, decimals))
            else:
                values.append(_field(fs, column, micros, raw))
        return WindowEvent(
            event_id if type(event_id) is str else str(event_id),
            entity if type(entity) is str else str(entity),
            t_us,
            a_us,
            tuple(values),
        )


def _field(fs: WindowFeatureSet, column: str, parse: Any, value: Any, *args: Any) -> Any:
    try:
        return parse(value, *args)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidWindowEvent(f"{fs.name}: {column}={value!r}: {exc}") from exc


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class Reducer:
    """The reduction and finalizing step for one feature set, resolved once (it runs per event).

    ``raw(history, event)`` is the integer/set reduction of the entity's earlier events, one
    entry per aggregation: ``count``/``distinct_count``: int; ``sum``: int units; ``mean``:
    (int units, int n); ``max``: int units or None; ``recent_set``: sorted list; ``last``: the
    encoded value of the latest earlier event (by event time, then arrival) or None.
    ``finalize(raw)`` turns it into feature values.
    """

    def __init__(self, fs: WindowFeatureSet) -> None:
        self.fs = fs
        column = {c: i for i, c in enumerate(fs.inputs)}
        kinds = input_kinds(fs)
        self.names = fs.feature_names
        self.ops = tuple(a.op for a in fs.aggregations)
        self.widths = tuple(window_micros(fs, a) for a in fs.aggregations)
        self.slots = tuple(column[a.input] if a.input is not None else -1 for a in fs.aggregations)
        self.scales = tuple(
            10 ** decimals_of(fs, a.input) if a.input is not None else 1 for a in fs.aggregations
        )
        self.kinds = tuple(
            kinds[a.input] if a.input is not None else "string" for a in fs.aggregations
        )

    def raw(self, history: Iterable[WindowEvent], event: WindowEvent) -> list[Any]:
        t_e, key = event.t_us, event.arrival_key
        earlier = [
            x
            for x in history
            if x.t_us < t_e and x.entity == event.entity and (x.a_us, x.event_id) < key
        ]
        in_window: dict[int, list[WindowEvent]] = {}
        out: list[Any] = []
        for op, width, slot in zip(self.ops, self.widths, self.slots, strict=True):
            rows = in_window.get(width)
            if rows is None:
                low = t_e - width
                rows = in_window[width] = [x for x in earlier if x.t_us >= low]
            if op == "count":
                out.append(len(rows))
                continue
            if op == "last":
                latest = max(
                    (
                        (x.t_us, x.a_us, x.event_id, x.values[slot])
                        for x in rows
                        if x.values[slot] is not None
                    ),
                    default=None,
                )
                out.append(None if latest is None else latest[3])
                continue
            values = [x.values[slot] for x in rows if x.values[slot] is not None]
            if op == "sum":
                out.append(sum(values))
            elif op == "mean":
                out.append((sum(values), len(values)))
            elif op == "max":
                out.append(max(values, default=None))
            elif op == "distinct_count":
                out.append(len(set(values)))
            else:  # recent_set
                out.append(sorted(set(values)))
        return out

    def finalize(self, raw: Sequence[Any]) -> dict[str, Any]:
        """Feature values from :meth:`raw` (or the Lua script's identical reduction)."""
        out: dict[str, Any] = {}
        for name, op, scale, kind, value in zip(
            self.names, self.ops, self.scales, self.kinds, raw, strict=True
        ):
            if op in ("count", "distinct_count"):
                out[name] = int(value)
            elif op == "sum":
                out[name] = int(value) / scale
            elif op == "mean":
                units, n = int(value[0]), int(value[1])
                out[name] = None if n == 0 else (units / n) / scale
            elif op == "max":
                out[name] = None if value is None else int(value) / scale
            elif op == "recent_set":
                out[name] = sorted(str(v) for v in value)
            elif value is None:  # last
                out[name] = None
            elif kind == "time":
                out[name] = int(value) / MICROS_PER_SECOND
            elif kind == "number":
                out[name] = int(value) / scale
            else:
                out[name] = str(value)
        return out


@functools.cache
def reducer(fs: WindowFeatureSet) -> Reducer:
    return Reducer(fs)


def raw_aggregates(
    fs: WindowFeatureSet, history: Iterable[WindowEvent], event: WindowEvent
) -> list[Any]:
    """The integer/set reduction of the entity's earlier events (see :class:`Reducer`)."""
    return reducer(fs).raw(history, event)


def finalize(fs: WindowFeatureSet, raw: Sequence[Any]) -> dict[str, Any]:
    """Feature values from :func:`raw_aggregates` (or the Lua script's identical reduction)."""
    return reducer(fs).finalize(raw)


def features_for(
    fs: WindowFeatureSet, history: Iterable[WindowEvent], event: WindowEvent
) -> dict[str, Any]:
    """The reference: ``event``'s features from any superset of its entity's earlier events."""
    return finalize(fs, raw_aggregates(fs, history, event))


def empty_features(fs: WindowFeatureSet) -> dict[str, Any]:
    """What an entity without history gets (counts and sums 0, means/max/last null, sets [])."""
    probe = WindowEvent("", "", 0, 0, tuple(None for _ in fs.inputs))
    return features_for(fs, (), probe)

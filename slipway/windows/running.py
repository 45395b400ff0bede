"""Incremental window state: per entity and window width, running aggregates that only the events
entering or leaving a window touch.

The definition (``semantics``) says: event ``e`` aggregates its entity's events that arrived
before it with event time in ``[t_e - W, t_e)``. Re-reducing the entity's whole horizon for every
event is exact but costs O(events in the horizon) per event. This module keeps, for every distinct
window width ``W`` of the declaration, a *running* aggregate ``R_W`` with one invariant:

    ``R_W`` aggregates exactly the state's events ``x`` with ``t_x >= lo_W``

(``lo_W`` starts at minus infinity). Inserting an event adds it to every ``R_W`` whose ``lo_W`` it
is not below; *advancing* ``lo_W`` to ``lo'`` subtracts the state's events with
``lo_W <= t_x < lo'`` (found by event time in the time-sorted events) and only ever raises
``lo_W``; pruning first advances every ``lo_W`` to the cutoff. Insertion order does not matter
(seeding, late events, redelivery all keep the invariant).

**The fast path** answers ``e`` from ``R_W`` when two conditions make the running aggregate equal
the definition: ``t_e`` is later than every event time in the state (so ``t_x < t_e`` holds for
all of them: advancing ``lo_W`` to ``t_e - W`` leaves exactly the window), and ``e``'s arrival key
``(a_e, id_e)`` is later than every arrival key the state ever held (so "arrived before ``e``"
holds for all of them). That is the common case: a stream consumed in arrival order whose event
times increase per entity. Every other event (late or out of order in event time, a tie on the
event time, a redelivery, events applied out of arrival order by several consumers) takes the
*exact path*: the reference reduction over the entity's kept events, as before. Both paths then
record the event in the running state the same way.

Structures that support removal: counts, sums and non-null counts (means) are integers that are
added and subtracted (exact: fixed-point units); distinct counts and recent sets are a value ->
multiplicity map (a value leaves the set when its last event leaves the window); ``max`` is a
value -> multiplicity map with the current maximum cached and recomputed only when the last event
holding it leaves; ``last`` needs no window state: the latest non-null event of the whole state by
``(t, a, id)`` is the answer when it lies inside the window, else nothing is.

The Redis aggregator runs the same algorithm in its Lua script (same invariant, same fast-path
test); this module is the embedded aggregator's in-process copy, and the plan both share.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from slipway.usecase import WindowFeatureSet
from slipway.windows.semantics import WindowEvent, window_micros


@dataclass(frozen=True)
class WindowPlan:
    """What the running state holds for a feature set, resolved once from the declaration.

    ``widths``: the distinct window widths (µs), indexed ``j``. ``sums``/``maxes``/``maps``: the
    distinct ``(j, slot)`` pairs that need a running sum (+ non-null count), a max, or a value map
    (``slot`` indexes ``fs.inputs``). ``lasts``: the input slots some ``last`` reads. ``aggs``: per
    aggregation ``(op, j, index into its structure list, width µs)``.
    """

    widths: tuple[int, ...]
    sums: tuple[tuple[int, int], ...]
    maxes: tuple[tuple[int, int], ...]
    maps: tuple[tuple[int, int], ...]
    lasts: tuple[int, ...]
    aggs: tuple[tuple[str, int, int, int], ...]

    @classmethod
    def of(cls, fs: WindowFeatureSet) -> WindowPlan:
        column = {c: i for i, c in enumerate(fs.inputs)}
        widths: list[int] = []
        sums: list[tuple[int, int]] = []
        maxes: list[tuple[int, int]] = []
        maps: list[tuple[int, int]] = []
        lasts: list[int] = []
        aggs: list[tuple[str, int, int, int]] = []

        def index(items: list, item: Any) -> int:
            if item not in items:
                items.append(item)
            return items.index(item)

        for agg in fs.aggregations:
            width = window_micros(fs, agg)
            j = index(widths, width)
            slot = column[agg.input] if agg.input is not None else -1
            if agg.op == "count":
                k = -1
            elif agg.op in ("sum", "mean"):
                k = index(sums, (j, slot))
            elif agg.op == "max":
                k = index(maxes, (j, slot))
            elif agg.op in ("distinct_count", "recent_set"):
                k = index(maps, (j, slot))
            else:  # last
                k = index(lasts, slot)
            aggs.append((agg.op, j, k, width))
        return cls(tuple(widths), tuple(sums), tuple(maxes), tuple(maps), tuple(lasts), tuple(aggs))

    def shape(self) -> list[Any]:
        """What a stored running state depends on (part of the Redis state's fingerprint)."""
        return [list(self.widths), self.sums, self.maxes, self.maps, self.lasts, self.aggs]


class MaxBag:
    """A multiset of integers with its maximum: add, remove, max in O(1) amortized.

    The maximum is cached; removing its last copy rescans the distinct values held (rare: only
    when the window's maximum itself leaves the window).
    """

    __slots__ = ("counts", "top")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.top: int | None = None

    def add(self, value: int) -> None:
        self.counts[value] = self.counts.get(value, 0) + 1
        if self.top is None or value > self.top:
            self.top = value

    def remove(self, value: int) -> None:
        left = self.counts[value] - 1
        if left:
            self.counts[value] = left
            return
        del self.counts[value]
        if value == self.top:
            self.top = max(self.counts) if self.counts else None


class EntityWindows:
    """One entity's kept events (sorted by event time) and its running aggregates."""

    __slots__ = (
        "_by_width",
        "arrival",
        "count",
        "events",
        "last",
        "lo",
        "maps",
        "maxes",
        "n",
        "plan",
        "sum",
        "t_max",
        "times",
        "version",
    )

    def __init__(self, plan: WindowPlan, events: list[WindowEvent] = (), version: int = 0) -> None:
        self.plan = plan
        self.version = version
        self.events: list[WindowEvent] = []
        self.times: list[int] = []
        self.t_max: int | None = None
        self.arrival: tuple[int, str] | None = None
        widths = len(plan.widths)
        self.lo: list[int | None] = [None] * widths  # None: minus infinity
        self.count = [0] * widths
        self.sum = [0] * len(plan.sums)
        self.n = [0] * len(plan.sums)
        self.maxes = [MaxBag() for _ in plan.maxes]
        self.maps: list[dict[str, int]] = [{} for _ in plan.maps]
        self.last: list[tuple[int, int, str, Any] | None] = [None] * len(plan.lasts)
        # per width: the (index, slot) pairs of its sums, maxes and maps
        self._by_width = [
            (
                [(k, s) for k, (w, s) in enumerate(plan.sums) if w == j],
                [(k, s) for k, (w, s) in enumerate(plan.maxes) if w == j],
                [(k, s) for k, (w, s) in enumerate(plan.maps) if w == j],
            )
            for j in range(widths)
        ]
        if events:
            # Start every lower bound at the newest event's window: a fast-path answer only ever
            # asks for a later one, so nothing below it is ever needed (and nothing needs
            # subtracting on the first answer).
            newest = max(e.t_us for e in events)
            self.lo = [newest - width for width in plan.widths]
        for event in sorted(events, key=lambda e: e.t_us):
            self.insert(event)

    # -- the invariant's operations -----------------------------------------------------------
    def insert(self, e: WindowEvent) -> None:
        """Record ``e`` in the kept events and in every running aggregate it belongs to."""
        t, values = e.t_us, e.values
        if self.t_max is None or t >= self.t_max:
            self.events.append(e)
            self.times.append(t)
            self.t_max = t
        else:
            pos = bisect.bisect_right(self.times, t)
            self.events.insert(pos, e)
            self.times.insert(pos, t)
        key = (e.a_us, e.event_id)
        if self.arrival is None or key > self.arrival:
            self.arrival = key
        for j, lo in enumerate(self.lo):
            if lo is not None and t < lo:
                continue
            self.count[j] += 1
            sums, maxes, maps = self._by_width[j]
            for k, s in sums:
                v = values[s]
                if v is not None:
                    self.sum[k] += v
                    self.n[k] += 1
            for k, s in maxes:
                v = values[s]
                if v is not None:
                    self.maxes[k].add(v)
            for k, s in maps:
                v = values[s]
                if v is not None:
                    held = self.maps[k]
                    held[v] = held.get(v, 0) + 1
        for k, s in enumerate(self.plan.lasts):
            v = values[s]
            if v is None:
                continue
            latest = (t, e.a_us, e.event_id, v)
            current = self.last[k]
            if current is None or latest[:3] > current[:3]:
                self.last[k] = latest

    def advance(self, j: int, new_lo: int) -> None:
        """Raise ``lo_j`` to ``new_lo``: subtract the kept events with ``lo_j <= t < new_lo``."""
        lo = self.lo[j]
        if lo is not None and lo >= new_lo:
            return
        times = self.times
        start = 0 if lo is None else bisect.bisect_left(times, lo)
        end = bisect.bisect_left(times, new_lo, start)
        if end > start:
            sums, maxes, maps = self._by_width[j]
            self.count[j] -= end - start
            for e in self.events[start:end]:
                values = e.values
                for k, s in sums:
                    v = values[s]
                    if v is not None:
                        self.sum[k] -= v
                        self.n[k] -= 1
                for k, s in maxes:
                    v = values[s]
                    if v is not None:
                        self.maxes[k].remove(v)
                for k, s in maps:
                    v = values[s]
                    if v is not None:
                        held = self.maps[k]
                        left = held[v] - 1
                        if left:
                            held[v] = left
                        else:
                            del held[v]
        self.lo[j] = new_lo

    def settle(self) -> None:
        """Raise every lower bound to the newest event's window (what the next fast answer would
        do anyway): seeding calls it so that the first live event pays no eviction backlog."""
        if self.t_max is not None:
            for j, width in enumerate(self.plan.widths):
                self.advance(j, self.t_max - width)

    def prune(self, cutoff: int) -> int:
        """Drop the kept events older than ``cutoff`` (after leaving every running aggregate)."""
        for j in range(len(self.lo)):
            self.advance(j, cutoff)
        end = bisect.bisect_left(self.times, cutoff)
        del self.events[:end]
        del self.times[:end]
        return end

    # -- answers ------------------------------------------------------------------------------
    def fast(self, e: WindowEvent) -> bool:
        """True when the running aggregates give ``e``'s definition (see the module docstring)."""
        return (self.t_max is None or e.t_us > self.t_max) and (
            self.arrival is None or (e.a_us, e.event_id) > self.arrival
        )

    def raw(self, e: WindowEvent) -> list[Any]:
        """``e``'s raw aggregates (``Reducer.raw``'s format) from the running state; only when
        :meth:`fast` holds. Advances every ``lo_W`` to ``t_e - W``."""
        t_e = e.t_us
        for j, width in enumerate(self.plan.widths):
            self.advance(j, t_e - width)
        out: list[Any] = []
        for op, j, k, width in self.plan.aggs:
            if op == "count":
                out.append(self.count[j])
            elif op == "sum":
                out.append(self.sum[k])
            elif op == "mean":
                out.append((self.sum[k], self.n[k]))
            elif op == "max":
                out.append(self.maxes[k].top)
            elif op == "distinct_count":
                out.append(len(self.maps[k]))
            elif op == "recent_set":
                out.append(sorted(self.maps[k]))
            else:  # last
                latest = self.last[k]
                out.append(latest[3] if latest is not None and latest[0] >= t_e - width else None)
        return out

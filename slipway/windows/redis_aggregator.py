"""The production aggregator: each entity's state in Redis, one Lua script per event.

Per entity these keys share a hash slot (``{entity}`` is the cluster hash tag): a sorted set of
the events (score: event time in microseconds; member: arrival, id and the encoded inputs), a
hash of the event ids held (plus the prune mark under the empty field), and the running
aggregates of ``slipway.windows.running``: a hash of the per-window counts, sums, lower bounds,
``last`` pointers and the newest event time and arrival key, a hash per distinct-count/recent-set
window (value -> multiplicity) and a sorted set per max window (event id scored by its value).

One script, generated from the declaration, checks the id and then answers the event either from
the running aggregates (the fast path: the event is newer in event time and in arrival than
everything the state holds; the windows' lower bounds advance, touching only the events that
leave) or, for every other event, by re-reducing the events of the horizon exactly as
:func:`slipway.windows.semantics.raw_aggregates` does (integers only: sums in ``10**-decimals``
units, formatted with ``%.0f`` because Lua's ``tostring`` keeps only 14 digits). Then it adds the
event to the events and to every running aggregate whose window it falls in, prunes what no event
within the allowed lateness can need (leaving the running aggregates first), and refreshes the
keys' expiry. Redis runs a script atomically, so concurrent consumers never lose an update; the
Python side finalizes the integers with the reference code. The running hash also counts the
events it covers: if that ever disagrees with the sorted set (keys lost one by one), the script
rebuilds the running aggregates from the events before answering.

The script takes three arguments (mode, event time, and the member, which carries the arrival,
the id and the inputs) and answers one bulk string (:func:`reply_layout`): the cheapest shapes
for redis-py to pack and parse. ``apply_many`` and ``seed`` send one call per ``BATCH_EVENTS``
events (:func:`batch_lua_script`: the same script per event, in order, inside one call),
pipelined.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from slipway.usecase import WindowFeatureSet
from slipway.windows.aggregator import WindowResult, WindowStoreUnavailable
from slipway.windows.embedded import PRUNE_SLACK_US, state_fingerprint
from slipway.windows.running import WindowPlan
from slipway.windows.semantics import (
    ONE_MICROSECOND,
    EventCodec,
    InvalidWindowEvent,
    WindowEvent,
    input_kinds,
    reducer,
    window_micros,
)

FIELD_SEP = "\x1f"
NULL = "\x1e"
SOCKET_TIMEOUT_S = 0.5
# Events per script call in apply_many/seed: Redis runs one call at a time, so a call should
# stay short (100 events: ~10 ms of Lua) and its reply well within the socket timeout.
BATCH_EVENTS = 100

_PRELUDE = r"""
local ek, ik, mk = KEYS[1], KEYS[2], KEYS[3]
local mode, t_e, member = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local H, KEEP, TTL, SLACK, INCREMENTAL = %(horizon)d, %(keep)d, %(ttl_ms)d, %(slack)d, %(incremental)s
local EXPIRY_REFRESH = %(refresh)d
local NUL = '\30'
local V = {}
%(parse)s
local function num(x) return string.format('%%.0f', x) end
local function opt(x) if x ~= x then return nil end return x end
local function nan(x) if x == nil then return 0 / 0 end return x end
local function split(s)
  local out, n, pos = {}, 0, 1
  while true do
    local j = string.find(s, '\31', pos, true)
    n = n + 1
    if not j then out[n] = string.sub(s, pos); return out end
    out[n] = string.sub(s, pos, j - 1)
    pos = j + 1
  end
end
local head = redis.call('HMGET', ik, '', id_e, '\30s'%(string_fields)s)
local pruned = head[1] and tonumber(head[1]) or nil
local dup = head[2] ~= false
local out = {dup and 1 or 0, (pruned == nil or t_e - H >= pruned) and 1 or 0, 0}
"""

# The running state lives in the ids hash, under fields that start with the reserved ``\x1e``
# (no event id can): the numbers below in one field ``\x1es``, packed as little-endian doubles
# (Redis' ``struct``; every value is an integer below 2**53, so exact; NaN when unset), and the
# strings (IM, LI, LV) in fields of their own. Numbers go back to Redis as integer replies and
# arguments, never through Lua's ``tostring`` (14 digits) or ``string.format`` (slow).
#   NE: events held, TM: newest event time, AM/IM: latest arrival key, PO: a lower bound of the
#   oldest event time held (pruning is due once it falls an hour behind the cutoff), XP: when
#   the keys' expiry was last refreshed (server clock, ms);
#   per width j: L (lower bound; unset = minus infinity), C (count), F (the smallest event time
#   counted, unset when none: a window none of whose events leave needs no read);
#   per sum k: S (units), N (non-null count); per value map m: D (distinct values);
#   per max x: MX (the maximum; re-read from its sorted set only when an event holding it leaves);
#   per last k: LT, LA, LI, LV (the latest non-null event's time, arrival, id and value).
EXPIRY_REFRESH_MS = 3_600_000


def key_layout(plan: WindowPlan) -> tuple[list[int], int]:
    """Which value maps get a key of their own (those a recent set lists: ``HKEYS`` then reads
    only them), and how many max sets there are. Maps only counted share one hash."""
    listed = {k for op, _, k, _ in plan.aggs if op == "recent_set"}
    return [m for m in range(len(plan.maps)) if m in listed], len(plan.maxes)


def _running_lua(fs: WindowFeatureSet, pattern: str) -> dict[str, str]:
    """The running-state parts of the script: load, add, evict (per width), rebuild, answer and
    save. Keys: KEYS[1] events, KEYS[2] ids + packed state, KEYS[3] the counted value maps
    (fields ``<m>\\x1f<value>`` -> multiplicity), then one hash per listed map (value ->
    multiplicity), then one sorted set per max (event id scored by its value)."""
    plan = WindowPlan.of(fs)
    own, n_max = key_layout(plan)
    n_in = len(fs.inputs)
    widths, sums, maps, lasts, maxes = (
        range(len(plan.widths)),
        range(len(plan.sums)),
        range(len(plan.maps)),
        range(len(plan.lasts)),
        range(n_max),
    )
    own_key = {m: f"KEYS[{4 + i}]" for i, m in enumerate(own)}
    max_key = {x: f"KEYS[{4 + len(own) + x}]" for x in maxes}
    # (lua target, counter?) per packed number; counters default to 0, the rest to nil
    packed: list[tuple[str, bool]] = [("NE", True)]
    packed += [(v, False) for v in ("TM", "AM", "PO", "XP")]
    for j in widths:
        packed += [(f"L[{j}]", False), (f"C[{j}]", True), (f"F[{j}]", False)]
    for k in sums:
        packed += [(f"S[{k}]", True), (f"N[{k}]", True)]
    packed += [(f"D[{m}]", True) for m in maps] + [(f"MX[{x}]", False) for x in maxes]
    for k in lasts:
        packed += [(f"LT[{k}]", False), (f"LA[{k}]", False)]
    fmt = "<" + "d" * len(packed)
    # the strings, each in its field (head[4] is IM; then LI, LV per last)
    strings = [("IM", "\\30im")]
    for k in lasts:
        strings += [(f"LI[{k}]", f"\\30li{k}"), (f"LV[{k}]", f"\\30lv{k}")]

    load = [
        "local NE, TM, AM, IM, PO, XP",
        "local L, C, F, S, N, D, MX, LT, LA, LI, LV = {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}",
        "local fresh = {}  -- keys that may have been created by this event: set their expiry",
        "local function reset()",
        "  NE, TM, AM, IM, PO, XP = 0, nil, nil, nil, nil, nil",
        *(f"  L[{j}] = nil; C[{j}] = 0; F[{j}] = nil" for j in widths),
        *(f"  S[{k}] = 0; N[{k}] = 0" for k in sums),
        *(f"  D[{m}] = 0" for m in maps),
        *(f"  MX[{x}] = nil" for x in maxes),
        *(f"  LT[{k}], LA[{k}], LI[{k}], LV[{k}] = nil, nil, nil, nil" for k in lasts),
        "end",
        "if head[3] then",
        f"  local p = {{struct.unpack('{fmt}', head[3])}}",
        *(
            f"  {target} = p[{i}]" if counter else f"  {target} = opt(p[{i}])"
            for i, (target, counter) in enumerate(packed, start=1)
        ),
        *(f"  {target} = head[{i}] or nil" for i, (target, _) in enumerate(strings, start=4)),
        "else",
        "  reset()",
        "end",
    ]

    def map_key(m: int) -> str:
        return own_key.get(m, "mk")

    def map_field(m: int, value: str) -> str:
        return value if m in own_key else f"'{m}\\31' .. {value}"

    # add(t, a, id, vals): the event into every running aggregate it belongs to
    add = ["local function add(t, a, id, vals)"]
    for j in widths:
        add += [
            f"  if L[{j}] == nil or t >= L[{j}] then",
            f"    C[{j}] = C[{j}] + 1",
            f"    if F[{j}] == nil or t < F[{j}] then F[{j}] = t end",
        ]
        for k, (w, slot) in enumerate(plan.sums):
            if w == j:
                add.append(
                    f"    if vals[{slot}] ~= NUL then S[{k}] = S[{k}] + tonumber(vals[{slot}]); "
                    f"N[{k}] = N[{k}] + 1 end"
                )
        for m, (w, slot) in enumerate(plan.maps):
            if w == j:
                key = map_key(m)
                add.append(
                    f"    if vals[{slot}] ~= NUL then "
                    f"if D[{m}] == 0 then fresh[#fresh + 1] = {key} end; "
                    f"if redis.call('HINCRBY', {key}, {map_field(m, f'vals[{slot}]')}, 1) == 1 "
                    f"then D[{m}] = D[{m}] + 1 end end"
                )
        for x, (w, slot) in enumerate(plan.maxes):
            if w == j:
                add.append(
                    f"    if vals[{slot}] ~= NUL then local v = tonumber(vals[{slot}]); "
                    f"if MX[{x}] == nil then fresh[#fresh + 1] = {max_key[x]} end; "
                    f"redis.call('ZADD', {max_key[x]}, vals[{slot}], id); "
                    f"if MX[{x}] == nil or v > MX[{x}] then MX[{x}] = v end end"
                )
        add.append("  end")
    for k, slot in enumerate(plan.lasts):
        newer = (
            f"LT[{k}] == nil or t > LT[{k}] or (t == LT[{k}] and (a > LA[{k}] or "
            f"(a == LA[{k}] and id > LI[{k}])))"
        )
        add.append(
            f"  if vals[{slot}] ~= NUL and ({newer}) then "
            f"LT[{k}], LA[{k}], LI[{k}], LV[{k}] = t, a, id, vals[{slot}] end"
        )
    add += [
        "  if TM == nil or t > TM then TM = t end",
        "  if PO == nil or t < PO then PO = t end",
        "  if AM == nil or a > AM or (a == AM and id > IM) then AM, IM = a, id end",
        "end",
    ]

    # evict<j>(new_lo): raise L[j] to new_lo, subtracting the counted events below it. The
    # events counted start at F[j]; they are read from there in pages (4 first: usually one or
    # two leave), and the first one that stays is the new F[j].
    captures = ", ".join(["a", "id", *(f"v{i}" for i in range(n_in))])
    evict = []
    for j in widths:
        evict += [
            f"local function evict{j}(new_lo)",
            f"  if L[{j}] ~= nil and L[{j}] >= new_lo then return end",
            f"  L[{j}] = new_lo",
            f"  if F[{j}] == nil or F[{j}] >= new_lo then return end",
            f"  local from, offset, page, first, remax = F[{j}], 0, 4, nil, {{}}",
            "  while first == nil do",
            "    local rows = redis.call('ZRANGEBYSCORE', ek, from, '+inf', 'WITHSCORES', "
            "'LIMIT', offset, page)",
            "    for r = 1, #rows, 2 do",
            "      local t = tonumber(rows[r + 1])",
            "      if t >= new_lo then first = t; break end",
            f"      local {captures} = string.match(rows[r], '{pattern}')",
            f"      C[{j}] = C[{j}] - 1",
        ]
        for k, (w, slot) in enumerate(plan.sums):
            if w == j:
                evict.append(
                    f"      if v{slot} ~= NUL then S[{k}] = S[{k}] - tonumber(v{slot}); "
                    f"N[{k}] = N[{k}] - 1 end"
                )
        for m, (w, slot) in enumerate(plan.maps):
            if w == j:
                key, field = map_key(m), map_field(m, f"v{slot}")
                evict.append(
                    f"      if v{slot} ~= NUL and redis.call('HINCRBY', {key}, {field}, -1) <= 0 "
                    f"then redis.call('HDEL', {key}, {field}); D[{m}] = D[{m}] - 1 end"
                )
        for x, (w, slot) in enumerate(plan.maxes):
            if w == j:
                evict.append(
                    f"      if v{slot} ~= NUL then redis.call('ZREM', {max_key[x]}, id); "
                    f"if tonumber(v{slot}) == MX[{x}] then remax[{x}] = true end end"
                )
        evict += [
            "    end",
            "    if #rows < 2 * page then break end",
            "    offset, page = offset + page, 64",
            "  end",
            f"  F[{j}] = first",
        ]
        for x, (w, _slot) in enumerate(plan.maxes):
            if w == j:
                evict.append(
                    f"  if remax[{x}] then local top = redis.call('ZREVRANGE', {max_key[x]}, 0, 0, "
                    f"'WITHSCORES'); MX[{x}] = top[2] and tonumber(top[2]) or nil end"
                )
        evict.append("end")
    evict += ["local function evict_all(new_lo)", *(f"  evict{j}(new_lo)" for j in widths), "end"]

    extra_keys = ["mk", *own_key.values(), *max_key.values()]
    rebuild = [
        "local function rebuild()",
        "  redis.call('DEL', " + ", ".join(extra_keys) + ")",
        "  reset()",
        "  local rows = redis.call('ZRANGE', ek, 0, -1, 'WITHSCORES')",
        "  for r = 1, #rows, 2 do",
        f"    local {captures} = string.match(rows[r], '{pattern}')",
        "    add(tonumber(rows[r + 1]), tonumber(a), id, {"
        + ", ".join(f"[{i}] = v{i}" for i in range(n_in))
        + "})",
        "    NE = NE + 1",
        "  end",
        "  XP = nil",
        "end",
        # The packed count disagrees with the events held: state lost key by key. Rebuild.
        "if redis.call('ZCARD', ek) ~= NE then rebuild() end",
    ]

    answer = [f"evict{j}(t_e - {w})" for j, w in enumerate(plan.widths)]
    for op, j, k, width in plan.aggs:
        if op == "count":
            answer.append(f"out[#out + 1] = C[{j}]")
        elif op == "sum":
            answer.append(f"out[#out + 1] = S[{k}]")
        elif op == "mean":
            answer.append(f"out[#out + 1] = S[{k}]; out[#out + 1] = N[{k}]")
        elif op == "max":
            answer.append(f"out[#out + 1] = MX[{k}] or false")
        elif op == "distinct_count":
            answer.append(f"out[#out + 1] = D[{k}]")
        elif op == "recent_set":
            answer.append(f"out[#out + 1] = redis.call('HKEYS', {own_key[k]})")
        else:  # last
            answer.append(
                f"if LT[{k}] ~= nil and LT[{k}] >= t_e - {width} then out[#out + 1] = LV[{k}] "
                "else out[#out + 1] = false end"
            )

    pack = [target if counter else f"nan({target})" for target, counter in packed]
    string_args = "".join(
        f", '{field}', {target}" for target, field in strings
    )  # only set ones: nil ends the argument list, so they are appended one by one
    save = [
        f"local state = struct.pack('{fmt}', " + ", ".join(pack) + ")",
        "local fields = {'\\30s', state}",
        *(
            f"if {target} ~= nil then fields[#fields + 1] = '{field}'; "
            f"fields[#fields + 1] = {target} end"
            for target, field in strings
        ),
    ]
    del string_args
    # Every key's expiry is refreshed at most once an hour (the expiry covers the hour), and
    # when this event may have created it.
    refresh = [
        "local clock = redis.call('TIME')",
        "local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)",
        "local refresh = XP == nil or now - XP >= EXPIRY_REFRESH",
        "if refresh then XP = now end",
    ]
    expire = [
        "if refresh then",
        *(f"  redis.call('PEXPIRE', {k}, TTL)" for k in ("ek", "ik", *extra_keys)),
        "else",
        "  for i = 1, #fresh do redis.call('PEXPIRE', fresh[i], TTL) end",
        "end",
    ]
    return {
        "load": "\n".join([*load, *add, *evict, *rebuild]),
        "answer": "\n".join(answer),
        "refresh": "\n".join(refresh),
        "save": "\n".join(save),
        "string_fields": "".join(f", '{field}'" for _, field in strings),
        "expire": "\n".join(expire),
    }


def reply_layout(fs: WindowFeatureSet) -> tuple[str, bool]:
    """The reply's shape: the ``struct`` format of its numbers, and whether strings follow.

    One bulk string per event instead of a nested array: redis-py parses an array element by
    element in Python (about 27 per event here, most of the client's time), a string in one read.
    The numbers (the three flags, counts, sums, mean parts, max, distinct counts, then the added
    flag) are little-endian doubles, NaN for none; every one is an integer below 2**53, so exact.
    Then, joined by ``\\x1f``: per ``last`` its value (``\\x1e`` for none), per recent set its
    size and its values (neither separator can occur in a stored value: :func:`_text`).
    """
    numbers, strings = 3, False
    for agg in fs.aggregations:
        if agg.op in ("last", "recent_set"):
            strings = True
        else:
            numbers += 2 if agg.op == "mean" else 1
    return "<" + "d" * (numbers + 1), strings


def reply_lua(fs: WindowFeatureSet) -> str:
    """The script's last line: ``out`` (flags, the aggregations' entries, the added flag) as
    the one string :func:`reply_layout` describes."""
    fmt, _ = reply_layout(fs)
    numbers = ["out[1]", "out[2]", "out[3]"]
    strings: list[str] = []
    pos = 4
    for agg in fs.aggregations:
        if agg.op == "mean":
            numbers += [f"tonumber(out[{pos}])", f"tonumber(out[{pos + 1}])"]
            pos += 2
            continue
        if agg.op == "max":
            numbers.append(f"(out[{pos}] and tonumber(out[{pos}]) or 0 / 0)")
        elif agg.op == "last":
            strings.append(f"parts[#parts + 1] = out[{pos}] or NUL")
        elif agg.op == "recent_set":
            strings.append(
                f"local set{pos} = out[{pos}]; parts[#parts + 1] = #set{pos}; "
                f"for s = 1, #set{pos} do parts[#parts + 1] = set{pos}[s] end"
            )
        else:  # count, sum, distinct_count
            numbers.append(f"tonumber(out[{pos}])")
        pos += 1
    numbers.append(f"out[{pos}]")  # added
    return "\n".join(
        [
            "local parts = {}",
            *strings,
            f"return struct.pack('{fmt}', "
            + ", ".join(numbers)
            + ") .. table.concat(parts, '\\31')",
        ]
    )


def lua_script(fs: WindowFeatureSet, incremental: bool = True) -> str:
    """The apply/seed script for ``fs``: the running aggregates' fast path, and the reduction of
    ``raw_aggregates`` unrolled in Lua for every other event (``incremental=False``: always)."""
    column = {c: i for i, c in enumerate(fs.inputs)}
    horizon = fs.horizon // ONE_MICROSECOND
    keep = horizon + fs.allowed_lateness // ONE_MICROSECOND
    # Keys outlive their newest event by the horizon plus lateness (wall clock): an entity
    # silent for that long has nothing any event could still aggregate. (Plus the hour between
    # two refreshes of the expiry.)
    ttl_ms = keep // 1000 + EXPIRY_REFRESH_MS
    init, body, emit = [], [], []
    for i, agg in enumerate(fs.aggregations):
        low = f"lo{i}"
        init.append(f"local {low} = t_e - {window_micros(fs, agg)}")
        # each stored member: arrival, id, then the inputs (v0, v1, ...)
        value = f"v{column[agg.input]}" if agg.input is not None else None
        guard = f"t >= {low}"
        if agg.op == "count":
            init.append(f"local c{i} = 0")
            body.append(f"if {guard} then c{i} = c{i} + 1 end")
            emit.append(f"out[#out + 1] = c{i}")
            continue
        present = f"{value} ~= '\\30'"
        if agg.op == "sum":
            init.append(f"local s{i} = 0")
            body.append(f"if {guard} and {present} then s{i} = s{i} + tonumber({value}) end")
            emit.append(f"out[#out + 1] = num(s{i})")
        elif agg.op == "mean":
            init.append(f"local s{i}, n{i} = 0, 0")
            body.append(
                f"if {guard} and {present} then s{i} = s{i} + tonumber({value}); n{i} = n{i} + 1 end"
            )
            emit.append(f"out[#out + 1] = num(s{i}); out[#out + 1] = n{i}")
        elif agg.op == "max":
            init.append(f"local m{i} = nil")
            body.append(
                f"if {guard} and {present} then local v = tonumber({value}); "
                f"if m{i} == nil or v > m{i} then m{i} = v end end"
            )
            emit.append(f"out[#out + 1] = m{i} and num(m{i}) or false")
        elif agg.op in ("distinct_count", "recent_set"):
            init.append(f"local d{i}, dn{i} = {{}}, 0")
            body.append(
                f"if {guard} and {present} and not d{i}[{value}] then "
                f"d{i}[{value}] = true; dn{i} = dn{i} + 1 end"
            )
            if agg.op == "distinct_count":
                emit.append(f"out[#out + 1] = dn{i}")
            else:
                emit.append(
                    f"local l{i} = {{}}; for k in pairs(d{i}) do l{i}[#l{i} + 1] = k end; "
                    f"out[#out + 1] = l{i}"
                )
        elif agg.op == "last":
            init.append(f"local lt{i}, la{i}, li{i}, lv{i} = nil, nil, nil, nil")
            newer = (
                f"lt{i} == nil or t > lt{i} or (t == lt{i} and (a > la{i} or "
                f"(a == la{i} and id > li{i})))"
            )
            body.append(
                f"if {guard} and {present} and ({newer}) then "
                f"lt{i}, la{i}, li{i}, lv{i} = t, a, id, {value} end"
            )
            emit.append(f"out[#out + 1] = lv{i} or false")
        else:  # pragma: no cover - the declaration's Literal forbids it
            raise ValueError(agg.op)
    # One string.match per stored event, no table: the fields come back as locals.
    fields = ["a", "id", *(f"v{j}" for j in range(len(fs.inputs)))]
    pattern = "^" + "([^\\31]*)\\31" * (len(fields) - 1) + "([^\\31]*)$"
    running = _running_lua(fs, pattern)
    exact = "\n".join(
        [
            "do",
            *init,
            "local rows = redis.call('ZRANGEBYSCORE', ek, num(t_e - H), '(' .. ARGV[2], 'WITHSCORES')",
            "for r = 1, #rows, 2 do",
            f"  local {', '.join(fields)} = string.match(rows[r], '{pattern}')",
            "  local t = tonumber(rows[r + 1])",
            "  a = tonumber(a)",
            "  if a < a_e or (a == a_e and id < id_e) then",
            *("    " + b for b in body),
            "  end",
            "end",
            *emit,
            "end",
        ]
    )
    compute = "\n".join(
        [
            "local dirty = false",
            "if mode == 'a' and INCREMENTAL and (TM == nil or t_e > TM) and "
            "(AM == nil or a_e > AM or (a_e == AM and id_e > IM)) then",
            "out[3] = 1",
            "dirty = true",
            running["answer"],
            "elseif mode == 'a' then",
            exact,
            "end",
        ]
    )
    insert = "\n".join(
        [
            "if not dup and (pruned == nil or t_e >= pruned) then",
            "  redis.call('ZADD', ek, ARGV[2], member)",
            "  add(t_e, a_e, id_e, V)",
            "  NE = NE + 1",
            # seeding: raise the bounds as the next live event would (no backlog left for it)
            "  if mode == 's' then "
            + " ".join(f"evict{j}(TM - {w});" for j, w in enumerate(WindowPlan.of(fs).widths))
            + " end",
            "  local cutoff = TM - KEEP",
            "  -- events outside every window change no answer: prune once an hour's worth is due",
            "  if PO < cutoff - SLACK then",
            "    evict_all(cutoff)",
            "    local gone = redis.call('ZRANGEBYSCORE', ek, '-inf', '(' .. num(cutoff))",
            "    for i = 1, #gone do redis.call('HDEL', ik, split(gone[i])[2]) end",
            "    redis.call('ZREMRANGEBYSCORE', ek, '-inf', '(' .. num(cutoff))",
            "    NE = NE - #gone",
            "    PO = tonumber(redis.call('ZRANGE', ek, 0, 0, 'WITHSCORES')[2])",
            "    if pruned == nil or cutoff > pruned then redis.call('HSET', ik, '', num(cutoff)) end",
            "  end",
            running["refresh"],
            running["save"],
            "  redis.call('HSET', ik, id_e, ARGV[2], unpack(fields))",
            running["expire"],
            "  out[#out + 1] = 1",
            "else",
            "  if dirty then",
            running["save"],
            "    redis.call('HSET', ik, unpack(fields))",
            "  end",
            "  out[#out + 1] = 0",
            "end",
            "if mode == 's' then return out[#out] end",
            reply_lua(fs),
        ]
    )
    captured = ", ".join(["a_s", "id_e", *(f"v{j}" for j in range(len(fs.inputs)))])
    parse = "\n".join(
        [
            f"local {captured} = string.match(member, '{pattern}')",
            "local a_e = tonumber(a_s)",
            *(f"V[{j}] = v{j}" for j in range(len(fs.inputs))),
        ]
    )
    prelude = _PRELUDE % {
        "parse": parse,
        "horizon": horizon,
        "keep": keep,
        "ttl_ms": ttl_ms,
        "slack": PRUNE_SLACK_US,
        "refresh": EXPIRY_REFRESH_MS,
        "incremental": "true" if incremental else "false",
        "string_fields": running["string_fields"],
    }
    return "\n".join([prelude, running["load"], compute, insert])


def batch_lua_script(fs: WindowFeatureSet, incremental: bool = True) -> str:
    """:func:`lua_script` over several events in one call: each event's keys and its three
    arguments follow the previous event's; the reply is one entry per event, in order.

    The per-event script runs unchanged as a function per event, in order, so an event sees
    every earlier one of the call (the same entity twice included), exactly as separate calls
    would. One call saves, per event, redis-py's packing of a command and parsing of its reply,
    and Redis' dispatch of a script. The call is atomic as a whole (a stronger guarantee than
    per event). Its keys span entities, so this needs a single Redis (the client here is
    ``redis.Redis``), not a Cluster, whose scripts must keep to one hash slot.
    """
    own, n_max = key_layout(WindowPlan.of(fs))
    body = lua_script(fs, incremental).replace("KEYS[", "EK[").replace("ARGV[", "EA[")
    return "\n".join(
        [
            f"local NK, NA = {3 + len(own) + n_max}, 3",
            "local results = {}",
            "for i = 0, #ARGV / NA - 1 do",
            "  local EK, EA = {}, {}",
            "  for k = 1, NK do EK[k] = KEYS[i * NK + k] end",
            "  for a = 1, NA do EA[a] = ARGV[i * NA + a] end",
            "  results[i + 1] = (function()",
            body,
            "  end)()",
            "end",
            "return results",
        ]
    )


def _text(value: Any) -> str:
    if value is None:
        return NULL
    text = str(value)
    if FIELD_SEP in text or NULL in text:
        raise InvalidWindowEvent(f"value {text!r} contains a control character the state reserves")
    return text


class RedisAggregator:
    """:class:`~slipway.windows.aggregator.WindowAggregator` on Redis (one script per event)."""

    def __init__(
        self,
        feature_set: WindowFeatureSet,
        url: str,
        namespace: str = "slipway:win",
        incremental: bool = True,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.feature_set = feature_set
        self.codec = EventCodec(feature_set)
        self.kinds = input_kinds(feature_set)
        self.reducer = reducer(feature_set)
        own, n_max = key_layout(WindowPlan.of(feature_set))
        self._suffixes = (
            ":e",
            ":i",
            ":m",
            *(f":m{m}" for m in own),
            *(f":x{x}" for x in range(n_max)),
        )
        fingerprint = state_fingerprint(feature_set, running=True)
        self.prefix = f"{namespace}:{feature_set.name}:{fingerprint}"
        # Fail fast: a consumer must answer with defaults, not wait on redis-py's retries.
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self.script = self.client.register_script(lua_script(feature_set, incremental))
        self.batch_script = self.client.register_script(batch_lua_script(feature_set, incremental))
        self._reply_format, self._reply_strings = reply_layout(feature_set)
        self._reply_numbers = struct.calcsize(self._reply_format)
        self._ops = tuple(
            (a.op, self.kinds.get(a.input, "string")) for a in feature_set.aggregations
        )
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._response_error = redis.exceptions.ResponseError
        self._noscript = redis.exceptions.NoScriptError
        self._conn: Any = None
        self._conn_pid = 0
        self._lock = threading.Lock()

    def keys(self, entity: str) -> list[str]:
        """The entity's keys: events, ids (+ packed running state), value maps, max sets."""
        base = f"{self.prefix}:{{{entity}}}"
        return [base + suffix for suffix in self._suffixes]

    def _args(self, event: WindowEvent, mode: str) -> list[str]:
        # The script reads the arrival, the id and the inputs back out of the member.
        member = FIELD_SEP.join([str(event.a_us), _text(event.event_id), *map(_text, event.values)])
        return [mode, str(event.t_us), member]

    def _result(self, event: WindowEvent, reply: bytes) -> WindowResult:
        """The script's reply (see :func:`reply_layout`) as the event's features."""
        numbers = struct.unpack_from(self._reply_format, reply)
        strings = (
            reply[self._reply_numbers :].decode().split(FIELD_SEP) if self._reply_strings else ()
        )
        raw: list[Any] = []
        n, s = 3, 0
        for op, kind in self._ops:
            if op == "mean":
                raw.append((int(numbers[n]), int(numbers[n + 1])))
                n += 2
            elif op == "last":
                text = strings[s]
                s += 1
                if text == NULL:
                    raw.append(None)
                else:
                    raw.append(text if kind == "string" else int(text))
            elif op == "recent_set":
                size = int(strings[s])
                raw.append(strings[s + 1 : s + 1 + size])
                s += 1 + size
            else:
                value = numbers[n]
                n += 1
                raw.append(None if value != value else int(value))  # NaN: no max
        features = self.reducer.finalize(raw)
        return WindowResult(
            event.event_id,
            features,
            bool(numbers[0]),
            bool(numbers[1]),
            bool(numbers[2]),
        )

    def _run(self, events: Sequence[WindowEvent], mode: str) -> list[Any]:
        """The script's reply per event: one EVALSHA for one event, else one per
        ``BATCH_EVENTS`` events (:func:`batch_lua_script`), all sent before any reply is read.

        Commands go straight through one redis-py ``Connection`` this aggregator holds (under
        its lock), not through ``Redis.execute_command`` and its pool: the client's command
        path cost ~90 µs of CPU per call here, the connection's ~40 µs (most of an event's
        client time one at a time). A script missing on the server (restart, SCRIPT FLUSH) is
        loaded and the call sent again: every reply was NOSCRIPT then, nothing was applied.
        """
        if len(events) == 1:
            e = events[0]
            calls = [(self.script.sha, self.keys(e.entity), self._args(e, mode))]
        else:
            calls = []
            for start in range(0, len(events), BATCH_EVENTS):
                keys: list[str] = []
                args: list[str] = []
                for e in events[start : start + BATCH_EVENTS]:
                    keys += self.keys(e.entity)
                    args += self._args(e, mode)
                calls.append((self.batch_script.sha, keys, args))
        with self._lock:
            try:
                replies = self._send(calls)
                if any(isinstance(r, self._noscript) for r in replies):
                    if not all(isinstance(r, self._noscript) for r in replies):
                        raise WindowStoreUnavailable(
                            "window state on Redis: the script vanished in the middle of a batch"
                        )
                    self.client.script_load(self.script.script)
                    self.client.script_load(self.batch_script.script)
                    replies = self._send(calls)
            except self._errors as exc:
                if self._conn is not None and self._conn_pid == os.getpid():
                    self._conn.disconnect()  # a reply may be half read: start afresh
                raise WindowStoreUnavailable(
                    f"window state on Redis: {type(exc).__name__}: {exc}"
                ) from exc
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        if len(events) == 1:
            return replies
        return [reply for batch in replies for reply in batch]

    def _send(self, calls: list[tuple[str, list[str], list[str]]]) -> list[Any]:
        """Send every call, then read every reply (errors returned, not raised)."""
        conn = self._conn
        if conn is None or self._conn_pid != os.getpid():  # none yet, or inherited by a fork
            conn = self._conn = self.client.connection_pool.make_connection()
            self._conn_pid = os.getpid()
        packed = conn.pack_commands(
            [("EVALSHA", sha, len(keys), *keys, *args) for sha, keys, args in calls]
        )
        conn.send_packed_command(packed)
        replies: list[Any] = []
        for _ in calls:
            try:
                replies.append(conn.read_response())
            except self._response_error as exc:
                replies.append(exc)
        return replies

    def apply(self, event: Mapping[str, Any]) -> WindowResult:
        encoded = self.codec.encode(event)
        return self._result(encoded, self._run([encoded], "a")[0])

    def apply_many(self, events: Sequence[Mapping[str, Any]]) -> list[WindowResult]:
        """One round trip: one script call per ``BATCH_EVENTS`` events, each call atomic, the
        events in order (see :meth:`WindowAggregator.apply_many`)."""
        encoded = [self.codec.encode(e) for e in events]
        if not encoded:
            return []
        replies = self._run(encoded, "a")
        return [self._result(e, r) for e, r in zip(encoded, replies, strict=True)]

    def seed(self, events: Iterable[Mapping[str, Any]], batch: int = 2_000) -> int:
        added = 0
        chunk: list[WindowEvent] = []
        for event in events:
            chunk.append(self.codec.encode(event))
            if len(chunk) >= batch:
                added += sum(int(r) for r in self._run(chunk, "s"))
                chunk = []
        if chunk:
            added += sum(int(r) for r in self._run(chunk, "s"))
        return added

    def delete_state(self) -> int:
        """Remove every key of this feature set under the namespace (tests, re-seeding)."""
        removed = 0
        for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            removed += self.client.delete(key)
        return removed

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.disconnect()
            self._conn = None
        self.client.close()

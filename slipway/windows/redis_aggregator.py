"""The production aggregator: each entity's recent events in Redis, one Lua script per event.

Per entity two keys share a hash slot (``{entity}`` is the cluster hash tag): a sorted set of the
events (score: event time in microseconds; member: arrival, id and the encoded inputs) and a hash
of the event ids held (plus the prune mark under the empty field). One script, generated from the
declaration, reads the events of the horizon, reduces them exactly as
:func:`slipway.windows.semantics.raw_aggregates` does (integers only: sums in ``10**-decimals``
units, formatted with ``%.0f`` because Lua's ``tostring`` keeps only 14 digits), checks the id,
adds the event, prunes what no event within the allowed lateness can need, and refreshes the
keys' expiry. Redis runs a script atomically, so concurrent consumers never lose an update; the
Python side finalizes the integers with the reference code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from slipway.usecase import WindowFeatureSet
from slipway.windows.aggregator import WindowResult, WindowStoreUnavailable
from slipway.windows.embedded import PRUNE_SLACK_US, state_fingerprint
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

_PRELUDE = r"""
local ek, ik = KEYS[1], KEYS[2]
local mode, t_e, a_e, id_e, member = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local H, KEEP, TTL = %(horizon)d, %(keep)d, %(ttl_ms)d
local function num(x) return string.format('%%.0f', x) end
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
local pruned = redis.call('HGET', ik, '')
pruned = pruned and tonumber(pruned) or nil
local dup = redis.call('HEXISTS', ik, id_e) == 1
local out = {dup and 1 or 0, (pruned == nil or t_e - H >= pruned) and 1 or 0}
"""

_ADD = r"""
if not dup and (pruned == nil or t_e >= pruned) then
  redis.call('ZADD', ek, ARGV[2], member)
  redis.call('HSET', ik, id_e, ARGV[2])
  local newest = tonumber(redis.call('ZRANGE', ek, -1, -1, 'WITHSCORES')[2])
  local cutoff = newest - KEEP
  local oldest = tonumber(redis.call('ZRANGE', ek, 0, 0, 'WITHSCORES')[2])
  -- events outside every window change no answer: prune once an hour's worth is due
  if oldest < cutoff - %(slack)d then
    local gone = redis.call('ZRANGEBYSCORE', ek, '-inf', '(' .. num(cutoff))
    for i = 1, #gone do redis.call('HDEL', ik, split(gone[i])[2]) end
    redis.call('ZREMRANGEBYSCORE', ek, '-inf', '(' .. num(cutoff))
    if pruned == nil or cutoff > pruned then redis.call('HSET', ik, '', num(cutoff)) end
  end
  redis.call('PEXPIRE', ek, TTL)
  redis.call('PEXPIRE', ik, TTL)
  out[#out + 1] = 1
else
  out[#out + 1] = 0
end
return out
"""


def lua_script(fs: WindowFeatureSet) -> str:
    """The apply/seed script for ``fs``: the reduction of ``raw_aggregates``, unrolled in Lua."""
    column = {c: i for i, c in enumerate(fs.inputs)}
    horizon = fs.horizon // ONE_MICROSECOND
    keep = horizon + fs.allowed_lateness // ONE_MICROSECOND
    # Keys outlive their newest event by the horizon plus lateness (wall clock): an entity
    # silent for that long has nothing any event could still aggregate.
    ttl_ms = keep // 1000
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
    compute = "\n".join(
        [
            "if mode == 'a' then",
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
    return (
        _PRELUDE % {"horizon": horizon, "keep": keep, "ttl_ms": ttl_ms}
        + compute
        + _ADD % {"slack": PRUNE_SLACK_US}
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
        self, feature_set: WindowFeatureSet, url: str, namespace: str = "slipway:win"
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.feature_set = feature_set
        self.codec = EventCodec(feature_set)
        self.kinds = input_kinds(feature_set)
        self.reducer = reducer(feature_set)
        self.prefix = f"{namespace}:{feature_set.name}:{state_fingerprint(feature_set)}"
        # Fail fast: a consumer must answer with defaults, not wait on redis-py's retries.
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self.script = self.client.register_script(lua_script(feature_set))
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

    def keys(self, entity: str) -> list[str]:
        base = f"{self.prefix}:{{{entity}}}"
        return [f"{base}:e", f"{base}:i"]

    def _args(self, event: WindowEvent, mode: str) -> list[str]:
        member = FIELD_SEP.join(
            [str(event.a_us), _text(event.event_id), *(_text(v) for v in event.values)]
        )
        return [mode, str(event.t_us), str(event.a_us), event.event_id, member]

    def _result(self, event: WindowEvent, reply: list[Any]) -> WindowResult:
        duplicate, complete = bool(reply[0]), bool(reply[1])
        raw: list[Any] = []
        pos = 2
        for agg in self.feature_set.aggregations:
            value = reply[pos]
            if agg.op == "mean":
                raw.append((int(value), int(reply[pos + 1])))
                pos += 2
                continue
            pos += 1
            if agg.op == "recent_set":
                raw.append([v.decode() for v in value])
            elif value is None:
                raw.append(None)
            elif agg.op == "last":
                text = value.decode()
                raw.append(text if self.kinds[agg.input] == "string" else int(text))
            else:
                raw.append(int(value))
        return WindowResult(event.event_id, self.reducer.finalize(raw), duplicate, complete)

    def _run(self, events: Sequence[WindowEvent], mode: str) -> list[list[Any]]:
        try:
            if len(events) == 1:
                e = events[0]
                return [self.script(keys=self.keys(e.entity), args=self._args(e, mode))]
            pipe = self.client.pipeline(transaction=False)
            for e in events:
                self.script(keys=self.keys(e.entity), args=self._args(e, mode), client=pipe)
            return pipe.execute()
        except self._errors as exc:
            raise WindowStoreUnavailable(
                f"window state on Redis: {type(exc).__name__}: {exc}"
            ) from exc

    def apply(self, event: Mapping[str, Any]) -> WindowResult:
        encoded = self.codec.encode(event)
        return self._result(encoded, self._run([encoded], "a")[0])

    def apply_many(self, events: Sequence[Mapping[str, Any]]) -> list[WindowResult]:
        """One pipelined round trip; each event is still its own atomic script, in order."""
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
                added += sum(int(r[-1]) for r in self._run(chunk, "s"))
                chunk = []
        if chunk:
            added += sum(int(r[-1]) for r in self._run(chunk, "s"))
        return added

    def delete_state(self) -> int:
        """Remove every key of this feature set under the namespace (tests, re-seeding)."""
        removed = 0
        for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            removed += self.client.delete(key)
        return removed

    def close(self) -> None:
        self.client.close()

"""The served-decision log: every online decision, appended durably, then drained into Delta.

What authorisation time decided is the one fact a batch job can never recompute, so each
decision is kept whole: the event id and where it came from (stream and position, or HTTP), its
arrival time, the model version, score, threshold and flag, every model feature value used (one
column per feature in ``scoring.served``), the features that were missing and the defaults used
instead, whether a store was down (``degraded`` and the warnings), and the timings.

The log is an ``EventLog`` (a Redis stream in production, SQLite embedded). When it cannot be
written (its Redis is down) the decision goes to a local SQLite *spool* instead, and the drain
reads both, so a decision is never lost because the log was. The drain (``drain_served``) reads
through its own consumer group, merges into ``scoring.served`` keyed on (date, event id), and
acks only after the Delta commit: a crash before the ack redelivers, and the merge skips what is
already there, so nothing is lost and nothing is duplicated (a redelivered *event* scored twice
is two log entries with one event id: the first one logged wins).

Shadow and canary: while a challenger exists, each log entry carries both models' scores of the
event (the scorer scored them on the same features), and the drain writes one row per model:
``role`` (champion/challenger), ``model_version``, score, threshold and flag of that model,
``decided`` (true on the row whose decision was returned), the routing (``routing`` mode, the
rule, the canary share, both versions) and ``shadow_error`` when the challenger failed. The key is
(date, event id, role); readers of *decisions* take ``decided`` rows (``DECIDED``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from slipway.lakehouse import Lakehouse
from slipway.streaming.log import Entry, EventLog, LogUnavailable
from slipway.usecase import UseCase

log = logging.getLogger(__name__)

SERVED = "scoring.served"
ROLE_KEY = ("date", "event_id", "role")
DRAIN_GROUP = "drain"
DECISION_FIELD = "decision"

BASE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("date", pa.date32()),
    pa.field("event_id", pa.string()),
    pa.field("source", pa.string()),
    pa.field("stream", pa.string()),
    pa.field("position", pa.string()),
    pa.field("consumer", pa.string()),
    pa.field("deliveries", pa.int64()),
    pa.field("event_time", pa.timestamp("us", tz="UTC")),
    pa.field("received_at", pa.timestamp("us", tz="UTC")),
    pa.field("appended_at", pa.timestamp("us", tz="UTC")),
    pa.field("decided_at", pa.timestamp("us", tz="UTC")),
    pa.field("logged_at", pa.timestamp("us", tz="UTC")),
    pa.field("log", pa.string()),
    pa.field("log_position", pa.string()),
    pa.field("model_name", pa.string()),
    pa.field("model_version", pa.int64()),
    pa.field("score", pa.float64()),
    pa.field("threshold", pa.float64()),
    pa.field("flagged", pa.bool_()),
    pa.field("feature_service", pa.string()),
    pa.field("feature_path", pa.string()),
    pa.field("degraded", pa.bool_()),
    pa.field("redelivered", pa.bool_()),
    pa.field("warnings", pa.string()),
    pa.field("missing_features", pa.string()),
    pa.field("defaults_used", pa.list_(pa.string())),
    pa.field("timing_ms", pa.string()),
    pa.field("latency_ms", pa.float64()),
    pa.field("role", pa.string()),
    pa.field("decided", pa.bool_()),
    pa.field("routing", pa.string()),
    pa.field("routing_rule", pa.string()),
    pa.field("canary_share", pa.float64()),
    pa.field("champion_version", pa.int64()),
    pa.field("challenger_version", pa.int64()),
    pa.field("shadow_error", pa.string()),
)


def served_schema(usecase: UseCase) -> pa.Schema:
    """``scoring.served``: the fixed columns, the entity keys, then one column per model feature."""
    spec = usecase.model
    assert spec is not None, f"use case {usecase.name} declares no model"
    fixed = {f.name for f in BASE_FIELDS}
    entities = [k for k in entity_keys(usecase) if k not in fixed]
    clash = sorted(fixed & set(spec.features))
    if clash:
        raise ValueError(f"model features named like served-log columns: {clash}")
    return pa.schema(
        [
            *BASE_FIELDS,
            *[pa.field(k, pa.string()) for k in entities],
            *[pa.field(n, pa.float64()) for n in spec.numeric_features],
            *[pa.field(n, pa.string()) for n in spec.categorical_features],
        ]
    )


def entity_keys(usecase: UseCase) -> list[str]:
    """The entity keys the primary stream carries (what features were looked up by)."""
    stream = usecase.streams[0]
    names = set(stream.field_names)
    keys = [t.entity for t in usecase.feature_tables] + [
        w.entity for w in getattr(usecase, "window_features", ())
    ]
    return [k for k in dict.fromkeys(keys) if k in names]


_ENTITY_KEYS: dict[int, tuple[UseCase, list[str]]] = {}


def _entity_keys_of(usecase: UseCase) -> list[str]:
    """``entity_keys`` once per use case object (it is asked for every decision)."""
    held = _ENTITY_KEYS.get(id(usecase))
    if held is None or held[0] is not usecase:
        held = _ENTITY_KEYS[id(usecase)] = (usecase, entity_keys(usecase))
    return held[1]


@dataclass(frozen=True)
class EventMeta:
    """Where a decided event came from."""

    source: str  # "stream" or "http"
    stream: str | None = None
    position: str | None = None
    appended_at: dt.datetime | None = None
    consumer: str | None = None
    deliveries: int = 1


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


def _plain(value: Any) -> Any:
    """A feature value as JSON: NaN as null, numpy scalars as Python numbers."""
    kind = type(value)
    if kind is float:  # the common case first: it runs for every feature of every decision
        return None if math.isnan(value) else value
    if value is None or kind is int or kind is str or kind is bool:
        return value
    if hasattr(value, "item") and not isinstance(value, list | tuple):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# Words the scorer's warnings use when a store failed, timed out or is being skipped (as opposed
# to notes about the data, e.g. state newer than a replayed event): such a decision is degraded.
DEGRADED_MARKERS = ("unavailable", "did not answer", "failed", "skipping", "down")


def degraded_warnings(warnings: Sequence[str]) -> list[str]:
    """The warnings that say a store was down (the decision used defaults because of them)."""
    return [w for w in warnings if any(m in w.lower() for m in DEGRADED_MARKERS)]


def decision_record(
    usecase: UseCase, values: Mapping[str, Any], result: Any, meta: EventMeta
) -> dict[str, Any]:
    """One served-log record from the parsed event's ``values`` and the scorer's ``ScoreResult``."""
    stream = usecase.streams[0]
    decided = dt.datetime.now(dt.UTC)
    missing = [m.as_dict() for m in result.missing_features]
    latency = (decided - meta.appended_at).total_seconds() * 1000.0 if meta.appended_at else None
    return {
        "event_id": values[stream.key],
        "source": meta.source,
        "stream": meta.stream,
        "position": meta.position,
        "consumer": meta.consumer,
        "deliveries": meta.deliveries,
        "event_time": _iso(values[stream.event_time]),
        "received_at": _iso(values.get("received_at")),
        "appended_at": _iso(meta.appended_at),
        "decided_at": decided.isoformat(),
        "entities": {k: values.get(k) for k in _entity_keys_of(usecase)},
        "model_name": result.model_name,
        "model_version": int(result.model_version),
        "score": float(result.score),
        "threshold": float(result.threshold),
        "flagged": bool(result.flagged),
        "feature_service": result.feature_service,
        "feature_path": result.feature_path,
        "degraded": bool(degraded_warnings(result.warnings)),
        "redelivered": bool(getattr(result, "duplicate", False)),
        "warnings": list(result.warnings),
        "missing_features": missing,
        "defaults_used": [m["feature"] for m in missing if m["used"] is not None],
        "timing_ms": dict(result.timing_ms),
        "latency_ms": latency,
        "features": {k: _plain(v) for k, v in result.features.items()},
        "role": getattr(result, "role", "champion"),
        "routing": dict(getattr(result, "routing", None) or {}),
        "shadow": [dict(s) for s in getattr(result, "shadow", None) or ()],
    }


class ServedLog:
    """Appends decision records to the log, or to the local spool while the log is down."""

    def __init__(self, primary: EventLog, spool: EventLog | None = None) -> None:
        self.primary = primary
        self.spool = spool
        self.spooled = 0

    @property
    def logs(self) -> list[EventLog]:
        return [self.primary] + ([self.spool] if self.spool is not None else [])

    def append(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        items = [{DECISION_FIELD: json.dumps(r, default=str)} for r in records]
        try:
            return self.primary.append_many(items)
        except LogUnavailable as exc:
            if self.spool is None:
                raise
            reason = f"served log unavailable, spooled locally: {exc}"
            log.warning(reason)
            spooled = [
                {DECISION_FIELD: json.dumps({**r, "spooled": reason}, default=str)} for r in records
            ]
            self.spooled += len(spooled)
            return [f"spool:{p}" for p in self.spool.append_many(spooled)]

    def close(self) -> None:
        for one in self.logs:
            one.close()


# -- the drain ----------------------------------------------------------------------------------
def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def decided_only(table: Any) -> Any:
    """The rows of a ``scoring.served`` read (Arrow or pandas) whose decision was returned."""
    import pyarrow.compute as pc

    if isinstance(table, pa.Table):
        if "decided" not in table.column_names:
            return table
        return table.filter(pc.fill_null(table["decided"], True))
    if "decided" not in table.columns:
        return table
    return table[table["decided"].fillna(True).astype(bool)]


def served_row(usecase: UseCase, entry: Entry, log_name: str) -> dict[str, Any]:
    """The decided row of one log entry (see ``served_rows``)."""
    return served_rows(usecase, entry, log_name)[0]


def served_rows(usecase: UseCase, entry: Entry, log_name: str) -> list[dict[str, Any]]:
    """The ``scoring.served`` rows of one log entry: the decision first, then one row per other
    model that scored the event in shadow (raises ValueError on a corrupt entry)."""
    spec = usecase.model
    assert spec is not None
    record = json.loads(entry.fields[DECISION_FIELD])
    event_time = _ts(record["event_time"])
    assert event_time is not None
    warnings = list(record.get("warnings") or [])
    if record.get("spooled"):
        warnings.append(record["spooled"])
    row: dict[str, Any] = {
        "date": event_time.date(),
        "event_id": record["event_id"],
        "source": record["source"],
        "stream": record.get("stream"),
        "position": record.get("position"),
        "consumer": record.get("consumer"),
        "deliveries": int(record.get("deliveries") or 1),
        "event_time": event_time,
        "received_at": _ts(record.get("received_at")),
        "appended_at": _ts(record.get("appended_at")),
        "decided_at": _ts(record["decided_at"]),
        "logged_at": entry.appended_at,
        "log": log_name,
        "log_position": entry.position,
        "model_name": record["model_name"],
        "model_version": int(record["model_version"]),
        "score": float(record["score"]),
        "threshold": float(record["threshold"]),
        "flagged": bool(record["flagged"]),
        "feature_service": record.get("feature_service"),
        "feature_path": record.get("feature_path"),
        "degraded": bool(record.get("degraded")) or bool(record.get("spooled")),
        "redelivered": bool(record.get("redelivered")),
        "warnings": json.dumps(warnings),
        "missing_features": json.dumps(record.get("missing_features") or []),
        "defaults_used": list(record.get("defaults_used") or []),
        "timing_ms": json.dumps(record.get("timing_ms") or {}),
        "latency_ms": record.get("latency_ms"),
    }
    for key, value in (record.get("entities") or {}).items():
        row[key] = value
    features = record.get("features") or {}
    for name in spec.numeric_features:
        value = features.get(name)
        row[name] = None if value is None else float(value)
    for name in spec.categorical_features:
        value = features.get(name)
        row[name] = None if value is None else str(value)
    routing = record.get("routing") or {}
    version = int(record["model_version"])
    row.update(
        role=record.get("role") or "champion",
        decided=True,
        routing=routing.get("mode") or "champion",
        routing_rule=routing.get("rule") or routing.get("mode") or "champion",
        canary_share=float(routing.get("share") or 0.0),
        champion_version=int(routing.get("champion_version") or version),
        challenger_version=routing.get("challenger_version"),
        shadow_error=routing.get("fallback"),
    )
    rows = [row]
    for other in record.get("shadow") or []:
        score = other.get("score")
        rows.append(
            {
                **row,
                "role": other["role"],
                "decided": False,
                "model_version": int(other["model_version"]),
                "score": None if score is None else float(score),
                "threshold": float(other["threshold"]),
                "flagged": other.get("flagged"),
                "shadow_error": other.get("error"),
            }
        )
    return rows


@dataclass
class DrainResult:
    """What one drain moved: rows added per day, duplicates skipped, the table version."""

    read: int = 0
    added: int = 0
    duplicates: int = 0
    corrupt: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    days: dict[str, int] = field(default_factory=dict)
    version: int | None = None
    seconds: float = 0.0


def _merge(lakehouse: Lakehouse, schema: pa.Schema, rows: list[dict[str, Any]]) -> int:
    """Insert the rows whose (date, event_id) is not in ``scoring.served`` yet; returns how many."""
    from deltalake import DeltaTable

    table = pa.Table.from_pylist(rows, schema=schema)
    if not lakehouse.exists(SERVED):
        lakehouse.write(SERVED, table, partition_by=["date"], schema=schema)
        return table.num_rows
    target = DeltaTable(lakehouse.uri(SERVED), storage_options=lakehouse.storage_options or None)
    days = sorted({r["date"].isoformat() for r in rows})
    in_days = ", ".join(f"'{d}'" for d in days)
    # A table drained before shadow rows existed has no role column: it gains the new columns
    # (merge_schema), and its rows, all decisions, count as the champion's.
    has_role = "role" in {f.name for f in target.schema().fields}
    metrics = (
        target.merge(
            source=table,
            predicate=(
                f"t.date IN ({in_days}) AND t.date = s.date AND t.event_id = s.event_id"
                + (
                    " AND (t.role = s.role OR (t.role IS NULL AND s.role = 'champion'))"
                    if has_role
                    else " AND s.role = 'champion'"
                )
            ),
            source_alias="s",
            target_alias="t",
            merge_schema=not has_role,
        )
        .when_not_matched_insert_all()
        .execute()
    )
    return int(metrics.get("num_target_rows_inserted", 0))


def drain_served(
    lakehouse: Lakehouse,
    usecase: UseCase,
    logs: Sequence[EventLog],
    consumer: str = "drain-1",
    batch: int = 5000,
    min_idle_ms: int = 60_000,
) -> DrainResult:
    """Move every logged decision into ``scoring.served`` (idempotent on date + event id).

    Each batch: entries this consumer left pending (a crashed drain under the same name) and
    entries idle under any other drain consumer first, then new ones; one Delta merge; then the
    ack. A corrupt entry (unreadable JSON) is acked and reported by position, never retried
    forever, and never silently: it is named in the result.
    """
    started = time.perf_counter()
    schema = served_schema(usecase)
    result = DrainResult()
    for one in logs:
        try:
            _drain_one(lakehouse, usecase, schema, one, consumer, batch, min_idle_ms, result)
        except LogUnavailable as exc:  # drain the others (the spool); this one waits
            result.unavailable.append(str(exc))
    result.version = lakehouse.version(SERVED)
    result.seconds = time.perf_counter() - started
    return result


def _drain_one(
    lakehouse: Lakehouse,
    usecase: UseCase,
    schema: pa.Schema,
    one: EventLog,
    consumer: str,
    batch: int,
    min_idle_ms: int,
    result: DrainResult,
) -> None:
    """Drain one log into ``result`` (see ``drain_served``)."""
    one.ensure_group(DRAIN_GROUP)
    recovering = True
    while True:
        if recovering:
            entries = one.read_own_pending(DRAIN_GROUP, consumer, batch)
            entries += one.claim_idle(DRAIN_GROUP, consumer, min_idle_ms, batch)
            recovering = bool(entries)
        if not recovering:
            entries = one.read_group(DRAIN_GROUP, consumer, batch)
        if not entries:
            break
        result.read += len(entries)
        rows: dict[tuple[dt.date, str, str], dict[str, Any]] = {}
        for entry in entries:
            try:
                found = served_rows(usecase, entry, one.name)
            except (KeyError, ValueError, TypeError, AssertionError) as exc:
                result.corrupt.append(f"{one.name}@{entry.position}: {exc}")
                continue
            for row in found:
                key = (row["date"], row["event_id"], row["role"])
                if key in rows:
                    result.duplicates += 1
                    continue
                rows[key] = row
        added = _merge(lakehouse, schema, list(rows.values())) if rows else 0
        result.duplicates += len(rows) - added
        result.added += added
        for (day, _, _), row in rows.items():  # decisions seen per day (new or already drained)
            if row["decided"]:
                result.days[day.isoformat()] = result.days.get(day.isoformat(), 0) + 1
        one.ack(DRAIN_GROUP, [e.position for e in entries])

"""Online features of a feature service, read two ways: Feast's own call and a lean direct read.

``FeastFeatureReader`` is the reference: ``store.get_online_features`` with the model's feature
service, which also runs the on-demand view (``transaction_context``) on the request fields.

``DirectFeatureReader`` exists because that call costs several milliseconds of Python per call
before any I/O (request-context resolution, proto round trips, arrow conversions; measured in
``benchmarks/serving.py``). It reads the same online store through Feast's ``OnlineStore.
online_read`` (so SQLite, Redis or any other Feast online store answers, with Feast's key
encoding) and applies the same request-time function to the same arrow-built input frame Feast
builds. ``tests/integration/test_serving.py`` proves that both return the same values.

One deliberate difference: Feast's online path ignores a view's TTL (it serves whatever was
materialized last, however old), while the point-in-time join used for training and batch
scoring treats a row older than ``event time - ttl`` as absent. The direct reader applies the
TTL the way the offline join does (``enforce_ttl``), so a dormant customer is scored online as
batch would score them, and says so in the missing-feature reasons.

Per-event window features (``UseCase.window_features``) are not in any Feast online store: Feast has
no per-event windows online (push sources are last-write-wins, its stream processor ignores
aggregations). Their views stay in the feature service (Feast is the registry of what a model
reads) but are *provided*: ``WindowFeatureReader`` asks the window aggregator
(``slipway.windows``) for them, and both readers above take them as input, read the remaining
views from the online store and run the on-demand function on the union.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import pyarrow as pa

from slipway.featurestore.on_demand import ColumnarTransform, is_null, run_columnar

log = logging.getLogger(__name__)

Transform = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass
class OnlineFeatures:
    """One value per request row for every feature of the service (None when absent).

    ``reasons[i]`` maps each absent stored feature of row ``i`` to why it is absent; ``notes[i]``
    says what else is worth knowing about row ``i`` (state newer than the transaction); ``errors``
    lists online-store failures that were turned into absent features instead of exceptions.
    """

    values: dict[str, list[Any]]
    reasons: list[dict[str, str]]
    notes: list[list[str]]
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _python_float(value: Any) -> float | None:
    """ODFV outputs the way Feast hands them back: floats, NaN as None."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


@dataclass(frozen=True)
class _ViewPlan:
    view: Any  # feast.FeatureView
    join_keys: tuple[str, ...]
    key_types: tuple[Any, ...]
    features: tuple[str, ...]
    value_types: tuple[Any, ...]
    ttl: dt.timedelta | None


@dataclass(frozen=True)
class _TransformPlan:
    name: str
    fn: Transform
    sources: tuple[str, ...]  # stored views it reads
    request_fields: tuple[str, ...]
    outputs: tuple[str, ...]
    request_schema: tuple[Any, ...] = ()  # feast Fields of its request sources


@dataclass(frozen=True)
class ServicePlan:
    """What a feature service reads: stored views (with keys and TTLs), views provided by the
    window aggregator (name -> features), and on-demand views."""

    service: Any  # feast.FeatureService
    views: tuple[_ViewPlan, ...]
    transforms: tuple[_TransformPlan, ...]
    provided: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def provided_features(self) -> list[str]:
        return [f for _, names in self.provided for f in names]

    @property
    def feature_names(self) -> list[str]:
        names = [*self.provided_features, *(f for v in self.views for f in v.features)]
        return names + [o for t in self.transforms for o in t.outputs]

    def source_features(self, source: str) -> tuple[str, ...]:
        """The features of a stored or provided view (an on-demand view's source)."""
        for name, features in self.provided:
            if name == source:
                return features
        return next(v.features for v in self.views if v.view.name == source)

    @property
    def join_keys(self) -> list[str]:
        return list(dict.fromkeys(k for v in self.views for k in v.join_keys))

    @property
    def request_fields(self) -> list[str]:
        return list(dict.fromkeys(f for t in self.transforms for f in t.request_fields))

    def absent_everywhere(self, n: int, why: object) -> list[dict[str, str]]:
        """``n`` rows' reasons with every stored feature absent because of ``why``."""
        reason = {name: f"{v.view.name}: {why}" for v in self.views for name in v.features}
        return [dict(reason) for _ in range(n)]


def plan_service(
    store,
    service_name: str,
    transforms: Mapping[str, Transform] | None = None,
    provided: Sequence[str] = (),
) -> ServicePlan:
    """Resolve a feature service against the registry once (not on every request).

    ``provided`` names the views whose features the caller supplies (the window aggregator's).
    """
    service = store.get_feature_service(service_name)
    entities = {e.name: e for e in store.list_entities()}
    on_demand = {o.name: o for o in store.list_on_demand_feature_views()}
    views: list[_ViewPlan] = []
    odfvs: list[_TransformPlan] = []
    given: list[tuple[str, tuple[str, ...]]] = []
    for projection in service.feature_view_projections:
        names = tuple(f.name for f in projection.features)
        if projection.name in provided:
            given.append((projection.name, names))
            continue
        if projection.name in on_demand:
            odfv = on_demand[projection.name]
            fn = (transforms or {}).get(odfv.name) or odfv.feature_transformation.udf
            schema = tuple(f for rs in odfv.source_request_sources.values() for f in rs.schema)
            request_fields = tuple(f.name for f in schema)
            odfvs.append(
                _TransformPlan(
                    name=odfv.name,
                    fn=fn,
                    sources=tuple(odfv.source_feature_view_projections),
                    request_fields=request_fields,
                    outputs=names,
                    request_schema=schema,
                )
            )
            continue
        fv = store.get_feature_view(projection.name)
        join_keys = tuple(c.name for c in fv.entity_columns)
        key_types = tuple(
            next(
                (e.value_type for e in entities.values() if e.join_key == key),
                c.dtype.to_value_type(),
            )
            for key, c in zip(join_keys, fv.entity_columns, strict=True)
        )
        dtypes = {f.name: f.dtype for f in fv.features}
        ttl = fv.ttl if fv.ttl and fv.ttl > dt.timedelta(0) else None
        views.append(
            _ViewPlan(
                view=fv,
                join_keys=join_keys,
                key_types=key_types,
                features=names,
                value_types=tuple(dtypes[n].to_value_type() for n in names),
                ttl=ttl,
            )
        )
    return ServicePlan(
        service=service, views=tuple(views), transforms=tuple(odfvs), provided=tuple(given)
    )


def apply_transforms(
    plan: ServicePlan, rows: Sequence[Mapping[str, Any]], values: dict[str, list[Any]]
) -> None:
    """Run the service's on-demand functions on ``values`` (stored and provided), in place.

    The input is the one Feast builds: keys, request data and the source views' features,
    through a python dict -> arrow -> pandas conversion (lists become arrays, null ints become
    NaN floats), so the function sees identical inputs online and in the point-in-time join. A
    ``ColumnarTransform`` takes the lists directly: its conversions give the same inputs without
    building the frames (tests/unit/test_on_demand.py holds the two entrances equal).
    """
    for transform in plan.transforms:
        inputs: dict[str, list[Any]] = {}
        for key in plan.join_keys:
            inputs[key] = [row[key] for row in rows]
        for name in transform.request_fields:
            inputs[name] = [row[name] for row in rows]
        for source in transform.sources:
            for name in plan.source_features(source):
                inputs[name] = values[name]
        if isinstance(transform.fn, ColumnarTransform):  # no frame either way (see on_demand)
            arrays = run_columnar(transform.fn, inputs)
            for name in transform.outputs:
                values[name] = [_python_float(v) for v in arrays[name].tolist()]
            continue
        out = transform.fn(pa.Table.from_pydict(inputs).to_pandas())
        for name in transform.outputs:
            values[name] = [_python_float(v) for v in out[name].tolist()]


class StoreUnavailable(RuntimeError):
    """The online store failed, timed out, or is being skipped after a recent failure."""


class _ReadThread:
    """One long-lived daemon thread that runs the guarded calls in turn.

    Starting a thread per call cost ~0.1-0.3 ms, a third of a one-entity read. A call that
    outlives its deadline keeps this thread; ``retire`` lets it exit once the call returns, and
    the guard starts a fresh one. Daemon: a hung store never holds the process open at exit.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="slipway-online-read", daemon=True).start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def retire(self) -> None:
        self._jobs.put(None)


class GuardedCall:
    """Runs a store call with a deadline, and stops calling for a while after a failure.

    A request must not wait on a sick online store: the call runs on a daemon thread (one kept
    for the calls, ``_ReadThread``) and is abandoned after ``deadline_s`` (a hung socket, a locked SQLite file); after any failure the
    store is skipped for ``cooldown_s`` so that an outage costs one slow request per cooldown,
    not one per request. Redis' client would otherwise retry a refused connection with backoff
    for about five seconds per call (redis-py 8 defaults: 10 retries).

    Calls that bound themselves (the direct reader's Redis and SQLite reads, ``bounded_store``)
    run ``inline`` on the caller's thread: the thread hand-off is most of a one-entity read's
    overhead on a small machine.
    """

    def __init__(self, deadline_s: float = 0.25, cooldown_s: float = 5.0) -> None:
        self.deadline_s = deadline_s
        self.cooldown_s = cooldown_s
        self._down_until = float("-inf")
        self._down_reason = ""
        self.cpu_s = 0.0  # CPU time the last call's helper thread spent (0: skipped or inline)
        self._worker: _ReadThread | None = None

    def __call__(self, fn: Callable[[], Any], inline: bool = False) -> Any:
        """``fn()``'s value, or ``StoreUnavailable``.

        ``inline``: ``fn`` bounds itself by the deadline (a client whose connect, send and
        receive time out at it: ``bounded_store``), so it runs on this thread with no hand-off.
        A failure trips the guard as a thread-run call's would; an answer that came later than
        the deadline is returned (it is correct) and the store is skipped for the cooldown.
        """
        self.cpu_s = 0.0
        now = time.monotonic()
        if now < self._down_until:
            raise StoreUnavailable(
                f"{self._down_reason} (skipping the store for {self._down_until - now:.1f}s more)"
            )
        if inline:
            return self._inline(fn, now)
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def run() -> None:
            started = time.thread_time()
            try:
                outcome["value"] = fn()
            except BaseException as exc:  # handed back to the caller below
                outcome["error"] = exc
            finally:
                outcome["cpu_s"] = time.thread_time() - started
                done.set()

        if self._worker is None:
            self._worker = _ReadThread()
        self._worker.submit(run)
        finished = done.wait(self.deadline_s)
        self.cpu_s = outcome.get("cpu_s", 0.0)
        if (
            not finished
        ):  # the thread is stuck in the call: abandon it, the next call gets a new one
            self._worker.retire()
            self._worker = None
            self._trip(f"online store did not answer within {self.deadline_s * 1000:.0f} ms")
        if "error" in outcome:
            exc = outcome["error"]
            self._trip(f"online store read failed: {type(exc).__name__}: {exc}")
        return outcome["value"]

    def _inline(self, fn: Callable[[], Any], started: float) -> Any:
        # cpu_s stays 0: the read's CPU time is the calling thread's own (the scorer counts it)
        try:
            value = fn()
        except Exception as exc:  # the client's own timeout or a refused connection
            self._trip(f"online store read failed: {type(exc).__name__}: {exc}")
        took = time.monotonic() - started
        if took > self.deadline_s:
            self.mark_down(
                f"online store answered in {took * 1000:.0f} ms, over the "
                f"{self.deadline_s * 1000:.0f} ms deadline"
            )
        return value

    @property
    def down_reason(self) -> str | None:
        """Why the store is being skipped now, or None while it is used."""
        return self._down_reason if time.monotonic() < self._down_until else None

    def reset(self) -> None:
        """Use the store again on the next call."""
        self._down_until = float("-inf")

    def mark_down(self, reason: str) -> None:
        """Skip the store for the cooldown (also used when a warm-up read failed)."""
        self._down_until = time.monotonic() + self.cooldown_s
        self._down_reason = reason
        log.warning("%s; using missing features for %.0fs", reason, self.cooldown_s)

    def _trip(self, reason: str) -> NoReturn:
        self.mark_down(reason)
        raise StoreUnavailable(reason)


class FeastFeatureReader:
    """Feast's own ``get_online_features`` for the service's stored views (the reference path).

    Feast runs no on-demand view here: its inputs include provided (window) features Feast's
    online path cannot compute, so the same function runs in process on the union, as in the
    direct reader. Guarded like the direct path; when the store is unavailable every stored
    feature comes back absent.
    """

    name = "feast"

    def __init__(self, store, plan: ServicePlan, guard: GuardedCall | None = None) -> None:
        self.store = store
        self.plan = plan
        self.guard = guard or GuardedCall()
        self.refs = [f"{v.view.name}:{f}" for v in plan.views for f in v.features]

    def warm_up(self) -> None:
        """One unguarded call with an unknown key, so the first request pays no set-up."""
        row: dict[str, Any] = {key: "__slipway_warm_up__" for key in self.plan.join_keys}
        self.store.get_online_features(features=self.refs, entity_rows=[row])

    def read(
        self, rows: Sequence[Mapping[str, Any]], provided: Mapping[str, list[Any]] | None = None
    ) -> OnlineFeatures:
        started = time.perf_counter()
        n = len(rows)
        entity_rows = [{k: row[k] for k in self.plan.join_keys} for row in rows]
        reasons: list[dict[str, str]] = [{} for _ in rows]
        notes: list[list[str]] = [[] for _ in rows]
        errors: list[str] = []
        values: dict[str, list[Any]] = _provided_values(self.plan, n, provided)
        try:
            response = self.guard(
                lambda: self.store.get_online_features(
                    features=self.refs, entity_rows=entity_rows
                ).to_dict()
            )
        except StoreUnavailable as exc:
            errors.append(str(exc))
            reasons = self.plan.absent_everywhere(n, exc)
            for view in self.plan.views:
                for name in view.features:
                    values[name] = [None] * n
        else:
            for view in self.plan.views:
                for name in view.features:
                    values[name] = response[name]
                    for i, value in enumerate(values[name]):
                        if is_null(value):
                            reasons[i][name] = f"{view.view.name}: no value in the online store"
        apply_transforms(self.plan, rows, values)
        ordered = {name: values[name] for name in self.plan.feature_names}
        return OnlineFeatures(ordered, reasons, notes, errors, time.perf_counter() - started)


def _provided_values(
    plan: ServicePlan, n: int, provided: Mapping[str, list[Any]] | None
) -> dict[str, list[Any]]:
    provided = provided or {}
    return {name: list(provided.get(name) or [None] * n) for name in plan.provided_features}


def sqlite_change_probe(config: Any) -> Callable[[], Any] | None:
    """A cheap "has the online store changed?" probe for Feast's SQLite online store, or None.

    ``PRAGMA data_version`` on a connection of our own that never writes changes whenever any
    other connection (Feast's materialization, a push, another process) commits to the file;
    the file's inode catches a store replaced under the same path. One probe costs microseconds,
    against hundreds of microseconds per entity for ``online_read`` (SQL, protobuf parsing, type
    conversion). Stores without such a signal (Redis: no database-wide change counter) get no
    probe, and the reader reads through.
    """
    import os
    import sqlite3

    if getattr(config.online_store, "type", None) != "sqlite":
        return None
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    path = SqliteOnlineStore._get_db_path(config)
    state: dict[str, Any] = {}

    def probe() -> Any:
        try:
            inode = os.stat(path).st_ino
            conn = state.get("conn")
            if conn is None or state.get("inode") != inode:
                if conn is not None:
                    conn.close()
                uri = "file:" + Path(path).resolve().as_posix() + "?mode=ro"
                conn = state["conn"] = sqlite3.connect(
                    uri, uri=True, check_same_thread=False, timeout=0.1
                )
                state["inode"] = inode
            return (inode, conn.execute("PRAGMA data_version").fetchone()[0])
        except (OSError, sqlite3.Error):  # no file yet, or busy: read through this time
            state.pop("conn", None)
            return None

    return probe


# Per stored view: entity key -> (stored_at, stored_epoch, python values) or None (absent).
_Row = tuple[dt.datetime | None, float | None, tuple[Any, ...]] | None
CACHE_ENTITIES = 200_000  # rows per view one reader keeps; cleared whole when exceeded


class DirectFeatureReader:
    """``OnlineStore.online_read`` per stored view, then the on-demand function, in process.

    ``enforce_ttl`` treats stored rows older than ``event time - ttl`` as absent, as the
    point-in-time join does; rows are keyed by ``event_epoch`` from the request fields. Store
    reads are guarded (deadline, cooldown): a failing store gives absent stored features, and
    the on-demand function still runs on them, as it does for a customer never seen.

    Stored (slow) features change only when the online store is written (the daily
    materialization), so rows already read are kept in process, per view and entity key,
    converted to Python values once, and reused while ``probe`` (``sqlite_change_probe``) says
    the store is unchanged; any change drops them all. Only entities not yet held are read.
    Without a probe (``probe=None``: Redis) every pass reads every entity, as Feast does. TTL
    expiry and "state newer than the event" are judged per event from the kept row's time, so
    a kept row answers exactly what a fresh read would.
    """

    name = "direct"

    def __init__(
        self,
        store,
        plan: ServicePlan,
        enforce_ttl: bool = True,
        guard: GuardedCall | None = None,
        probe: Callable[[], Any] | bool | None = True,
        cache_entities: int = CACHE_ENTITIES,
    ) -> None:
        from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values

        from slipway.serving.bounded_store import bounded_redis_client, bounded_sqlite_store

        self.store = store
        self.plan = plan
        self.enforce_ttl = enforce_ttl
        self.guard = guard or GuardedCall()
        self.online_store = store._get_provider().online_store
        # Redis, SQLite: a client of its own whose calls time out at the deadline, read inline
        deadline = self.guard.deadline_s
        self._redis = bounded_redis_client(self.online_store, store.config, deadline)
        self._sqlite = bounded_sqlite_store(self.online_store, store.config, deadline)
        self._bounded = self._redis is not None or self._sqlite is not None
        self._to_python = feast_value_type_to_python_type
        self._to_proto = python_values_to_proto_values
        self.probe = sqlite_change_probe(store.config) if probe is True else (probe or None)
        self.cache_entities = cache_entities
        self._rows: dict[str, dict[tuple, _Row]] = {v.view.name: {} for v in plan.views}
        self._version: Any = None
        self.reads = 0  # entities read from the store (not answered from the kept rows)
        self._fields: dict[str, tuple[str, list[str], list]] = {}

    def _protos(self, view: _ViewPlan, keys: Sequence[tuple]) -> list:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey

        return [
            EntityKey(
                join_keys=list(view.join_keys),
                entity_values=[
                    self._to_proto([v], t)[0] for v, t in zip(key, view.key_types, strict=True)
                ],
            )
            for key in keys
        ]

    def warm_up(self) -> None:
        """One unguarded read of an unknown key per view: connections and caches get opened
        before the first request, whose deadline should not pay for them."""
        key = tuple("__slipway_warm_up__" for _ in self.plan.join_keys)
        self._read_views([(view, [key[: len(view.join_keys)]]) for view in self.plan.views])
        if self.probe is not None:
            self.probe()

    def _online_read(self, view: _ViewPlan, protos: list) -> list:
        return (self._sqlite or self.online_store).online_read(
            config=self.store.config,
            table=view.view,
            entity_keys=protos,
            requested_features=list(view.features),
        )

    def _read_views(self, reads: list[tuple[_ViewPlan, list[tuple]]]) -> list[list]:
        """``online_read``'s answer per view, for each view's keys.

        On Redis every view's ``HMGET``s go in one pipeline (one round trip per pass, not one
        per view), through the store's own key and field encoding and reply parsing
        (``RedisOnlineStore``'s helpers, as its ``get_online_features`` batches them), so the
        values are exactly what ``online_read`` gives; they are sent over the reader's bounded
        client (``bounded_store``) where there is one. Other stores: ``online_read`` per view.
        """
        store = self.online_store
        batched = self._redis is not None or (
            hasattr(store, "_read_hash_fields") and len(reads) > 1
        )
        if not batched:
            return [self._online_read(view, self._protos(view, keys)) for view, keys in reads]
        from feast.infra.online_stores.helpers import compute_versioned_name

        config = self.store.config
        commands, slices = [], []
        for view, keys in reads:
            if view.view.name not in self._fields:  # the view's hashed field names, once
                name = compute_versioned_name(
                    view.view, config.registry.enable_online_feature_view_versioning
                )
                features, fields = store._generate_hset_keys_for_features(
                    view.view, list(view.features), fv_name_override=name
                )
                self._fields[view.view.name] = (name, features, fields)
            name, features, fields = self._fields[view.view.name]
            redis_keys = store._generate_redis_keys_for_entities(config, self._protos(view, keys))
            slices.append((len(commands), len(redis_keys), name, features))
            commands += [(key, fields) for key in redis_keys]
        if self._redis is not None:
            from slipway.serving.bounded_store import hmget_all

            replies = hmget_all(self._redis, commands)
        else:
            replies = store._read_hash_fields(config, commands)
        return [
            store._convert_redis_values_to_protobuf(replies[at : at + n], name, features)
            for at, n, name, features in slices
        ]

    def _convert(self, view: _ViewPlan, stored_at: Any, data: Any) -> _Row:
        if data is None:
            return None
        values = tuple(
            None if data.get(name) is None else self._to_python(data[name], vtype)
            for name, vtype in zip(view.features, view.value_types, strict=True)
        )
        epoch = stored_at.timestamp() if stored_at is not None else None
        return stored_at, epoch, values

    def _rows_for(self, wanted: list[tuple[_ViewPlan, list[tuple]]]) -> list[list[_Row]]:
        """Each view's rows for its unique keys: kept ones, the rest read (one call per view)."""
        version = self.probe() if self.probe is not None else None
        if version is None or version != self._version:
            for kept in self._rows.values():
                kept.clear()
        self._version = version
        missing = [
            [k for k in keys if k not in self._rows[view.view.name]]
            if version is not None
            else keys
            for view, keys in wanted
        ]
        to_read = [(view, m) for (view, _), m in zip(wanted, missing, strict=True) if m]
        answers = iter(self._read_views(to_read) if to_read else [])
        out = []
        for (view, keys), absent in zip(wanted, missing, strict=True):
            kept = self._rows[view.view.name]
            fresh: dict[tuple, _Row] = {}
            if absent:
                read = next(answers)
                self.reads += len(absent)
                fresh = {
                    k: self._convert(view, at, data)
                    for k, (at, data) in zip(absent, read, strict=True)
                }
                if version is not None and self._version == version:
                    if len(kept) + len(fresh) > self.cache_entities:
                        kept.clear()
                    kept.update(fresh)
            out.append([fresh[k] if k in fresh else kept[k] for k in keys])
        return out

    def _fill_view(
        self,
        view: _ViewPlan,
        rows_read: list[_Row],
        positions: list[int],
        rows: Sequence[Mapping[str, Any]],
        values: dict[str, list[Any]],
        reasons: list[dict[str, str]],
        notes: list[list[str]],
    ) -> None:
        name_of = view.view.name
        ttl_s = view.ttl.total_seconds() if self.enforce_ttl and view.ttl is not None else None
        columns = [values[name] for name in view.features]
        for i, row in enumerate(rows):
            found = rows_read[positions[i]]
            if found is None:
                for name in view.features:
                    reasons[i][name] = f"{name_of}: no value in the online store"
                continue
            stored_at, stored_epoch, stored = found
            if stored_epoch is not None and stored_epoch > row["event_epoch"]:
                notes[i].append(
                    f"{name_of} state (stored {stored_at.isoformat()}) is newer than the "
                    "transaction: a replayed or late transaction sees later state"
                )
            expired = (
                ttl_s is not None
                and stored_epoch is not None
                and stored_epoch < row["event_epoch"] - ttl_s
            )
            if expired:
                for name in view.features:
                    reasons[i][name] = (
                        f"{name_of}: expired (stored {stored_at.isoformat()}, "
                        f"older than the view's TTL of {view.ttl})"
                    )
                continue
            for name, column, value in zip(view.features, columns, stored, strict=True):
                column[i] = value
                if value is None:
                    reasons[i][name] = f"{name_of}: null in the online store"

    def read(
        self, rows: Sequence[Mapping[str, Any]], provided: Mapping[str, list[Any]] | None = None
    ) -> OnlineFeatures:
        started = time.perf_counter()
        n = len(rows)
        values: dict[str, list[Any]] = _provided_values(self.plan, n, provided)
        reasons: list[dict[str, str]] = [{} for _ in rows]
        notes: list[list[str]] = [[] for _ in rows]
        errors: list[str] = []
        wanted, positions = [], []
        for view in self.plan.views:
            for name in view.features:
                values[name] = [None] * n
            unique: dict[tuple, int] = {}
            at = [unique.setdefault(tuple(r[k] for k in view.join_keys), len(unique)) for r in rows]
            wanted.append((view, list(unique)))
            positions.append(at)
        try:
            reads = self.guard(lambda: self._rows_for(wanted), inline=self._bounded)
        except StoreUnavailable as exc:
            errors.append(str(exc))
            reasons = self.plan.absent_everywhere(n, exc)
        else:
            for (view, _), at, read in zip(wanted, positions, reads, strict=True):
                self._fill_view(view, read, at, rows, values, reasons, notes)
        apply_transforms(self.plan, rows, values)
        ordered = {name: values[name] for name in self.plan.feature_names}
        return OnlineFeatures(
            ordered, reasons, notes, errors, seconds=time.perf_counter() - started
        )


def make_reader(
    kind: str,
    store,
    service_name: str,
    transforms: Mapping[str, Transform] | None = None,
    enforce_ttl: bool = True,
    guard: GuardedCall | None = None,
    provided: Sequence[str] = (),
    keep_rows: bool = True,
) -> FeastFeatureReader | DirectFeatureReader:
    """``direct`` (default for serving) or ``feast`` (the reference path); ``provided`` names
    the views the caller supplies (window features); ``keep_rows=False`` makes the direct
    reader read every entity on every call (benchmarks time the store that way)."""
    plan = plan_service(store, service_name, transforms, provided)
    if kind == "feast":
        return FeastFeatureReader(store, plan, guard=guard)
    if kind == "direct":
        return DirectFeatureReader(
            store, plan, enforce_ttl=enforce_ttl, guard=guard, probe=keep_rows
        )
    raise ValueError(f"unknown feature path {kind!r}: use 'direct' or 'feast'")


@dataclass
class WindowFeatures:
    """The window aggregator's answer for a batch of events (one entry per row).

    ``duplicate[i]``: row ``i`` was already applied (a redelivery; state unchanged);
    ``reasons[i]``: why a window feature of row ``i`` is null (empty window, or store down).
    """

    values: dict[str, list[Any]]
    reasons: list[dict[str, str]]
    notes: list[list[str]]
    duplicate: list[bool]
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class WindowFeatureReader:
    """Per-event window features from the aggregator: ``apply`` each event, in order.

    Every scored event is also recorded in the state, so the next event of the same entity sees
    it (that is what makes online equal the offline backfill). An unreachable state store never
    raises: the features come back absent (the model gets the declared ``missing_defaults``),
    each with the reason, and the store is skipped for ``cooldown_s`` so an outage costs one
    slow call per cooldown. The skipped events are *not* in the state afterwards: the warning
    says so, and the consistency check will count them.
    """

    def __init__(
        self,
        feature_sets: Sequence[Any],
        open_aggregator: Callable[[Any], Any],
        cooldown_s: float = 5.0,
    ) -> None:
        self.feature_sets = tuple(feature_sets)
        self._open = open_aggregator
        self._aggregators: dict[str, Any] = {}
        self.cooldown_s = cooldown_s
        self._down_until = float("-inf")
        self._down_reason = ""

    @property
    def view_names(self) -> tuple[str, ...]:
        return tuple(fs.name for fs in self.feature_sets)

    @property
    def down_reason(self) -> str | None:
        return self._down_reason if time.monotonic() < self._down_until else None

    def aggregator(self, fs: Any) -> Any:
        agg = self._aggregators.get(fs.name)
        if agg is None:
            agg = self._aggregators[fs.name] = self._open(fs)
        return agg

    def read(self, events: Sequence[Mapping[str, Any]]) -> WindowFeatures:
        from slipway.windows import WindowStoreUnavailable

        started = time.perf_counter()
        n = len(events)
        out = WindowFeatures({}, [{} for _ in events], [[] for _ in events], [False] * n)
        for fs in self.feature_sets:
            names = fs.feature_names
            for name in names:
                out.values[name] = [None] * n
            now = time.monotonic()
            try:
                if now < self._down_until:
                    raise WindowStoreUnavailable(
                        f"{self._down_reason} (skipping the window store for "
                        f"{self._down_until - now:.1f}s more)"
                    )
                agg = self.aggregator(fs)
                results = agg.apply_many(events) if n > 1 else [agg.apply(events[0])]
            except WindowStoreUnavailable as exc:
                if now >= self._down_until:
                    self._down_until = now + self.cooldown_s
                    self._down_reason = str(exc)
                    log.warning("%s; window features missing for %.0fs", exc, self.cooldown_s)
                reason = f"{fs.name}: window state unavailable: {exc}"
                out.errors.append(reason)
                for i in range(n):
                    out.notes[i].append(f"{fs.name}: not recorded in the window state")
                    for name in names:
                        out.reasons[i][name] = reason
                continue
            for i, result in enumerate(results):
                out.duplicate[i] = out.duplicate[i] or result.duplicate
                if result.duplicate:
                    out.notes[i].append(
                        f"{fs.name}: redelivered event: features as first computed, state unchanged"
                    )
                if not result.complete:
                    out.notes[i].append(
                        f"{fs.name}: later than the allowed lateness "
                        f"({fs.allowed_lateness}): windows may miss pruned state"
                    )
                for name in names:
                    value = result.features[name]
                    out.values[name][i] = value
                    if value is None:
                        out.reasons[i][name] = f"{fs.name}: no earlier event in the window"
        out.seconds = time.perf_counter() - started
        return out

    def close(self) -> None:
        for agg in self._aggregators.values():
            agg.close()
        self._aggregators.clear()

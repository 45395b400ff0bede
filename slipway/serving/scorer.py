"""Online scoring without a web framework: transaction in, champion's score out.

The HTTP service (``slipway.serving.app``) is a thin wrapper; anything that can import Python
can score with ``OnlineScorer.from_env().score({...})``. Each call does what batch scoring does
for a day, for one transaction (or a list): silver's typing, normalisation and row rules, the
request fields (``amount_eur``, ``event_epoch``), the feature service's online features with the
on-demand view applied, ``model_frame``'s encoding and the champion's LightGBM model.

Window features (``UseCase.window_features``) come from the window aggregator
(``slipway.windows``, ``SLIPWAY_WINDOWS_URL``: embedded SQLite by default, Redis in production):
scoring an event applies it to the state, so the customer's next event sees it, and the values
equal the offline backfill's row for the event. Slow features (merchant risk, profiles) come
from Feast's online store, materialized daily.

Failure policy, in order: a bad transaction raises ``InvalidTransaction`` (naming each field and
rule); no champion raises ``NoChampionError``; a champion that cannot be loaded raises
``ModelLoadError``; an online store that fails or lacks an entity never raises: the features are
scored as missing (``missing_defaults`` where declared, NaN otherwise) and every one is listed in
the result with its reason; the same holds for an unreachable window store.

Shadow and canary (``slipway.serving.routing``): while the registry has a challenger, every pass
scores the same assembled features with both models (one feature fetch, a second ``predict``).
The champion decides (shadow), or, under a canary, the challenger decides the events of a stable
share of entities; each result carries its deciding role, the routing and the other model's
score (``shadow``), which the served log keeps as a second row. Only the decision is returned to
the caller. Under a canary, ``CanaryMonitor`` judges the canary's live figures after every pass
and trips the routing back to the champion when a limit is crossed (``ChampionWatcher.trip``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slipway.featurestore.on_demand import is_null
from slipway.lakehouse import Lakehouse
from slipway.serving.canary import CanaryMonitor
from slipway.serving.champion import Champion, ChampionWatcher, Encoded, record_dict
from slipway.serving.features import (
    DirectFeatureReader,
    FeastFeatureReader,
    GuardedCall,
    OnlineFeatures,
    StoreUnavailable,
    WindowFeatureReader,
    make_reader,
)
from slipway.serving.request import PreparedTransaction, TransactionParser
from slipway.serving.routing import CANARY, CHAMPION_ONLY, to_challenger
from slipway.usecase import ModelSpec, UseCase

log = logging.getLogger(__name__)

WARM_UP_DEADLINE_S = 10.0


@dataclass
class MissingFeature:
    """A model feature the online store could not supply, and what the model got instead."""

    feature: str
    reason: str
    used: float | None  # the declared default, or None: left missing (LightGBM's NaN branch)

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "reason": self.reason, "used": self.used}


@dataclass
class ScoreResult:
    event_id: str  # the example's row key (``UseCase.examples.row_key``)
    score: float
    flagged: bool
    threshold: float
    model_name: str
    model_version: int
    feature_service: str
    feature_path: str
    missing_features: list[MissingFeature]
    warnings: list[str]
    timing_ms: dict[str, float]
    features: dict[str, Any] = field(default_factory=dict)
    duplicate: bool = False  # a redelivered event: window features as first computed
    window_features: dict[str, Any] = field(default_factory=dict)  # every one served
    role: str = "champion"  # the role of the model that decided
    routing: dict[str, Any] = field(default_factory=dict)  # mode, rule, share, versions
    shadow: list[dict[str, Any]] = field(default_factory=list)  # the other model's score
    key_name: str = "event_id"  # what the row key is called in the response

    def as_dict(self, include_features: bool = False) -> dict[str, Any]:
        data = {
            self.key_name: self.event_id,
            "score": self.score,
            "flagged": self.flagged,
            "threshold": self.threshold,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "feature_service": self.feature_service,
            "feature_path": self.feature_path,
            "missing_features": [m.as_dict() for m in self.missing_features],
            "warnings": self.warnings,
            "timing_ms": self.timing_ms,
            "duplicate": self.duplicate,
            "role": self.role,
            "routing": self.routing,
        }
        if include_features:
            data["features"] = self.features
            data["window_features"] = self.window_features
        return data


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _with_socket_timeouts(connection_string: str, seconds: float = 1.0) -> str:
    """Feast's Redis client has no socket timeouts by default: a hung Redis would hold a read
    forever. Add them unless the connection string sets its own."""
    extra = [
        f"{key}={seconds}"
        for key in ("socket_timeout", "socket_connect_timeout")
        if f"{key}=" not in connection_string
    ]
    return ",".join([connection_string, *extra])


def _configured_aggregator(feature_set: Any) -> Any:
    from slipway.windows import aggregator_from_settings

    return aggregator_from_settings(feature_set)


def request_parser(usecase: UseCase) -> TransactionParser:
    """The use case's request parser (``UseCase.serving.parser``)."""
    if usecase.serving is None:
        raise ValueError(f"use case {usecase.name} declares no serving spec (request parser)")
    return usecase.serving.parser()


class OnlineScorer:
    """Scores transactions with the registry's champion and the feature store's online state.

    ``feature_path`` is ``direct`` (default: ``OnlineStore.online_read`` plus the on-demand
    function in process, TTL-aware) or ``feast`` (``FeatureStore.get_online_features``).
    ``reload_every`` bounds how often the registry is asked whether the champion moved.
    The feature store is opened lazily, so a scorer starts (and reports health) before the
    registry or online store exist.
    """

    def __init__(
        self,
        usecase: UseCase,
        lakehouse: Lakehouse,
        store_factory: Any,
        parser: TransactionParser,
        feature_path: str = "direct",
        reload_every: float = 5.0,
        enforce_ttl: bool = True,
        guard: GuardedCall | None = None,
        windows: WindowFeatureReader | None = None,
    ) -> None:
        assert usecase.model is not None, f"use case {usecase.name} declares no model"
        self.usecase = usecase
        self.spec: ModelSpec = usecase.model
        self.lakehouse = lakehouse
        self.parser = parser
        self.feature_path = feature_path
        self.enforce_ttl = enforce_ttl
        self.guard = guard or GuardedCall()
        self.champions = ChampionWatcher(lakehouse, self.spec, check_every=reload_every)
        self._store_factory = store_factory
        self._store: Any = None
        self._reader: DirectFeatureReader | FeastFeatureReader | None = None
        self._reader_error: str | None = None
        self._lock = threading.Lock()
        self.windows = windows or WindowFeatureReader(
            usecase.window_features, _configured_aggregator
        )
        examples = usecase.examples
        self.row_key = examples.row_key if examples else usecase.primary.key
        self.entity_columns: tuple[str, ...] = examples.entity_columns if examples else ()
        self.canary = CanaryMonitor()

    @classmethod
    def from_env(
        cls,
        usecase: UseCase | None = None,
        feature_path: str | None = None,
        reload_every: float | None = None,
    ) -> OnlineScorer:
        """The scorer for this environment's lakehouse and Feast store (``SLIPWAY_*`` vars).

        ``SLIPWAY_SERVING_FEATURE_PATH`` (``direct``/``feast``) and
        ``SLIPWAY_SERVING_RELOAD_SECONDS`` override the defaults when arguments are not given;
        ``SLIPWAY_SERVING_STORE_DEADLINE_MS`` (250) and ``SLIPWAY_SERVING_STORE_COOLDOWN_S`` (5)
        bound how long a request waits on a sick online store (all read once, into
        :class:`slipway.settings.Settings`).
        """
        from slipway.featurestore.store import repo_config
        from slipway.settings import load_settings

        if usecase is None:
            from slipway.usecases import get_usecase

            usecase = get_usecase()
        settings = load_settings(usecase.name)
        path = feature_path or settings.serving_feature_path
        every = reload_every if reload_every is not None else settings.serving_reload_seconds
        # The configuration is read now, from this environment; the store opens on first use.
        config = repo_config(settings, usecase)
        if config.online_store.type == "redis":
            config.online_store.connection_string = _with_socket_timeouts(
                config.online_store.connection_string
            )
        guard = GuardedCall(
            deadline_s=settings.serving_store_deadline_ms / 1000,
            cooldown_s=settings.serving_store_cooldown_s,
        )

        def open_store() -> Any:
            from feast import FeatureStore

            return FeatureStore(config=config)

        def open_windows(feature_set: Any) -> Any:
            from slipway.windows import aggregator_from_settings

            return aggregator_from_settings(feature_set, settings)

        return cls(
            usecase=usecase,
            lakehouse=Lakehouse(settings.lakehouse_root),
            store_factory=open_store,
            parser=request_parser(usecase),
            feature_path=path,
            reload_every=every,
            guard=guard,
            windows=WindowFeatureReader(
                usecase.window_features, open_windows, cooldown_s=guard.cooldown_s
            ),
        )

    # -- parts --------------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def reader(self) -> DirectFeatureReader | FeastFeatureReader | None:
        """The online feature reader, resolved from the registry once (None while unavailable)."""
        if self._reader is None:
            try:
                reader = make_reader(
                    self.feature_path,
                    self.store,
                    self.spec.feature_service,
                    transforms=self._transforms(),
                    enforce_ttl=self.enforce_ttl,
                    guard=self.guard,
                    provided=self.windows.view_names,
                )
            except Exception as exc:  # serve with missing features, say why
                self._reader_error = (
                    f"feature service {self.spec.feature_service!r} unavailable: "
                    f"{type(exc).__name__}: {exc}"
                )
                log.warning(self._reader_error)
                return None
            # The first read opens connections and fills Feast's caches (over a second for
            # get_online_features): it gets a long deadline of its own, not the per-request one.
            try:
                GuardedCall(deadline_s=WARM_UP_DEADLINE_S, cooldown_s=0.0)(reader.warm_up)
            except StoreUnavailable as exc:  # a store that is down now is reported per request
                self.guard.mark_down(f"warm-up: {exc}")
            self._reader, self._reader_error = reader, None
        return self._reader

    def _transforms(self) -> dict[str, Any]:
        """The on-demand views' functions, as the use case's parser provides them."""
        return dict(getattr(self.parser, "transforms", None) or {})

    def warm_up(self) -> None:
        """Load the champion and resolve the feature service now, not on the first request."""
        self.champions.refresh(force=True)
        self.reader()

    # -- scoring ------------------------------------------------------------------------------
    def prepare(self, transactions: Sequence[Any]) -> list[PreparedTransaction]:
        """Validate every transaction first: one bad record rejects the call, by position."""
        return self.parser.parse_many(transactions)

    def score(self, transaction: Mapping[str, Any], include_features: bool = False) -> ScoreResult:
        prepared = self.parser.parse(transaction)
        return self.score_prepared([prepared], include_features)[0]

    def score_many(
        self, transactions: Sequence[Mapping[str, Any]], include_features: bool = False
    ) -> list[ScoreResult]:
        return self.score_prepared(self.prepare(transactions), include_features)

    def _entity_rows(self, prepared: Sequence[PreparedTransaction]) -> list[dict[str, Any]]:
        keys = self.entity_columns
        return [{**p.request, **{k: p.values[k] for k in keys}} for p in prepared]

    def _features(
        self, rows: list[dict[str, Any]], provided: dict[str, list[Any]]
    ) -> OnlineFeatures:
        n = len(rows)
        reader = self.reader()
        if reader is None:
            reason = self._reader_error or "feature service unavailable"
            return OnlineFeatures({}, [{} for _ in rows], [[] for _ in rows], [reason])
        try:
            return reader.read(rows, provided)
        except Exception as exc:  # the Feast path raises on store failures
            reason = f"online features unavailable: {type(exc).__name__}: {exc}"
            log.warning(reason)
            return OnlineFeatures({}, [{} for _ in range(n)], [[] for _ in range(n)], [reason])

    def score_prepared(
        self, prepared: Sequence[PreparedTransaction], include_features: bool = False
    ) -> list[ScoreResult]:
        """Score already-validated transactions in one pass (one store read, one predict per
        model: the champion's, and the challenger's on the same frame while one exists)."""
        if not prepared:
            return []
        started, cpu_started = time.perf_counter(), time.thread_time()
        lineup = self.champions.lineup()
        champion: Champion = lineup.champion
        t_model = time.perf_counter()
        rows = self._entity_rows(prepared)
        with self._lock:  # one online-store and one window-store connection per scorer
            windowed = self.windows.read([p.values for p in prepared])
            t_windows = time.perf_counter()
            self.guard.cpu_s = 0.0
            fetched = self._features(rows, windowed.values)
            store_cpu = self.guard.cpu_s  # a thread-run read's helper thread (inline: 0)
        t_features = time.perf_counter()
        # The model's input, assembled column-wise: window features from the aggregator, stored
        # and request-time features from the store, the transaction's own fields from the
        # request, None where nothing came back.
        n = len(rows)
        columns: dict[str, list[Any]] = {}
        for name in self.spec.features:
            if name in rows[0]:
                columns[name] = [r[name] for r in rows]
            elif name in windowed.values:
                columns[name] = windowed.values[name]
            else:
                columns[name] = fetched.values.get(name) or [None] * n
        encoded = Encoded.from_columns(columns, self.spec)  # once, for both models
        scores = champion.predict_encoded(encoded)
        t_scored = time.perf_counter()
        challenger, routing = lineup.challenger, lineup.routing
        shadow_scores, shadow_error = None, None
        if challenger is not None and routing.mode != CHAMPION_ONLY:
            try:  # the same frame: the same features, fetched once
                shadow_scores = challenger.predict_encoded(encoded)
            except Exception as exc:  # never the champion's problem
                shadow_error = (
                    f"challenger v{challenger.version} failed: {type(exc).__name__}: {exc}"
                )
                log.warning(shadow_error)
        t_shadow = time.perf_counter()
        timing = {
            "champion": _ms(t_model - started),
            "windows": _ms(t_windows - t_model),
            "features": _ms(t_features - t_model),
            "model": _ms(t_scored - t_features),
            "shadow": _ms(t_shadow - t_scored),
            "total": _ms(t_shadow - started),
            # CPU time of the pass (this thread's, plus the store read's helper thread): what
            # the pass costs, apart from waiting for a core on a busy machine.
            "cpu": _ms(time.thread_time() - cpu_started + store_cpu),
        }
        ch_version = challenger.version if challenger else None
        entity = routing.entity or (self.entity_columns[0] if self.entity_columns else self.row_key)
        salt = routing.salt_for(ch_version)
        base_routing = {
            "mode": routing.mode,
            "rule": routing.rule(entity, ch_version),
            "share": routing.share if routing.mode == CANARY else 0.0,
            "entity": entity,
            "champion_version": champion.version,
            "challenger_version": ch_version,
        }
        if routing.tripped:
            base_routing["tripped"] = routing.tripped
        results, canary_pairs, canary_errors = [], [], 0
        for i, p in enumerate(prepared):
            record = {name: columns[name][i] for name in self.spec.features}
            errors = [*windowed.errors, *fetched.errors]
            missing = self._missing(record, {**windowed.reasons[i], **fetched.reasons[i]}, errors)
            cp_score = float(scores[i])
            cp = {
                "role": "champion",
                "model_version": champion.version,
                "score": cp_score,
                "threshold": champion.threshold,
                "flagged": cp_score >= champion.threshold,
            }
            routed = dict(base_routing)
            canary = to_challenger(routing, salt, p.values.get(entity))
            other: list[dict[str, Any]] = []
            decided = cp
            if challenger is not None and (shadow_scores is not None or shadow_error):
                if shadow_scores is not None:
                    ch_score = float(shadow_scores[i])
                    ch = {
                        "role": "challenger",
                        "model_version": challenger.version,
                        "score": ch_score,
                        "threshold": challenger.threshold,
                        "flagged": ch_score >= challenger.threshold,
                    }
                else:
                    ch = {
                        "role": "challenger",
                        "model_version": challenger.version,
                        "score": None,
                        "threshold": challenger.threshold,
                        "flagged": None,
                        "error": shadow_error,
                    }
                if canary and shadow_scores is not None:
                    decided, other = ch, [cp]
                    canary_pairs.append((cp_score, ch["score"]))
                else:
                    other = [ch]
                    if canary:  # the challenger was to decide and could not: the champion did
                        routed["fallback"] = shadow_error
                        canary_errors += 1
            routed["canary"] = bool(canary)
            results.append(
                ScoreResult(
                    event_id=p.values[self.row_key],
                    score=decided["score"],
                    flagged=decided["flagged"],
                    threshold=decided["threshold"],
                    model_name=self.spec.name,
                    model_version=decided["model_version"],
                    feature_service=self.spec.feature_service,
                    feature_path=self.feature_path,
                    missing_features=missing,
                    warnings=[*errors, *windowed.notes[i], *fetched.notes[i]],
                    timing_ms=dict(timing),
                    features=record if include_features else {},
                    duplicate=windowed.duplicate[i],
                    window_features={k: v[i] for k, v in windowed.values.items()},
                    role=decided["role"],
                    routing=routed,
                    shadow=other,
                    key_name=self.row_key,
                )
            )
        if routing.mode == CANARY and challenger is not None and (canary_pairs or canary_errors):
            self._guard_canary(lineup, canary_pairs, canary_errors, timing)
        return results

    def _guard_canary(
        self,
        lineup: Any,
        pairs: list[tuple[float, float]],
        errors: int,
        timing: Mapping[str, float],
    ) -> None:
        """Add this pass's canary events to the guard's window; trip when a limit is crossed."""
        challenger = lineup.challenger
        found = self.canary.add(
            (lineup.champion.version, challenger.version),
            lineup.routing.limits,
            (lineup.champion.threshold, challenger.threshold),
            pairs,
            errors,
            (timing["model"], timing["shadow"]),
        )
        if found:
            self.champions.trip("; ".join(found))
            self.canary.reset()

    def _missing(
        self, values: Mapping[str, Any], reasons: Mapping[str, str], errors: Sequence[str]
    ) -> list[MissingFeature]:
        """Every model feature that is null before encoding, or a category the model lacks."""
        out = []
        for name in self.spec.features:
            value = values.get(name)
            categories = self.spec.categorical_features.get(name)
            if not is_null(value):
                if categories is not None and value not in categories:
                    out.append(
                        MissingFeature(
                            name,
                            f"category {value!r} unknown to the model: encoded as missing",
                            None,
                        )
                    )
                continue
            reason = reasons.get(name)
            if reason is None:
                absent = sorted({r.split(":", 1)[0] for r in reasons.values()})
                reason = (
                    errors[0] if errors else "request-time feature undefined for this transaction"
                )
                if absent and not errors:
                    reason += f" (stored state absent: {', '.join(absent)})"
            out.append(MissingFeature(name, reason, self.spec.missing_defaults.get(name)))
        return out

    # -- introspection ------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        reader = self._reader
        store_type = None
        try:
            store_type = self.store.config.online_store.type
        except Exception as exc:  # health must answer even then
            store_type = f"unavailable: {exc}"
        champion = self.champions.status()
        return {
            "status": "ok" if champion["model_version"] is not None else "no_champion",
            **champion,
            "feature_service": self.spec.feature_service,
            "feature_path": self.feature_path,
            "features_ready": reader is not None,
            "features_error": self._reader_error,
            "online_store": store_type,
            "online_store_degraded": self.guard.down_reason,
            "window_features": list(self.windows.view_names),
            "window_store_degraded": self.windows.down_reason,
            "feast_project": getattr(self._store, "project", None),
        }

    def model_record(self) -> dict[str, Any]:
        """The champion's registry record (raises ``NoChampionError`` without one)."""
        return record_dict(self.champions.current().record)

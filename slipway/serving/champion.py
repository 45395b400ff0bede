"""The champion model, kept loaded and swapped when the MLflow ``champion`` alias moves.

A promotion or a rollback sets the registered model's ``champion`` alias in MLflow; the scorer
notices it on its next check (at most every ``check_every`` seconds) and loads the new version, so
neither needs a restart. A check is one read of the registered model (its aliases) from the
backend store; the model itself is downloaded only when the alias points somewhere new.

A version that fails to load (a model file that no longer matches its recorded sha256, say)
never replaces a working champion: the old one keeps serving and the error is reported by
``status()`` (and ``GET /health``). Only when no champion can be loaded at all do calls fail.

The same check reads the ``challenger`` alias and the routing document (the registered model's
``routing`` tag, ``slipway.serving.routing``): the challenger is loaded beside the champion for
shadow and canary scoring, and a routing change (a canary started, a rollback) applies on the
next check like a promotion. A challenger that cannot be loaded never affects the champion: the
scorer runs without it and says why.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from slipway.featurestore.on_demand import PLAIN_NUMBERS
from slipway.lakehouse import Lakehouse
from slipway.registry.store import CHALLENGER, CHAMPION, ModelRegistry, ModelVersion
from slipway.serving.routing import ROUTING_TAG, Routing
from slipway.training.train import load_booster, model_frame
from slipway.usecase import ModelSpec

log = logging.getLogger(__name__)


class NoChampionError(RuntimeError):
    """No model holds the champion alias yet: nothing may score."""


class ModelLoadError(RuntimeError):
    """The champion exists in the registry but its model cannot be loaded."""


class Encoded:
    """The pass's features encoded once: the numeric matrix handed to LightGBM directly, and the
    frame ``model_frame`` builds (the training/batch encoding), built only when a model needs it.
    What the shadow shares with the champion, so a second model costs only its own ``predict``.

    LightGBM's own pandas path re-derives category codes on every call (milliseconds per call);
    when a model's stored categories equal the spec's lists (``Champion.direct_matrix``), the
    codes ``model_frame`` assigns are the category's position in the spec's list, so the matrix
    is built with those codes from the pass's python lists, with no frame at all (a frame costs
    ~1-2 ms per pass, more than LightGBM's predict of a few rows). Values that are not plain
    numbers or strings take ``model_frame`` itself. tests/unit/test_encoded.py holds the matrix
    equal to the one built from ``model_frame``; the integration tests hold the scores equal to
    batch scoring.
    """

    def __init__(self, frame: pd.DataFrame, spec: ModelSpec) -> None:
        self._source: pd.DataFrame | dict[str, list[Any]] = frame
        self._frame: pd.DataFrame | None = model_frame(frame, spec)
        self.spec = spec
        self._matrix: np.ndarray | None = None

    @classmethod
    def from_columns(cls, columns: dict[str, list[Any]], spec: ModelSpec) -> Encoded:
        """The pass's columns (name -> one value per event), not yet a frame."""
        encoded = cls.__new__(cls)
        encoded._source, encoded._frame, encoded.spec, encoded._matrix = columns, None, spec, None
        return encoded

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = model_frame(pd.DataFrame(self._source), self.spec)
        return self._frame

    def matrix(self) -> np.ndarray:
        if self._matrix is None:
            if self._frame is None:
                self._matrix = _matrix_from_lists(self._source, self.spec)  # type: ignore[arg-type]
            if self._matrix is None:
                self._matrix = _matrix_from_frame(self.frame, self.spec)
        return self._matrix


_CODES: dict[tuple[str, ...], dict[str, float]] = {}


def _codes(categories: tuple[str, ...]) -> dict[str, float]:
    codes = _CODES.get(categories)
    if codes is None:
        codes = _CODES[categories] = {c: float(i) for i, c in enumerate(categories)}
    return codes


def _matrix_from_frame(encoded: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    columns = [encoded[name].to_numpy(dtype="float64") for name in spec.numeric_features]
    for name in spec.categorical_features:
        codes = encoded[name].cat.codes.to_numpy().astype("float64")
        codes[codes < 0] = np.nan
        columns.append(codes)
    return np.column_stack(columns)


def _matrix_from_lists(columns: dict[str, list[Any]], spec: ModelSpec) -> np.ndarray | None:
    """``model_frame``'s encoding of python lists, or None where a value needs pandas' coercion
    (anything but plain numbers, None, and strings in categorical columns)."""
    missing = [c for c in spec.features if c not in columns]
    if missing:
        raise KeyError(f"model {spec.name} needs columns that are not in the frame: {missing}")
    n = len(columns[spec.features[0]]) if spec.features else 0
    out = np.empty((n, len(spec.features)), dtype="float64")
    j = 0
    for name in spec.numeric_features:
        values = columns[name]
        if not all(isinstance(v, PLAIN_NUMBERS) for v in values):
            return None
        column = np.array(values, dtype="float64")
        default = spec.missing_defaults.get(name)
        if default is not None:
            column[np.isnan(column)] = default
        out[:, j] = column
        j += 1
    nan = float("nan")
    for name, categories in spec.categorical_features.items():
        codes = _codes(tuple(categories))
        values = columns[name]
        if not all(v is None or isinstance(v, str) for v in values):
            return None
        out[:, j] = [nan if v is None else codes.get(v, nan) for v in values]
        j += 1
    return out


@dataclass(frozen=True)
class Champion:
    """A loaded champion: its registry record, booster and decision threshold."""

    record: ModelVersion
    booster: Any
    threshold: float
    loaded_at: dt.datetime
    direct_matrix: bool

    @property
    def version(self) -> int:
        return self.record.version

    def predict(self, frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
        """Scores for ``frame`` (see ``predict_encoded``)."""
        return self.predict_encoded(Encoded(frame, spec))

    def predict_encoded(self, encoded: Encoded) -> np.ndarray:
        """Scores for an already encoded frame: champion and challenger share one encoding."""
        if not self.direct_matrix:
            return self.booster.predict(encoded.frame)
        return self.booster.predict(encoded.matrix(), num_threads=1)


def record_dict(record: ModelVersion) -> dict[str, Any]:
    """A registry record as JSON-able data."""
    data = asdict(record)
    data["created_at"] = record.created_at.isoformat()
    return data


def _matches_spec(booster: Any, spec: ModelSpec) -> bool:
    categories = [list(c) for c in spec.categorical_features.values()]
    stored = getattr(booster, "pandas_categorical", None)
    return booster.feature_name() == list(spec.features) and stored == categories


@dataclass(frozen=True)
class Lineup:
    """What scores live events now: the champion, the challenger (None: none, or not loadable)
    and the routing that applies to them."""

    champion: Champion
    challenger: Champion | None
    routing: Routing


class ChampionWatcher:
    """Loads the champion (and challenger) of ``spec.name`` and reloads when an alias moves.

    ``check_every`` bounds how often the registry is consulted (seconds; 0 checks on every
    call). Thread-safe: concurrent callers share one load.
    """

    def __init__(self, lakehouse: Lakehouse, spec: ModelSpec, check_every: float = 5.0) -> None:
        self.lakehouse = lakehouse
        self.registry = ModelRegistry(lakehouse)
        self.spec = spec
        self.check_every = check_every
        self._lock = threading.Lock()
        self._champion: Champion | None = None
        self._challenger: Champion | None = None
        self._challenger_alias: int | None = None
        self._challenger_error: str | None = None
        self._routing = Routing()
        self._routing_text: str | None = None
        self._override: Routing | None = None  # a guard trip, until the registry shows it
        self._checked_at = float("-inf")
        self._last_error: str | None = None
        self._alias_version: int | None = None
        self.routing_changed_at: float | None = None  # monotonic time of the last change seen

    def _load(self, version: int) -> Champion:
        record = self.registry.get(self.spec.name, version)
        booster = load_booster(self.registry.load_text(self.spec.name, version))
        threshold = float(record.metrics.get("threshold_at_precision", 0.5))
        return Champion(
            record=record,
            booster=booster,
            threshold=threshold,
            loaded_at=dt.datetime.now(dt.UTC),
            direct_matrix=_matches_spec(booster, self.spec),
        )

    def refresh(self, force: bool = False) -> bool:
        """Consult the registry now; True when a different champion was loaded."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked_at < self.check_every:
                return False
            self._checked_at = now
            try:
                aliases, tags = self.registry.state(self.spec.name)
            except Exception as exc:  # the registry is unreachable: keep serving what is loaded
                self._last_error = f"cannot read the champion alias of {self.spec.name}: {exc}"
                log.error(self._last_error)
                return False
            alias = aliases.get(CHAMPION)
            self._alias_version = alias
            self._refresh_challenger(aliases.get(CHALLENGER), alias)
            self._refresh_routing(tags.get(ROUTING_TAG), now)
            current = self._champion.version if self._champion else None
            if alias is None:
                if self._champion is not None:
                    log.warning("champion alias of %s was cleared: scoring stops", self.spec.name)
                self._champion = None
                return current is not None
            if alias == current and self._last_error is None:
                return False
            try:
                champion = self._load(alias)
            except Exception as exc:  # keep serving the previous champion
                self._last_error = f"cannot load {self.spec.name} v{alias}: {exc}"
                log.error(self._last_error)
                return False  # the next check retries: the alias still differs from the loaded one
            self._last_error = None
            self._champion = champion
            log.info("champion of %s is now v%s (was %s)", self.spec.name, alias, current)
            return alias != current

    def _refresh_challenger(self, alias: int | None, champion: int | None) -> None:
        if alias == champion:
            alias = None
        loaded = self._challenger.version if self._challenger else None
        self._challenger_alias = alias
        if alias is None:
            self._challenger, self._challenger_error = None, None
            return
        if alias == loaded and self._challenger_error is None:
            return
        try:
            self._challenger = self._load(alias)
            self._challenger_error = None
            log.info("challenger of %s is v%s (was %s)", self.spec.name, alias, loaded)
        except Exception as exc:  # the champion serves alone; the guard counts it as errors
            self._challenger = None
            self._challenger_error = f"cannot load challenger {self.spec.name} v{alias}: {exc}"
            log.error(self._challenger_error)

    def _refresh_routing(self, text: str | None, now: float) -> None:
        if text == self._routing_text:
            return
        try:
            routing = Routing.from_json(text)
        except (TypeError, ValueError) as exc:  # a hand-edited tag: keep the last good one
            log.error("routing tag of %s unreadable, kept the last one: %s", self.spec.name, exc)
            return
        self._routing_text, self._routing = text, routing
        self._override = None  # the registry has spoken since the trip
        self.routing_changed_at = now
        log.info("routing of %s is now %s (%s)", self.spec.name, routing.mode, routing.reason)

    def current(self) -> Champion:
        """The champion to score with (checking the registry when a check is due)."""
        return self.lineup().champion

    def lineup(self) -> Lineup:
        """Champion, challenger and routing to score with (checking the registry when due)."""
        self.refresh()
        champion, challenger = self._champion, self._challenger
        routing = self._override or self._routing
        if champion is None:
            if self._last_error:
                raise ModelLoadError(self._last_error)
            raise NoChampionError(
                f"no champion for model {self.spec.name!r} yet: train a model and promote it "
                "(the registry's champion alias is empty)"
            )
        version = challenger.version if challenger else None
        return Lineup(champion, challenger, routing.effective(version))

    @property
    def challenger_error(self) -> str | None:
        return self._challenger_error

    def trip(self, reason: str, run_id: str | None = None) -> Routing:
        """Send canary traffic back to the champion now (this process) and in the registry
        (every process, on their next check); the challenger stays in shadow."""
        with self._lock:
            tripped = self._routing.with_(
                mode="shadow", share=0.0, tripped=reason, reason=f"canary guard: {reason}"
            )
            self._override = tripped
        try:
            self.registry.set_routing(self.spec.name, tripped, run_id)
        except Exception as exc:  # this process stays tripped; say the others may not be
            log.error("canary guard tripped but the registry was not updated: %s", exc)
        log.warning("canary of %s tripped: %s", self.spec.name, reason)
        return tripped

    def status(self) -> dict[str, Any]:
        champion = self._champion
        challenger = self._challenger
        routing = self._override or self._routing
        return {
            "model_name": self.spec.name,
            "model_version": champion.version if champion else None,
            "registry_champion": self._alias_version,
            "threshold": champion.threshold if champion else None,
            "loaded_at": champion.loaded_at.isoformat() if champion else None,
            "check_every_s": self.check_every,
            "reload_error": self._last_error,
            "challenger_version": challenger.version if challenger else None,
            "registry_challenger": self._challenger_alias,
            "challenger_error": self._challenger_error,
            "routing": routing.effective(challenger.version if challenger else None).mode,
            "canary_share": routing.share,
            "routing_reason": routing.reason,
            "routing_tripped": routing.tripped,
        }

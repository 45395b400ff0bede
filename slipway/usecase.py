"""The shape of a use case: everything specific to one dataset and model, declared in one place.

The platform's machinery (ingestion, contracts, quarantine, features, Feast, training, registry,
monitoring) is generic and reads a :class:`UseCase`. The flagship fraud declaration lives in
``slipway.usecases.fraud``; the next use case is a new declaration, not a fork of the machinery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa
    from pyspark.sql import Column, DataFrame

FieldType = Literal["string", "double", "long", "boolean", "timestamp", "date"]


DEFAULT_MAX_STRING_LENGTH = 256


@dataclass(frozen=True)
class Field:
    """One field of a landed record, as the upstream promises to deliver it.

    The ingestion machinery enforces what a field declares, before the use case's contract runs:
    a JSON scalar (never an object or array), at most ``max_length`` characters for strings (a
    bound on every id, so a 1 MiB value is rejected instead of stored), a finite number for
    ``double``, and for ``timestamp`` an explicit zone and at most microsecond precision.
    ``timezone`` declares the zone a timestamp without one is taken in; left None, a timestamp
    without a zone is rejected rather than silently read as UTC.
    """

    name: str
    dtype: FieldType
    required: bool = True
    normalise: Literal["upper", "lower", "strip"] | None = "strip"
    description: str = ""
    max_length: int | None = DEFAULT_MAX_STRING_LENGTH
    timezone: str | None = None


@dataclass(frozen=True)
class Stream:
    """A daily landing stream: files under ``{landing}/{name}/{YYYY-MM-DD}/`` with a manifest.

    ``derive`` adds columns computed from the typed fields (a Spark column expression per new
    column), e.g. an amount converted to a reporting currency.
    """

    name: str
    key: str
    event_time: str
    fields: tuple[Field, ...]
    contract: Callable[[], pa.DataFrameSchema]
    derive: Callable[[], Mapping[str, Column]] | None = None
    file_pattern: str = "*.jsonl*"
    description: str = ""

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@dataclass(frozen=True)
class Reference:
    """A slowly changing reference table delivered as full snapshots (latest snapshot wins)."""

    name: str
    key: str
    fields: tuple[Field, ...]
    contract: Callable[[], pa.DataFrameSchema]
    description: str = ""


@dataclass(frozen=True)
class LabelRule:
    """A label computed from the examples' own columns, e.g. "arrival delay above 15 minutes".

    ``positive`` and ``exclude`` take a pandas frame holding at least ``columns`` and return a
    boolean Series aligned with it. An excluded example (e.g. a cancelled flight) has no label: it
    is dropped from training sets and from performance figures, and is still scored. The label
    columns are never model features: they are known only once the outcome is.
    """

    columns: tuple[str, ...]
    positive: Callable[[pd.DataFrame], pd.Series]
    exclude: Callable[[pd.DataFrame], pd.Series] | None = None
    description: str = ""


@dataclass(frozen=True)
class LabelSpec:
    """Where labels come from and when an example's label can be trusted.

    Two kinds. ``stream``: positives arrive as rows on a stream (e.g. chargebacks keyed by
    ``key``) ``reported_at`` some days after the event; the absence of a positive is a negative
    once the example has matured. ``rule``: the outcome is a column of the example itself (set
    once known) and :class:`LabelRule` turns it into a label. Either way an example is *matured*
    once ``maturity_days`` have passed since its event time, and only matured examples are
    trained or judged on.
    """

    maturity_days: int
    target: str = "label"
    stream: str | None = None
    key: str | None = None
    reported_at: str | None = None
    rule: LabelRule | None = None

    def __post_init__(self) -> None:
        if (self.stream is None) == (self.rule is None):
            raise ValueError("a label needs exactly one of stream= (positives) or rule= (a column)")
        if self.stream is not None and (self.key is None or self.reported_at is None):
            raise ValueError(f"label stream {self.stream!r} needs key= and reported_at=")
        if self.maturity_days < 0:
            raise ValueError(f"maturity_days must be >= 0, got {self.maturity_days}")

    @property
    def kind(self) -> Literal["stream", "rule"]:
        return "stream" if self.stream is not None else "rule"


@dataclass(frozen=True)
class IngestPolicy:
    """When a landed batch is held back instead of published (the circuit breaker)."""

    max_bad_share: float = 0.05
    require_manifest: bool = True
    # "table": a stream's key is unique across every day of its silver table (a copy re-sent
    # on a later day is quarantined naming the first day); "day": only within each day.
    unique_key_scope: Literal["table", "day"] = "table"


@dataclass(frozen=True)
class FeatureTable:
    """A feature table computed by Spark from gold/silver and served through Feast.

    ``build(spark, inputs, start, end)`` returns the rows whose timestamp falls in ``[start, end]``
    (dates, inclusive); ``inputs`` maps table names to Spark DataFrames already restricted to
    ``[start - lookback_days, end]``.
    """

    name: str
    entity: str
    timestamp: str
    inputs: tuple[str, ...]
    lookback_days: int
    build: Callable[..., DataFrame]
    contract: Callable[[], pa.DataFrameSchema]
    partitioned: bool = True
    description: str = ""


WindowOp = Literal["count", "sum", "mean", "max", "distinct_count", "last", "recent_set"]
NUMERIC_WINDOW_OPS = frozenset({"sum", "mean", "max"})


@dataclass(frozen=True)
class WindowAggregation:
    """One windowed aggregation of an entity's earlier events, e.g. ``txn_count_1h``.

    The value for event ``e`` aggregates the entity's events that *arrived before* ``e`` with an
    event time in ``[t_e - window, t_e)`` (see :class:`WindowFeatureSet`). ``window=None`` means
    the set's horizon (its largest window). Numeric inputs (``sum``, ``mean``, ``max``, and
    ``last`` of a number) are fixed-point with ``decimals`` places and are added as integers of
    ``10**-decimals`` units, so a sum is exact in any order, offline and online alike. Timestamp
    inputs are aggregated as epoch seconds (``last`` of the event time is the epoch of the
    entity's latest earlier event). ``distinct_count`` and ``recent_set`` take string columns;
    every op ignores null inputs, as SQL aggregates do. Empty windows give 0 for counts and sums,
    null for ``mean``, ``max`` and ``last``, and an empty list for ``recent_set``.
    """

    name: str
    op: WindowOp
    input: str | None = None
    window: dt.timedelta | None = None
    decimals: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if (self.op == "count") != (self.input is None):
            raise ValueError(f"{self.name}: 'count' takes no input; every other op needs one")
        if self.window is not None and self.window <= dt.timedelta(0):
            raise ValueError(f"{self.name}: a window must be positive, got {self.window}")
        if self.decimals is not None and not 0 <= self.decimals <= 9:
            raise ValueError(f"{self.name}: decimals must be within 0..9, got {self.decimals}")


@dataclass(frozen=True)
class WindowFeatureSet:
    """Window features of one entity, declared once for the Spark backfill and the aggregator.

    Semantics: the feature for event ``e`` aggregates the ``entity``'s events that arrived before
    ``e`` (``(arrival, event_id)`` sorts before ``e``'s) with ``event_time`` in
    ``[t_e - W, t_e)``. The offline table ``features.<name>`` has one row per event keyed by
    ``event_id``; the online aggregator returns the same values when it sees the events in any
    order that respects arrival, and keeps each entity's events for the horizon plus
    ``allowed_lateness`` (an event later than that may miss pruned state and is reported
    incomplete).
    """

    name: str
    entity: str
    event_id: str
    event_time: str
    arrival: str
    aggregations: tuple[WindowAggregation, ...]
    source: str
    allowed_lateness: dt.timedelta = dt.timedelta(days=1)
    description: str = ""

    def __post_init__(self) -> None:
        names = [a.name for a in self.aggregations]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"{self.name}: aggregations need unique names, got {names}")
        if all(a.window is None for a in self.aggregations):
            raise ValueError(f"{self.name}: at least one aggregation needs a window (the horizon)")
        decimals: dict[str, int | None] = {}
        for agg in self.aggregations:
            if agg.input is None or agg.op in ("distinct_count", "recent_set"):
                continue
            if agg.input in decimals and decimals[agg.input] != agg.decimals:
                raise ValueError(
                    f"{self.name}: every aggregation of {agg.input!r} must use the same decimals"
                )
            decimals[agg.input] = agg.decimals

    @property
    def horizon(self) -> dt.timedelta:
        """The largest window: how far back any feature of an event looks."""
        return max(a.window for a in self.aggregations if a.window is not None)

    def window_of(self, agg: WindowAggregation) -> dt.timedelta:
        return agg.window if agg.window is not None else self.horizon

    @property
    def inputs(self) -> tuple[str, ...]:
        """The input columns the aggregations read, in declaration order."""
        return tuple(dict.fromkeys(a.input for a in self.aggregations if a.input is not None))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.aggregations)

    @property
    def table(self) -> str:
        """The offline Delta feature table."""
        return f"features.{self.name}"


@dataclass(frozen=True)
class PromotionPolicy:
    """When a challenger may replace the champion.

    A challenger must beat the champion on the same holdout by ``margin`` on ``metric``; the very
    first model must clear the absolute ``floors`` instead.
    """

    metric: str = "pr_auc"
    margin: float = 0.005
    floors: Mapping[str, float] = field(default_factory=lambda: {"pr_auc": 0.2, "roc_auc": 0.8})


@dataclass(frozen=True)
class ModelSpec:
    """The model's inputs, label and defaults.

    Categorical features carry their full category list so that training, batch scoring and the
    online scorer encode them identically (an unseen value becomes missing, never a new code).
    ``missing_defaults`` are what the online scorer uses when a feature cannot be fetched; the
    response flags every default it used.
    """

    name: str
    target: str
    feature_service: str
    numeric_features: tuple[str, ...]
    categorical_features: Mapping[str, tuple[str, ...]]
    params: Mapping[str, Any]
    missing_defaults: Mapping[str, float] = field(default_factory=dict)
    precision_target: float = 0.9
    validation_days: int = 7
    promotion: PromotionPolicy = field(default_factory=PromotionPolicy)

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.numeric_features, *self.categorical_features)


@dataclass(frozen=True)
class FeatureDrift:
    """A per-feature drift rule, overriding the per-kind default of :class:`MonitoringSpec`.

    ``stattest`` and ``threshold`` replace the kind's (an Evidently method id such as
    ``wasserstein``; a distance drifts above its threshold, a p-value below it). ``window_days``
    > 1 compares the trailing window of that many days (the day and the ones before it) with
    the reference: a feature that is constant within a day (a daily rate, hourly weather) has
    one or a few values per day, too few for a one-day test to mean anything. The key ``score``
    sets the prediction-drift rule. ``python -m slipway.monitoring.calibrate`` proposes these
    from history.
    """

    stattest: str | None = None
    threshold: float | None = None
    window_days: int = 1

    def __post_init__(self) -> None:
        if self.window_days < 1:
            raise ValueError(f"window_days must be >= 1, got {self.window_days}")


@dataclass(frozen=True)
class MonitoringSpec:
    """When the model's world has moved enough to act.

    Drift: a feature drifts when its Evidently test says so (per-column statistic vs threshold);
    the day drifts when the share of drifted model features reaches ``drift_share``, or the
    prediction distribution itself drifts. The reference is the last ``reference_days`` of the
    champion's training window (all of it when None), sampled to ``reference_size`` rows,
    whatever the validation window is; days inside it never alert.

    The ``*_stattest`` fields (Evidently method ids such as ``wasserstein``, ``jensenshannon``,
    ``psi``) and thresholds fix the test per kind of column (numeric features, categorical
    features, the model's score); ``feature_drift`` overrides them per feature (and adds
    multi-day windows). Left unset, Evidently picks by sample size, and its p-value tests on
    small days flag shifts too small to matter. Alerts only concern the current champion and
    days after the window it was trained on: drift against data the model learned from is not
    news.

    Performance: once a scored day's labels matured, the share of its positives the champion
    catches at its validation operating threshold (the threshold that reached
    ``ModelSpec.precision_target`` on validation) is tested against the validation recall at
    that threshold, allowing for the day's number of positives and for the day-to-day
    overdispersion seen on the validation days (see ``slipway.monitoring.performance``). A day
    is degraded when that one-sided test gives a p-value below ``performance_alpha`` *and* the
    recall is at least ``min_recall_drop`` below validation. The day's PR-AUC is reported
    against the median of the champion's per-day validation PR-AUCs (like with like: a pooled
    PR-AUC is higher than a typical day's); ``max_pr_auc_drop`` is kept for that display and
    no longer decides. Days with fewer than ``min_positives_for_performance`` positives are
    recorded and not judged.
    """

    drift_share: float = 0.3
    numeric_stattest: str | None = None
    numeric_threshold: float | None = None
    categorical_stattest: str | None = None
    categorical_threshold: float | None = None
    prediction_stattest: str | None = None
    prediction_threshold: float | None = None
    sample_size: int = 20_000
    reference_size: int = 20_000
    max_pr_auc_drop: float = 0.1
    min_positives_for_performance: int = 5
    monitored_features: tuple[str, ...] = ()
    # The drift reference: the last ``reference_days`` of the champion's *training* window
    # (None: all of it), independent of the validation window.
    reference_days: int | None = None
    feature_drift: Mapping[str, FeatureDrift] = field(default_factory=dict)
    performance_alpha: float = 0.01
    min_recall_drop: float = 0.1

    def __post_init__(self) -> None:
        if self.reference_days is not None and self.reference_days < 1:
            raise ValueError(f"reference_days must be >= 1 or None, got {self.reference_days}")
        if not 0 < self.performance_alpha < 1:
            raise ValueError(f"performance_alpha must be in (0, 1), got {self.performance_alpha}")

    def feature_rule(self, name: str) -> FeatureDrift:
        """The declared rule of ``name`` (a default one when the feature has none)."""
        return self.feature_drift.get(name) or FeatureDrift()


@dataclass(frozen=True)
class Examples:
    """What one example (a row the model is trained on and scores) is.

    ``table`` holds one row per example (e.g. ``gold.enriched_transactions``), keyed by
    ``row_key`` and stamped with ``event_time``. ``entity_columns`` are carried with every
    prediction and served decision (so a decision can be traced and joined back);
    ``request_columns`` are the example's own columns the model reads as they are, beside the
    features fetched from Feast (at prediction time they come with the request).
    """

    table: str
    row_key: str
    event_time: str
    entity_columns: tuple[str, ...]
    request_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class DbtSpec:
    """The use case's dbt models: ``dbt_project/models/<folder>/``, selected by ``select``."""

    folder: str
    select: str = ""

    @property
    def selection(self) -> str:
        return self.select or f"path:models/{self.folder}"


@dataclass(frozen=True)
class FeastSpec:
    """The use case's Feast repository (a folder under ``feature_repo/``) and project name."""

    repo: str
    project: str


@dataclass(frozen=True)
class ServingSpec:
    """How the online scorer turns a request into an example row.

    ``parser`` builds the request parser (``slipway.serving.request.TransactionParser`` or
    anything with its ``parse``/``parse_many``); it is a factory so that declaring a use case
    imports nothing heavy.
    """

    parser: Callable[[], Any]


@dataclass(frozen=True)
class SampleData:
    """What ``make run`` lands when the landing area is empty: a simulator or a dataset adapter.

    ``write(landing_root, start, days, progress=None, **overrides)`` writes ``days`` daily landing
    folders from ``start`` (an ISO date) and returns the primary stream's landed dates.
    """

    write: Callable[..., list[dt.date]]
    start: str
    days: int
    description: str = ""


@dataclass(frozen=True)
class UseCase:
    """Everything the machinery needs to know about one use case."""

    name: str
    streams: tuple[Stream, ...]
    references: tuple[Reference, ...]
    label: LabelSpec
    examples: Examples | None = None
    # The stream whose daily arrivals trigger ingestion and the live path (default: the first).
    primary_stream: str | None = None
    # The daily partitions' first day; None: the settings' ``partition_start``.
    partition_start: str | None = None
    dbt: DbtSpec | None = None
    feast: FeastSpec | None = None
    serving: ServingSpec | None = None
    sample_data: SampleData | None = None
    ingest: IngestPolicy = field(default_factory=IngestPolicy)
    feature_tables: tuple[FeatureTable, ...] = ()
    model: ModelSpec | None = None
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)
    extras: Mapping[str, Any] = field(default_factory=dict)
    window_features: tuple[WindowFeatureSet, ...] = ()

    @property
    def primary(self) -> Stream:
        """The primary stream (``primary_stream``, else the first declared)."""
        return self.stream(self.primary_stream) if self.primary_stream else self.streams[0]

    def stream(self, name: str) -> Stream:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(f"use case {self.name!r} has no stream {name!r}")

    def reference(self, name: str) -> Reference:
        for r in self.references:
            if r.name == name:
                return r
        raise KeyError(f"use case {self.name!r} has no reference {name!r}")

    def window_feature_set(self, name: str) -> WindowFeatureSet:
        for w in self.window_features:
            if w.name == name:
                return w
        raise KeyError(f"use case {self.name!r} has no window feature set {name!r}")

    def feature_table(self, name: str) -> FeatureTable:
        for t in self.feature_tables:
            if t.name == name:
                return t
        raise KeyError(f"use case {self.name!r} has no feature table {name!r}")

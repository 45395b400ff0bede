"""The HTTP service's request and response shapes (pydantic), for validation and the OpenAPI doc.

The request model is generated from the use case's landing declaration (``Stream.fields``), so
the documented body is exactly what the upstream promises to land; the rules a transaction must
pass are silver's (``slipway.serving.request``), not restated here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model

from slipway.usecase import Stream

_DOC_TYPES: dict[str, Any] = {
    "string": str,
    "double": float,
    "long": int,
    "boolean": bool,
    "timestamp": str,
    "date": str,
}


def transaction_model(stream: Stream) -> type[BaseModel]:
    """A pydantic model of one landed record of ``stream`` (documentation of the body)."""
    fields: dict[str, Any] = {}
    for spec in stream.fields:
        kind = _DOC_TYPES[spec.dtype]
        extra = {"format": "date-time"} if spec.dtype == "timestamp" else {}
        description = spec.description or spec.name
        if spec.normalise in ("upper", "lower"):
            description += f" (normalised to {spec.normalise} case)"
        fields[spec.name] = (
            kind if spec.required else kind | None,
            Field(... if spec.required else None, description=description, json_schema_extra=extra),
        )
    return create_model(f"{stream.name.title()}In", **fields)


def _default_usecase() -> Any:
    from slipway.usecases import get_usecase

    return get_usecase()


_USECASE = _default_usecase()
_ROW_KEY = _USECASE.examples.row_key if _USECASE.examples else _USECASE.primary.key
TransactionIn = transaction_model(_USECASE.primary)


class MissingFeatureOut(BaseModel):
    feature: str = Field(description="a model feature the online store did not supply")
    reason: str = Field(description="why: not in the online store, expired, store failure…")
    used: float | None = Field(
        description="the declared default the model got, or null: scored as missing (NaN)"
    )


class _ScoreFields(BaseModel):
    score: float = Field(
        description="the deciding model's score (the champion's, or on a canary the challenger's)"
    )
    flagged: bool = Field(description="score >= threshold")
    threshold: float = Field(description="the champion's recorded threshold_at_precision")
    model_name: str
    model_version: int
    feature_service: str
    feature_path: str = Field(description="'direct' (online_read + on-demand function) or 'feast'")
    missing_features: list[MissingFeatureOut]
    warnings: list[str] = Field(description="online-store failures that were degraded")
    timing_ms: dict[str, float] = Field(
        description="queue, champion check, feature read, model and total, in milliseconds"
    )
    features: dict[str, Any] | None = Field(
        default=None, description="the model's input before encoding (with ?features=true)"
    )
    role: str | None = Field(
        default=None, description="'champion', or 'challenger' when a canary routed the event"
    )
    routing: dict[str, Any] | None = Field(
        default=None,
        description="routing mode and rule, canary share, champion and challenger versions",
    )


# The row key is named as the use case names it (e.g. the transaction id).
ScoreOut = create_model(
    "ScoreOut", __base__=_ScoreFields, **{_ROW_KEY: (str, Field(description="the row key"))}
)


_SCORE_FIELDS = frozenset(ScoreOut.model_fields)


def score_body(result: Any, include_features: bool) -> dict[str, Any]:
    """``ScoreOut`` of ``result`` as plain data, without building the model: what FastAPI's
    response-model pass gives for ``result.as_dict`` (its fields only, timings as floats)."""
    data = {k: v for k, v in result.as_dict(include_features).items() if k in _SCORE_FIELDS}
    data["timing_ms"] = {k: float(v) for k, v in data["timing_ms"].items()}
    data["score"] = float(data["score"])
    data["threshold"] = float(data["threshold"])
    for missing in data["missing_features"]:
        if missing["used"] is not None:
            missing["used"] = float(missing["used"])
    return data


# A batch body is ``{"<primary stream name>": [...]}`` (or a bare JSON list).
BATCH_KEY = _USECASE.primary.name
BatchIn = create_model(
    "BatchIn", **{BATCH_KEY: (list[TransactionIn], Field(description="the records to score"))}
)


class BatchOut(BaseModel):
    results: list[ScoreOut]  # type: ignore[valid-type]
    model_version: int
    count: int
    timing_ms: dict[str, float]


class UpOut(BaseModel):
    status: str = Field(description="'up' while the champion can score, else 'down' (HTTP 503)")


class HealthOut(BaseModel):
    status: str = Field(description="'ok', or 'no_champion' while nothing may score")
    model_name: str
    model_version: int | None
    registry_champion: int | None = Field(description="the version the alias named when checked")
    threshold: float | None
    loaded_at: str | None
    check_every_s: float
    reload_error: str | None
    feature_service: str
    feature_path: str
    features_ready: bool
    features_error: str | None
    online_store: str | None
    online_store_degraded: str | None = Field(
        description="why the online store is being skipped right now (null: in use)"
    )
    feast_project: str | None
    challenger_version: int | None = Field(
        default=None, description="the challenger loaded beside the champion (shadow/canary)"
    )
    registry_challenger: int | None = None
    challenger_error: str | None = None
    routing: str | None = Field(default=None, description="'shadow', 'canary' or 'champion'")
    canary_share: float | None = None
    routing_reason: str | None = None
    routing_tripped: str | None = Field(
        default=None, description="why the canary guard sent traffic back to the champion"
    )


class FieldErrorOut(BaseModel):
    field: str
    rule: str
    message: str


class ErrorOut(BaseModel):
    detail: str
    errors: list[FieldErrorOut] | None = None
    index: int | None = Field(default=None, description="position in a batch request")

"""The online scoring HTTP service: a thin FastAPI wrapper around ``OnlineScorer``.

``make serve`` runs ``python -m slipway.serving`` (uvicorn, after ``check_bind``). Endpoints:
``POST /score`` (one transaction), ``POST /score/batch`` (a list), ``GET /health`` (up or down,
open to probes), ``GET /health/details`` and ``GET /model``. Errors are answered, never crashed
on: 400 for a body that is not JSON (or nested too deep), 401 without a valid API key, 413 for a
body over the limit, 415 for one that is not ``application/json``, 422 naming each field and
rule a transaction breaks, 503 while no champion exists, 500 only when the champion cannot be
loaded. No error repeats more than a bounded prefix of what was sent (``security.bounded``);
keys, limits and the loopback rule are in ``slipway.serving.security``.

Scoring runs on one worker thread behind a micro-batcher (``slipway.serving.batching``): the
event loop parses and validates, the worker scores whatever has queued up in one pass.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from slipway.serving.batching import MicroBatcher
from slipway.serving.champion import ModelLoadError, NoChampionError
from slipway.serving.request import FieldError, InvalidTransaction
from slipway.serving.schema import (
    BATCH_KEY,
    BatchIn,
    BatchOut,
    ErrorOut,
    HealthOut,
    ScoreOut,
    TransactionIn,
    UpOut,
    score_body,
)
from slipway.serving.scorer import OnlineScorer
from slipway.serving.security import (
    ASGIApp,
    Guard,
    Receive,
    Scope,
    Send,
    bounded,
    check_startup,
    parse_json,
)
from slipway.settings import ServingSecurity, load_serving_security, load_settings
from slipway.streaming.http import open_http_decisions

log = logging.getLogger(__name__)

MAX_BATCH = load_settings().serving_max_batch


class BadRequest(ValueError):
    """The body is not what the endpoint reads (not JSON, wrong shape)."""


def _body_schema(model: Any) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _parse(state: Any, raw: bytes) -> Any:
    """The body as JSON under the depth limit; anything else is the caller's 400."""
    try:
        return parse_json(raw, state.security.max_json_depth)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


async def _json(request: Request) -> Any:
    # already read, under its size limit, by the Guard
    return _parse(request.app.state, await request.body())


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, **extra})


def _invalid_response(exc: InvalidTransaction) -> JSONResponse:
    """422 naming each field and rule, each caller's value cut to a bounded prefix."""
    errors = [{**e.as_dict(), "message": bounded(e.message)} for e in exc.errors]
    where = f"transaction {exc.index}: " if exc.index is not None else ""
    detail = where + "; ".join(f"{bounded(e['field'])}: {e['message']}" for e in errors)
    return _error(422, detail, errors=errors, index=exc.index)


async def _score(state: Any, records: list[Any]) -> list[Any]:
    """Prepare on the event loop, score on the batcher's thread; logged before it resolves."""
    scorer: OnlineScorer = state.scorer
    try:
        prepared = scorer.prepare(records)
    except ArithmeticError as exc:  # e.g. a 400-digit amount: the caller's number, not ours
        log.warning("a request's number overflowed the parser: %s", bounded(str(exc)))
        rule = FieldError("(number)", "finite_number", f"a number is out of range ({exc})")
        raise InvalidTransaction([rule]) from None
    # Features always: the served log keeps them; the response shows them when asked.
    future = state.batcher.submit(prepared, include_features=True)
    return await asyncio.wrap_future(future)  # logged by the batcher before it resolves


async def _score_one(state: Any, raw: bytes, features: bool) -> Response:
    """``POST /score``'s work, shared by the FastAPI route and the lean route."""
    body = _parse(state, raw)
    if not isinstance(body, dict):
        raise BadRequest("the body must be one transaction (a JSON object)")
    (result,) = await _score(state, [body])
    # ScoreOut's fields, encoded directly: FastAPI's response-model pass (validate, then
    # serialise) cost more per request than the scoring pass's share; a test holds this body
    # equal to what that pass gives.
    return Response(orjson.dumps(score_body(result, features)), media_type="application/json")


# What FastAPI (pydantic, lax mode) reads as a bool query parameter; anything else goes to it.
_BOOLS = {
    **dict.fromkeys((b"0", b"off", b"f", b"false", b"n", b"no"), False),
    **dict.fromkeys((b"1", b"on", b"t", b"true", b"y", b"yes"), True),
}


def _lean_features(query: bytes) -> bool | None:
    """``?features=`` when the query is empty or just that flag; ``None`` sends it to FastAPI."""
    if not query:
        return False
    name, eq, value = query.partition(b"=")
    if name != b"features" or not eq:
        return None
    return _BOOLS.get(value.lower())


class LeanScore:
    """ASGI middleware, inside the Guard: ``POST /score`` answered without FastAPI's routing.

    At 1,000 req/s the event loop shares one GIL with the scoring thread; FastAPI's route
    matching, dependency solving and ``Request`` objects cost about as much per request as the
    request's share of a scoring pass. This does the route's own work (``_score_one``) with the
    same error answers (the same handlers' bodies), and hands anything unusual (another path or
    method, another query) to FastAPI, whose ``/score`` route stays declared for the schema and
    as the fallback. The Guard has already checked the key, content type and size.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/score" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        features = _lean_features(scope.get("query_string", b""))
        if features is None:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:  # the Guard's replay: one message, already read under the limit
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            response = await _score_one(scope["app"].state, b"".join(chunks), features)
        except BadRequest as exc:
            response = _error(400, str(exc))
        except InvalidTransaction as exc:
            response = _invalid_response(exc)
        except NoChampionError as exc:
            response = _error(503, str(exc))
        except ModelLoadError as exc:
            response = _error(500, str(exc))
        await response(scope, receive, send)


def freeze_long_lived_objects() -> None:
    """Move everything loaded so far out of the garbage collector's sight; call after warm-up.

    Feast, pandas, LightGBM and the model live as long as the process. Left in the tracked
    generations, each full collection walks them (~100 ms here), which shows up as a latency
    spike and can trip the online-store guard's 250 ms deadline.
    """
    gc.collect()
    gc.freeze()


def create_app(
    scorer_factory: Callable[[], OnlineScorer] | None = None,
    security: ServingSecurity | None = None,
    lean: bool = True,
) -> FastAPI:
    """The app; ``scorer_factory`` (default ``OnlineScorer.from_env``) runs at startup.

    ``security`` (default: from the environment, ``load_serving_security``) sets the keys and
    input limits; startup fails in production without keys, or with a weak key. ``lean=False``
    leaves ``POST /score`` to FastAPI's route (``LeanScore`` off): the comparison its tests use.
    """
    security = security or load_serving_security()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_startup(security, is_prod=load_settings().is_prod)
        scorer = (scorer_factory or OnlineScorer.from_env)()
        try:
            scorer.warm_up()
        except Exception as exc:  # start anyway; requests report the state
            log.warning("warm-up failed: %s", exc)
        freeze_long_lived_objects()
        app.state.scorer = scorer
        app.state.decisions = open_http_decisions(scorer.usecase)  # the live path's served log
        app.state.batcher = MicroBatcher(scorer, record=app.state.decisions.record)
        try:
            yield
        finally:
            app.state.batcher.close()
            app.state.decisions.close()

    app = FastAPI(
        title="Slipway online scoring",
        description="Scores live events with the registry's champion (challenger in shadow or on canary) and Feast features.",
        lifespan=lifespan,
        responses={
            400: {"model": ErrorOut, "description": "the body is not JSON or not a transaction"},
            401: {"model": ErrorOut, "description": "no valid API key (SLIPWAY_API_KEYS)"},
            413: {"model": ErrorOut, "description": "the body is over the size limit"},
            415: {"model": ErrorOut, "description": "the body is not application/json"},
            422: {"model": ErrorOut, "description": "a transaction breaks the silver contract"},
            503: {"model": ErrorOut, "description": "no champion model yet"},
        },
    )
    app.state.security = security
    if lean:
        app.add_middleware(LeanScore)  # added first, so it runs after (inside) the Guard
    app.add_middleware(Guard, security=security)

    @app.exception_handler(BadRequest)
    async def _bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(InvalidTransaction)
    async def _invalid(_: Request, exc: InvalidTransaction) -> JSONResponse:
        return _invalid_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own checks (query parameters), in our error shape, never echoing input."""
        errors = [
            {
                "field": bounded(".".join(str(part) for part in e.get("loc", ()))),
                "rule": str(e.get("type", "invalid")),
                "message": bounded(str(e.get("msg", ""))),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return _error(422, detail or "invalid request", errors=errors)

    @app.exception_handler(NoChampionError)
    async def _no_champion(_: Request, exc: NoChampionError) -> JSONResponse:
        return _error(503, str(exc))

    @app.exception_handler(ModelLoadError)
    async def _load_error(_: Request, exc: ModelLoadError) -> JSONResponse:
        return _error(500, str(exc))

    @app.post(
        "/score",
        response_model=ScoreOut,
        response_model_exclude_unset=True,
        openapi_extra=_body_schema(TransactionIn),
    )
    async def score(request: Request, features: bool = False) -> Response:
        """Score one transaction as landed by the upstream.

        Served by ``LeanScore`` for a plain ``?features=`` query; declared here for the schema
        and for any other query.
        """
        return await _score_one(request.app.state, await request.body(), features)

    @app.post(
        "/score/batch",
        response_model=BatchOut,
        response_model_exclude_unset=True,
        openapi_extra=_body_schema(BatchIn),
    )
    async def score_batch(request: Request, features: bool = False) -> dict[str, Any]:
        """Score a list of records in one pass: a JSON list, or ``{"<primary stream>": [...]}``."""
        started = time.perf_counter()
        body = await _json(request)
        records = body.get(BATCH_KEY) if isinstance(body, dict) else body
        if not isinstance(records, list):
            raise BadRequest(f'the body must be a JSON list of records or {{"{BATCH_KEY}": [...]}}')
        if len(records) > MAX_BATCH:
            raise BadRequest(f"at most {MAX_BATCH} records per batch, got {len(records)}")
        results = await _score(request.app.state, records) if records else []
        version = results[0].model_version if results else None
        if version is None:
            version = request.app.state.scorer.champions.current().version
        return {
            "results": [r.as_dict(include_features=features) for r in results],
            "model_version": version,
            "count": len(results),
            "timing_ms": {"total": round((time.perf_counter() - started) * 1000.0, 3)},
        }

    @app.get(
        "/health",
        response_model=UpOut,
        responses={503: {"model": UpOut, "description": "down: nothing may score"}},
    )
    def health(request: Request) -> JSONResponse:
        """Up or down, and nothing else: open to probes, so it says nothing about the model."""
        up = request.app.state.scorer.health()["status"] == "ok"
        return JSONResponse({"status": "up" if up else "down"}, status_code=200 if up else 503)

    @app.get("/health/details", response_model=HealthOut)
    def health_details(request: Request) -> dict[str, Any]:
        """Model version, feature service and online store; answers even without a champion."""
        return request.app.state.scorer.health()

    @app.get("/model")
    def model(request: Request) -> dict[str, Any]:
        """The champion's registry record: metrics, features, lineage, file checksum."""
        return request.app.state.scorer.model_record()

    return app


app = create_app()

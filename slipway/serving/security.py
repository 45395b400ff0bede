"""The scorer's front door: API keys, where it may listen, and how much of a request it reads.

Everything here runs before a request reaches the scorer, as one plain ASGI middleware
(``Guard``) plus the JSON reader the endpoints call (``parse_json``):

* **keys** (``SLIPWAY_API_KEYS``): every path but ``/health`` needs ``Authorization: Bearer
  <key>`` or ``X-API-Key: <key>``; a missing and a wrong key get the same 401, and the presented
  key is compared with every configured key in constant time (SHA-256 digests, so not even the
  length of a key shows in the timing).
* **no keys** is the embedded default: open, but only to requests that arrive on a loopback
  address (a second line behind ``check_bind``, which refuses to start a keyless service on any
  other address, and behind production's refusal to start without keys at all).
* **hostile input**: only ``application/json`` bodies (415), at most ``max_body_bytes`` read,
  counted while reading so that a chunked body without ``Content-Length`` is cut off too (413),
  JSON nested at most ``max_json_depth`` deep (400); every message echoes at most a bounded
  prefix of what was sent (``bounded``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from slipway.settings import ServingSecurity, require_prod_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})
"""Answered without a key, for load balancers and probes: they say up or down, nothing more."""

MIN_KEY_LENGTH = 16
PLACEHOLDERS = ("change-me", "changeme", "example", "placeholder", "secret")
ECHO_LIMIT = 120
"""The most characters of anything a caller sent that an error message repeats."""

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
UNAUTHORIZED = "missing or invalid API key"
LOOPBACK_ONLY = (
    "this service has no API keys (SLIPWAY_API_KEYS) and answers on loopback addresses only"
)


class InsecureConfiguration(RuntimeError):
    """The service would start open to callers it cannot tell apart; the message says how to fix."""


def bounded(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters: its head and tail, and how much was left out.

    The tail is kept because messages built around a caller's value end with the rule it broke.
    """
    if len(text) <= limit:
        return text
    head, tail = (limit * 2) // 3, limit // 3
    return f"{text[:head]}…[{len(text) - head - tail} characters]…{text[-tail:]}"


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address, or ``localhost``) can only be reached from this machine."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


class ApiKeys:
    """The configured keys, held as SHA-256 digests; ``allows`` checks every one, always."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._digests = tuple(hashlib.sha256(k.encode()).digest() for k in keys)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def allows(self, presented: str | None) -> bool:
        if not self._digests or presented is None:
            return False
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        allowed = False
        for known in self._digests:  # no early exit: the time does not say which key matched
            allowed |= hmac.compare_digest(digest, known)
        return allowed


def weak_keys(keys: tuple[str, ...]) -> list[str]:
    """Why each unusable key is unusable (never the key itself: logs are read by others)."""
    problems = []
    for i, key in enumerate(keys, start=1):
        if len(key) < MIN_KEY_LENGTH:
            problems.append(f"key {i} is shorter than {MIN_KEY_LENGTH} characters")
        elif not (key.isascii() and key.isprintable()):
            problems.append(f"key {i} has characters an HTTP header cannot carry as they are")
        elif any(p in key.lower() for p in PLACEHOLDERS):
            problems.append(f"key {i} still holds a placeholder")
    return problems


def check_startup(security: ServingSecurity, *, is_prod: bool) -> None:
    """Refuse a production service without keys, and any service with a weak key."""
    if is_prod and not security.api_keys:
        raise InsecureConfiguration(
            "SLIPWAY_ENV=prod needs SLIPWAY_API_KEYS (comma-separated keys of at least "
            f"{MIN_KEY_LENGTH} characters, e.g. from `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`)"
        )
    problems = weak_keys(security.api_keys)
    if problems:
        raise InsecureConfiguration("SLIPWAY_API_KEYS: " + "; ".join(problems))
    if is_prod:  # a hand-started production service never falls back to an embedded store
        try:
            require_prod_settings({**os.environ, "SLIPWAY_ENV": "prod"})
        except RuntimeError as exc:
            raise InsecureConfiguration(str(exc)) from None


def check_bind(host: str, security: ServingSecurity, *, is_prod: bool) -> None:
    """Refuse to listen on ``host`` when that would open a keyless service to the network."""
    check_startup(security, is_prod=is_prod)
    if not security.api_keys and not is_loopback(host):
        raise InsecureConfiguration(
            f"refusing to listen on {host!r} without API keys: set SLIPWAY_API_KEYS, or listen "
            "on 127.0.0.1 (the default) and put an authenticating proxy in front"
        )


class DepthExceeded(ValueError):
    pass


_CONTAINERS = frozenset({dict, list})


def _depth_within(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests at most ``limit`` deep, one level at a time.

    A level whose containers hold only scalars is checked in C (``map(type, ...)``), so a batch
    of flat transactions costs a fraction of what parsing it did.
    """
    level = [value]
    for _ in range(limit):
        deeper: list[Any] = []
        for node in level:
            items = node.values() if type(node) is dict else node
            if not _CONTAINERS.isdisjoint(map(type, items)):
                deeper.extend([child for child in items if type(child) in _CONTAINERS])
        if not deeper:
            return True
        level = deeper
    return False


def parse_json(raw: bytes, max_depth: int) -> Any:
    """The body as JSON, or a ``ValueError`` with a short message that repeats none of it.

    A body with at most ``max_depth`` brackets cannot nest deeper, which covers one transaction
    for the cost of two byte counts; only a bigger body (a batch) is walked after parsing. Deeper
    than the interpreter's recursion limit, the parser itself gives up (``RecursionError``).
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise DepthExceeded(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digits limit
        raise ValueError(f"request body is not valid JSON: {bounded(str(exc))}") from None
    if (
        raw.count(b"[") + raw.count(b"{") > max_depth
        and type(value) in _CONTAINERS
        and not _depth_within(value, max_depth)
    ):
        raise DepthExceeded(f"JSON nested deeper than {max_depth} levels")
    return value


def _is_json(content_type: bytes | None) -> bool:
    if not content_type:
        return False
    media, _, params = content_type.decode("latin-1").partition(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return False  # JSON is UTF-8 (RFC 8259)
    return True


async def _answer(send: Send, status: int, detail: str, headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: key check, then content type, then the body read under its limit."""

    def __init__(self, app: ASGIApp, security: ServingSecurity) -> None:
        self.app = app
        self.keys = ApiKeys(security.api_keys)
        self.max_body = security.max_body_bytes

    def _presented_key(self, headers: dict[bytes, bytes]) -> str | None:
        value = headers.get(b"x-api-key")
        if value is not None:
            return value.decode("latin-1").strip()
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.keys:
            if scope["path"] not in OPEN_PATHS and not self.keys.allows(
                self._presented_key(headers)
            ):
                await _answer(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
                return
        elif not is_loopback((scope.get("server") or (None,))[0]):
            await _answer(send, 403, LOOPBACK_ONLY)
            return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        if not _is_json(headers.get(b"content-type")):
            await _answer(send, 415, "the body must be JSON: send content-type: application/json")
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _answer(send, 413, f"request body larger than {self.max_body} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:  # read under the limit: a chunked body declares no length
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _answer(send, 413, f"request body larger than {self.max_body} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

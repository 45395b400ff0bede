"""The scorer's front door, against the real service: ``python -m slipway.serving`` on loopback.

Who may call (API keys from ``SLIPWAY_API_KEYS``; keyless only on loopback; production refuses to
start without keys) and what a hostile request gets (a 4xx with a short message, never a 5xx,
never more than a bounded prefix of what it sent): each case has its own test, and a fuzz test
(hypothesis, bounded by ``max_examples`` and a timeout) throws arbitrary bodies, types, keys and
paths at the service and asserts that nothing answers 5xx.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slipway.lakehouse import Lakehouse
from slipway.serving import security
from slipway.serving.security import ApiKeys, bounded, is_loopback, parse_json
from slipway.usecases.fraud.landing import TRANSACTION_FIELDS
from tests.support.pipeline import PipelineData, env_for
from tests.support.records import landed_transaction
from tests.support.servers import free_port, terminate

ROOT = Path(__file__).resolve().parents[2]
LANDED = [f.name for f in TRANSACTION_FIELDS]
MAX_BODY = 512 * 1024  # the defaults, which the service under test runs with
MAX_DEPTH = 32
ERROR_BYTES = 16 * 1024  # no error answer may be longer than this, whatever was sent
UNAUTHORIZED = {"detail": "missing or invalid API key"}


# -- the service --------------------------------------------------------------------------------
@dataclass
class Service:
    base: str
    keys: tuple[str, str]
    sample: list[dict[str, Any]]

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key or self.keys[0]}", **extra}


def _wait_until_up(proc: subprocess.Popen, base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            output = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"the service exited ({proc.returncode}): {output[-3000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code in (200, 503):
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"the service did not answer /health in {timeout} s"
        time.sleep(0.25)


@contextmanager
def running(args: list[str], env: dict[str, str], host: str = "127.0.0.1") -> Iterator[str]:
    """A server process on a free port, until the block ends; yields its loopback base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            *args,
            "--host",
            host,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, base)
        yield base
    finally:
        terminate(proc)


def keyless_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, **env_for(data_dir)}
    for name in (
        "SLIPWAY_API_KEYS",
        "SLIPWAY_ENV",
        "SLIPWAY_SERVING_MAX_BODY_BYTES",
        "SLIPWAY_SERVING_MAX_JSON_DEPTH",
    ):
        env.pop(name, None)
    return {**env, **extra}


landed = landed_transaction


@pytest.fixture(scope="module")
def service(pipeline: PipelineData) -> Iterator[Service]:
    """``make serve``'s launcher with two keys and the default limits, on the session world."""
    keys = (secrets.token_urlsafe(24), secrets.token_urlsafe(24))
    env = {
        **keyless_env(pipeline.data_dir),
        "SLIPWAY_API_KEYS": f" {keys[0]} ,{keys[1]}",
    }
    day = Lakehouse(pipeline.lakehouse_root).read("silver.transactions", dates=(pipeline.end,) * 2)
    sample = [landed(r) for r in day.to_pandas().head(10).to_dict("records")]
    with running(["slipway.serving"], env) as base:
        yield Service(base, keys, sample)


def post(service: Service, path: str, content: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{service.base}{path}",
        content=content,
        headers=service.headers(**{"content-type": "application/json", **headers}),
        timeout=30,
    )


def assert_short_4xx(response: httpx.Response, status: int, *, not_echoing: str = "") -> None:
    assert response.status_code == status, response.text[:500]
    assert len(response.content) <= ERROR_BYTES, len(response.content)
    assert isinstance(response.json()["detail"], str)
    if not_echoing:
        assert not_echoing not in response.text


# -- API keys -----------------------------------------------------------------------------------
def test_every_path_but_health_needs_a_key_and_a_401_says_nothing(service: Service) -> None:
    body = json.dumps(service.sample[0])
    calls = [
        ("POST", "/score", body),
        ("POST", "/score/batch", json.dumps([service.sample[0]])),
        ("GET", "/model", None),
        ("GET", "/health/details", None),
        ("GET", "/openapi.json", None),
        ("GET", "/docs", None),
        ("GET", "/no/such/path", None),
    ]
    wrong = [
        {},
        {"authorization": "Bearer " + secrets.token_urlsafe(24)},
        {"authorization": "Bearer " + service.keys[0][:-1]},  # one character short
        {"authorization": "Bearer " + service.keys[0] + service.keys[1]},
        {"authorization": "Basic " + service.keys[0]},  # right key, wrong scheme
        {"x-api-key": service.keys[0].upper()},
        {"authorization": "Bearer"},
    ]
    for method, path, content in calls:
        for headers in wrong:
            response = httpx.request(
                method,
                f"{service.base}{path}",
                content=content,
                headers={"content-type": "application/json", **headers},
                timeout=30,
            )
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json() == UNAUTHORIZED  # the same answer for missing and wrong
            assert response.headers["www-authenticate"] == "Bearer"
            assert not any(k[:6] in response.text for k in service.keys)
            assert "server" not in response.headers  # uvicorn's banner is off

    health = httpx.get(f"{service.base}/health", timeout=30)
    assert health.status_code == 200 and health.json() == {"status": "up"}


def test_each_key_works_in_either_header(service: Service) -> None:
    for key in service.keys:
        for headers in ({"authorization": f"Bearer {key}"}, {"x-api-key": key}):
            scored = httpx.post(
                f"{service.base}/score", json=service.sample[0], headers=headers, timeout=30
            )
            assert scored.status_code == 200, scored.text
            assert 0.0 <= scored.json()["score"] <= 1.0
            model = httpx.get(f"{service.base}/model", headers=headers, timeout=30)
            assert model.status_code == 200 and model.json()["version"] >= 1
            details = httpx.get(f"{service.base}/health/details", headers=headers, timeout=30)
            assert details.json()["status"] == "ok" and details.json()["features_ready"]


def test_the_key_check_compares_with_every_key_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every configured key is compared with ``hmac.compare_digest`` on equal-length digests,
    whichever matches (no early exit, so the time says neither which key nor how long it is)."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", counting)
    keys = ApiKeys(("k" * 16, "l" * 40, "m" * 64))
    for presented, expected in [("k" * 16, True), ("m" * 64, True), ("k" * 15, False), ("", False)]:
        calls.clear()
        assert keys.allows(presented) is expected
        assert calls == [(32, 32)] * 3, calls
    assert not keys.allows(None) and not ApiKeys(()).allows("k" * 16)


def _launch_refused(env: dict[str, str], host: str) -> subprocess.CompletedProcess:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "slipway.serving", "--host", host, "--port", str(port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    with socket.socket() as probe:  # nothing was ever bound there
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return done


def test_launcher_refuses_keyless_network_bind_production_without_keys_and_weak_keys(
    tmp_path: Path,
) -> None:
    keyless = keyless_env(tmp_path)
    for host in ("0.0.0.0", "::", "10.1.2.3", "scorer.internal", ""):
        done = _launch_refused(keyless, host)
        assert done.returncode == 2, (host, done.stderr)
        assert "without API keys" in done.stderr and "SLIPWAY_API_KEYS" in done.stderr

    done = _launch_refused({**keyless, "SLIPWAY_ENV": "prod"}, "127.0.0.1")
    assert done.returncode == 2 and "SLIPWAY_ENV=prod needs SLIPWAY_API_KEYS" in done.stderr

    for weak, why in [
        ("short-key", "shorter than 16"),
        ("change-me-change-me", "placeholder"),
        ("schlüssel-schlüssel-schlüssel", "cannot carry"),
    ]:
        good = secrets.token_urlsafe(24)
        done = _launch_refused({**keyless, "SLIPWAY_API_KEYS": f"{good},{weak}"}, "0.0.0.0")
        assert done.returncode == 2 and "key 2 " in done.stderr and why in done.stderr
        assert weak not in done.stderr and good not in done.stderr  # keys never in the log


def test_uvicorn_started_directly_refuses_production_without_keys(tmp_path: Path) -> None:
    """Bypassing the launcher does not bypass the rule: startup itself fails."""
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "slipway.serving.app:app", "--port", str(port)],
        cwd=ROOT,
        env=keyless_env(tmp_path, SLIPWAY_ENV="prod"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "SLIPWAY_ENV=prod needs SLIPWAY_API_KEYS" in done.stderr


def _listens(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if is_loopback(address) else address


def test_keyless_service_bound_to_every_interface_answers_loopback_only(tmp_path: Path) -> None:
    """``uvicorn --host 0.0.0.0`` without keys (what the launcher refuses): a request that
    arrives on the machine's network address gets 403, one on loopback is served."""
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to call the service on")
    with running(["uvicorn", "slipway.serving.app:app"], keyless_env(tmp_path), "0.0.0.0") as base:
        port = base.rsplit(":", 1)[1]
        local = httpx.get(f"{base}/model", timeout=30)
        assert local.status_code == 503 and "no champion" in local.json()["detail"]
        for path in ("/health", "/model", "/openapi.json"):
            remote = httpx.get(f"http://{address}:{port}{path}", timeout=30)
            assert remote.status_code == 403, remote.text
            assert "loopback" in remote.json()["detail"]
        remote = httpx.post(f"http://{address}:{port}/score", json={"amount": 1}, timeout=30)
        assert remote.status_code == 403


def test_loopback_rule() -> None:
    for host in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "::ffff:127.0.0.1", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "::ffff:10.0.0.1", "", None, "x"):
        assert not is_loopback(host), host


# -- hostile input ------------------------------------------------------------------------------
def raw_answer(service: Service, head: str, parts: list[bytes]) -> str:
    """Send a request head and some body parts, never the rest, and read the whole answer.

    An answer that arrives at all proves the service decided before reading the whole body.
    """
    port = int(service.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode())
        for part in parts:
            s.sendall(part)
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
            head_end = answer.find(b"\r\n\r\n")
            if head_end >= 0:
                lines = answer[:head_end].decode().lower().split("\r\n")
                length = next(int(x.split(":")[1]) for x in lines if x.startswith("content-length"))
                if len(answer) >= head_end + 4 + length:
                    break
    return answer.decode()


def _head(service: Service, framing: str) -> str:
    return (
        "POST /score HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {service.keys[0]}\r\n{framing}\r\n\r\n"
    )


def test_a_10_mb_field_is_refused_before_it_is_read(service: Service) -> None:
    body = json.dumps({**service.sample[0], "merchant_id": "x" * 10_000_000}).encode()
    answer = raw_answer(service, _head(service, f"content-length: {len(body)}"), [body[:4096]])
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert f"larger than {MAX_BODY} bytes" in answer and "xxxxxxxx" not in answer
    assert len(answer) < 1024
    # a client that sends it all gets the same short answer
    response = post(service, "/score", body)
    assert_short_4xx(response, 413, not_echoing="xxxxxxxx")


def test_a_chunked_body_without_length_is_cut_off_at_the_limit(service: Service) -> None:
    chunk = b"y" * 16384
    parts = [b"14\r\n" + b'{"transaction_id": "' + b"\r\n"]
    parts += [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (MAX_BODY // len(chunk) + 2)
    # the body never ends (no last chunk): the answer comes once the limit is passed
    answer = raw_answer(service, _head(service, "transfer-encoding: chunked"), parts)
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "yyyyyyyy" not in answer and len(answer) < 1024

    def chunks() -> Iterator[bytes]:  # 16 MB from an ordinary client
        yield b'{"transaction_id": "'
        for _ in range(1000):
            yield chunk

    response = post(service, "/score", chunks())
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_short_4xx(response, 413, not_echoing="yyyyyyyy")


def test_a_large_field_under_the_limit_is_a_422_that_echoes_a_bounded_prefix(
    service: Service,
) -> None:
    field = "z" * (MAX_BODY - 2048)
    for path, body in [
        ("/score", {**service.sample[0], "amount": field}),
        ("/score", {**service.sample[0], field[:200]: 1, "currency": field}),
        ("/score/batch", [service.sample[0], {**service.sample[1], "channel": field}]),
    ]:
        response = post(service, path, json.dumps(body))
        assert_short_4xx(response, 422, not_echoing="z" * (security.ECHO_LIMIT + 1))
        assert response.json()["errors"], response.text
    # the message still names the field and the rule
    response = post(service, "/score", json.dumps({**service.sample[0], "amount": field}))
    assert response.json()["errors"][0]["field"] == "amount"
    assert response.json()["errors"][0]["rule"] == "parses_as_double"
    assert "characters]" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
        b'{"transactions": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}",
    ],
    ids=["100k-open", "100k-balanced", "10k-objects", "depth+1", "deep-batch"],
)
def test_deeply_nested_json_is_a_400(service: Service, body: bytes) -> None:
    for path in ("/score", "/score/batch"):
        response = post(service, path, body)
        assert_short_4xx(response, 400, not_echoing="[[[[[[[[")
        detail = response.json()["detail"]
        assert "nested deeper" in detail or "not valid JSON" in detail, detail


def test_nesting_up_to_the_limit_parses() -> None:
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, MAX_DEPTH) == parse_json(
        b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, MAX_DEPTH + 5
    )
    with pytest.raises(ValueError, match="nested deeper than 32"):
        parse_json(b"[" * 33 + b"]" * 33, MAX_DEPTH)
    batch = json.dumps({"transactions": [{"a": [1, 2]}] * 500}).encode()
    assert len(parse_json(batch, 4)["transactions"]) == 500
    with pytest.raises(ValueError, match="nested deeper than 3"):
        parse_json(batch, 3)
    assert parse_json(b'"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["', 3).startswith("[[")


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/json; charset=latin-1",
    ],
)
def test_only_json_bodies_are_read(service: Service, content_type: str | None) -> None:
    headers = service.headers()
    if content_type is not None:
        headers["content-type"] = content_type
    body = json.dumps(service.sample[0]).encode()
    response = httpx.post(f"{service.base}/score", content=body, headers=headers, timeout=30)
    assert_short_4xx(response, 415, not_echoing=service.sample[0]["transaction_id"])


def test_json_content_types_that_are_accepted(service: Service) -> None:
    body = json.dumps(service.sample[0]).encode()
    for content_type in ("application/json", "Application/JSON; charset=UTF-8"):
        response = post(service, "/score", body, **{"content-type": content_type})
        assert response.status_code == 200, (content_type, response.text)


def test_other_bad_bodies_and_parameters_are_short_4xx(service: Service) -> None:
    garbage = "q" * 50_000
    cases = [
        ("/score", garbage.encode(), 400),
        ("/score", b"\xff\xfe" + garbage.encode(), 400),  # not UTF-8
        ("/score", json.dumps({**service.sample[0], "amount": 10**4000}).encode(), 422),
        ("/score", json.dumps({**service.sample[0], "amount": 1e308}).encode(), 422),
        ("/score", b'{"amount": 1' + b"0" * 5000 + b"}", 400),  # int over Python's digit limit
        ("/score", json.dumps({**service.sample[0], "amount": float("nan")}).encode(), 422),
        ("/score", b'{"amount": Infinity}', 422),
        ("/score/batch", json.dumps([service.sample[0]] * 1001).encode(), 400),  # > max batch
        ("/score", b"", 400),
    ]
    for path, body, status in cases:
        assert_short_4xx(post(service, path, body), status, not_echoing="q" * 200)
    long_query = "w" * 8000
    response = post(service, f"/score?features={long_query}", json.dumps(service.sample[0]))
    assert_short_4xx(response, 422, not_echoing="w" * 200)
    assert response.json()["errors"][0]["field"] == "query.features"


def test_bounded() -> None:
    assert bounded("short") == "short"
    cut = bounded("a" * 500 + "fails the rule", 60)
    assert len(cut) < 100 and cut.endswith("fails the rule") and "[454 characters]" in cut


# -- fuzz ---------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, -1e308, 5e-324, 10**400, -(10**400), 2**63, -(2**63) - 1, -0.0])
    | st.sampled_from(["2026-08-24T10:00:00+00:00", "9999-12-31T23:59:59Z", "0001-01-01", ""])
    | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def mutated_transaction(draw: st.DrawFn, sample: list[dict[str, Any]]) -> dict[str, Any]:
    record = dict(draw(st.sampled_from(sample)))
    for name in draw(st.lists(st.sampled_from(LANDED), max_size=4, unique=True)):
        if draw(st.booleans()):
            record[name] = draw(json_values)
        else:
            record.pop(name)
    if draw(st.booleans()):
        record[draw(st.text(max_size=10))] = draw(json_values)
    return record


def _requests(sample: list[dict[str, Any]]) -> st.SearchStrategy[tuple]:
    bodies = st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        mutated_transaction(sample).map(lambda v: json.dumps(v).encode()),
        st.lists(mutated_transaction(sample), max_size=4).map(lambda v: json.dumps(v).encode()),
        st.lists(mutated_transaction(sample), max_size=4).map(
            lambda v: json.dumps({"transactions": v}).encode()
        ),
        st.binary(max_size=200),
        st.integers(1, 300).map(lambda n: b"[" * n + b"]" * n),
    )
    return st.tuples(
        st.sampled_from(
            [("POST", "/score")] * 5
            + [("POST", "/score/batch")] * 3
            + [("GET", p) for p in ("/health", "/health/details", "/model", "/openapi.json")]
            + [("PUT", "/score"), ("DELETE", "/model"), ("GET", "/score"), ("POST", "/x")]
        ),
        st.sampled_from([None, "true", "false", "1", "maybe"]) | st.text(max_size=20),
        bodies,
        st.sampled_from(["application/json"] * 4 + ["text/plain", "application/json; q=1"]),
        st.sampled_from(["key", "key", "key", "none", "wrong"]),
    )


@pytest.mark.timeout(300)
def test_fuzz_finds_no_5xx(service: Service) -> None:
    seen: dict[int, int] = {}
    started = time.monotonic()
    with httpx.Client(base_url=service.base, timeout=30) as client:

        @settings(
            max_examples=400,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(_requests(service.sample))
        def probe(request: tuple) -> None:
            (method, path), features, body, content_type, key = request
            headers = {"content-type": content_type}
            if key != "none":
                headers["authorization"] = "Bearer " + (
                    service.keys[0] if key == "key" else secrets.token_urlsafe(24)
                )
            params = {} if features is None else {"features": features}
            response = client.request(method, path, content=body, headers=headers, params=params)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (request, response.text[:1000])
            if response.status_code >= 400:
                assert len(response.content) <= ERROR_BYTES, (request, len(response.content))

        probe()
    assert sum(seen.values()) >= 300
    # the fuzz reached the scorer and each gate, not only one of them
    assert {200, 400, 401, 415, 422} <= set(seen), seen
    print(f"fuzz: {sum(seen.values())} requests in {time.monotonic() - started:.1f}s: {seen}")


# -- the production Redis fragment, on a real redis-server ---------------------------------------
def test_redis_fragment_listens_on_loopback_and_requires_the_password(tmp_path: Path) -> None:
    """``redis-server deploy/prod/redis.conf --include <auth file>``, as docs/operations.md says."""
    import shutil

    import psutil
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH to start the production fragment with")
    password = secrets.token_urlsafe(24)
    auth = tmp_path / "redis-auth.conf"
    auth.write_text(f"requirepass {password}\n")
    auth.chmod(0o600)
    port = free_port()
    proc = subprocess.Popen(
        [
            *(binary, str(ROOT / "deploy/prod/redis.conf"), "--include", str(auth)),
            *("--port", str(port), "--dir", str(tmp_path), "--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while not _listens(port):
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "redis-server did not listen in 20 s"
            time.sleep(0.1)
        listening = {
            c.laddr.ip
            for c in psutil.Process(proc.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening and all(is_loopback(ip) for ip in listening), listening
        anonymous = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5)
        assert client.ping()
        for command in ("FLUSHALL", "CONFIG"):  # renamed away: no client can wipe or reconfigure
            with pytest.raises(redis.ResponseError, match="unknown command"):
                client.execute_command(command, "GET" if command == "CONFIG" else "SYNC")
        address = _non_loopback_address()
        if address is not None:
            with socket.socket() as probe:
                assert probe.connect_ex((address, port)) != 0
    finally:
        terminate(proc)

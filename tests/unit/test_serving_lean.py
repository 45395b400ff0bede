"""The lean ``POST /score`` route answers exactly as FastAPI's route does.

``LeanScore`` skips FastAPI's routing for the hot path; these tests hold its status, body and
headers equal to the declared route's (``create_app(lean=False)``) for every answer it gives,
with a stand-in scorer (the real request parser, so contract errors are the real ones).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import slipway.serving.app as app_module
from slipway.serving.app import LeanScore, _lean_features, create_app
from slipway.serving.champion import NoChampionError
from slipway.serving.scorer import ScoreResult
from slipway.settings import ServingSecurity
from slipway.usecases.fraud.request import fraud_parser
from tests.support.records import tx

KEY = "lean-route-test-key-0123456789"
LOOPBACK = "http://127.0.0.1"


class StubScorer:
    """Validates with the real parser, scores every row 0.25, or has no champion."""

    def __init__(self, champion: bool = True) -> None:
        self.parser = fraud_parser()
        self.champion = champion
        self.usecase = None

    def warm_up(self) -> None:
        pass

    def prepare(self, records: list[Any]) -> list[Any]:
        return self.parser.parse_many(records)

    def score_prepared(self, prepared: list[Any], include_features: bool = False) -> list:
        if not self.champion:
            raise NoChampionError("no champion model yet")
        return [
            ScoreResult(
                p.values["transaction_id"],
                0.25,
                False,
                0.5,
                "m",
                3,
                "svc",
                "direct",
                [],
                ["a warning"],
                {"features": 1.5, "model": 0.5},
                {"amount": 12.0},
            )
            for p in prepared
        ]


class Decisions:
    def __init__(self) -> None:
        self.recorded: list[str] = []

    def record(self, prepared: list[Any], results: list[Any]) -> None:
        self.recorded += [r.event_id for r in results]

    def close(self) -> None:
        pass


@pytest.fixture
def decisions(monkeypatch: pytest.MonkeyPatch) -> Decisions:
    log = Decisions()
    monkeypatch.setattr(app_module, "open_http_decisions", lambda usecase: log)
    return log


def _security() -> ServingSecurity:
    return ServingSecurity(
        api_keys=(KEY,), host="127.0.0.1", port=8000, max_body_bytes=4096, max_json_depth=8
    )


@pytest.fixture
def clients(decisions: Decisions) -> Iterator[tuple[TestClient, TestClient]]:
    lean = create_app(StubScorer, security=_security())
    plain = create_app(StubScorer, security=_security(), lean=False)
    assert any(m.cls is LeanScore for m in lean.user_middleware)
    assert not any(m.cls is LeanScore for m in plain.user_middleware)
    with (
        TestClient(lean, base_url=LOOPBACK) as a,
        TestClient(plain, base_url=LOOPBACK) as b,
    ):
        yield a, b


def _comparable(response: Any) -> tuple[int, dict[str, str], Any]:
    """Status, headers and body, less the server's own timings (queue wait differs per call)."""
    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = response.text
    if isinstance(body, dict):
        body.pop("timing_ms", None)
    assert int(response.headers["content-length"]) == len(response.content)
    return response.status_code, headers, body


AUTH = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
CASES: dict[str, tuple[str, dict[str, str], bytes]] = {
    "ok": ("", AUTH, json.dumps(tx(1)).encode()),
    "features": ("?features=true", AUTH, json.dumps(tx(2)).encode()),
    "no features": ("?features=0", AUTH, json.dumps(tx(3)).encode()),
    "401": ("", {"content-type": "application/json"}, json.dumps(tx(4)).encode()),
    "401 wrong key": ("", {**AUTH, "authorization": "Bearer nope"}, b"{}"),
    "413": ("", AUTH, b'{"x": "' + b"a" * 5000 + b'"}'),
    "415": ("", {**AUTH, "content-type": "text/plain"}, json.dumps(tx(5)).encode()),
    "400 not json": ("", AUTH, b"{nope"),
    "400 not an object": ("", AUTH, b"[1, 2]"),
    "400 too deep": ("", AUTH, b"[" * 20 + b"]" * 20),
    "422": ("", AUTH, json.dumps({**tx(6), "amount": -1}).encode()),
    "422 missing": ("", AUTH, json.dumps({"transaction_id": "t"}).encode()),
    "422 bad flag (FastAPI's)": ("?features=maybe", AUTH, json.dumps(tx(7)).encode()),
    "other query (FastAPI's)": ("?features=true&x=1", AUTH, json.dumps(tx(8)).encode()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lean_route_answers_as_the_fastapi_route(
    clients: tuple[TestClient, TestClient], case: str
) -> None:
    query, headers, body = CASES[case]
    lean, plain = (c.post("/score" + query, content=body, headers=headers) for c in clients)
    assert _comparable(lean) == _comparable(plain), case
    if case in ("ok", "features"):
        assert lean.status_code == 200
        assert ("features" in lean.json()) == (case == "features")


def test_no_champion_is_the_same_503(decisions: Decisions) -> None:
    apps = (
        create_app(lambda: StubScorer(champion=False), security=_security(), lean=lean)
        for lean in (True, False)
    )
    answers = []
    for app in apps:
        with TestClient(app, base_url=LOOPBACK) as c:
            answers.append(c.post("/score", content=json.dumps(tx(9)), headers=AUTH))
    assert answers[0].status_code == 503
    assert _comparable(answers[0]) == _comparable(answers[1])


def test_every_answer_is_logged_before_it_is_given(
    clients: tuple[TestClient, TestClient], decisions: Decisions
) -> None:
    lean, _ = clients
    for i in range(3):
        response = lean.post("/score", content=json.dumps(tx(100 + i)), headers=AUTH)
        assert response.status_code == 200
        assert tx(100 + i)["transaction_id"] in decisions.recorded


def test_the_schema_still_lists_score(clients: tuple[TestClient, TestClient]) -> None:
    lean, plain = clients
    assert (
        lean.get("/openapi.json", headers=AUTH).json()
        == plain.get("/openapi.json", headers=AUTH).json()
    )
    assert "post" in lean.get("/openapi.json", headers=AUTH).json()["paths"]["/score"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", False),
        (b"features=true", True),
        (b"features=YES", True),
        (b"features=off", False),
        (b"features=maybe", None),
        (b"features", None),
        (b"other=1", None),
        (b"features=1&features=0", None),
        (b"features=%74rue", None),
    ],
)
def test_only_a_plain_flag_takes_the_lean_route(query: bytes, expected: bool | None) -> None:
    assert _lean_features(query) == expected

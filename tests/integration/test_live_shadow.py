"""Shadow and canary on the live path, on the embedded default and the real Redis (skipped when absent).

A private copy of the session world gets a challenger (the champion's trees shifted on the logit,
``tests/support/challengers.py``: it reads the same features, and its score of an event is a
known function of the champion's). The last day's events go through the stream -> consumer ->
served log -> ``scoring.served``: the first half with the challenger in shadow, the second half
on a 30% canary. Then: two rows per event (role, version, decided), the challenger's score
computed from the very features the champion saw, the canary's routing stable per customer and at
its share, a deliberately worse challenger tripped by the guard (the reason in the registry and
on the Dagster check), and a rollback picked up by a running scorer within seconds.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from slipway.lakehouse import Lakehouse
from slipway.registry import ModelRegistry
from slipway.registry.rollout import start_canary
from slipway.registry.store import CHAMPION
from slipway.serving.routing import CANARY, SHADOW, GuardLimits, Routing, to_challenger
from slipway.streaming.replay import ReplayResult, landed_lines, replay
from slipway.streaming.served import SERVED, drain_served
from slipway.streaming.streams import LiveStreams, open_streams
from slipway.usecases import get_usecase
from tests.support.challengers import register_shifted_challenger, shifted
from tests.support.pipeline import PipelineData, copy_world, env_for, slipway_env

ROOT = Path(__file__).resolve().parents[2]
SHIFT = 0.2  # a challenger close to the champion: the guard must let it run
SHARE = 0.3


def _extra(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    extra = {"SLIPWAY_STREAM_PREFIX": f"test-{uuid.uuid4().hex[:10]}"}
    if backend == "redis":
        url = f"redis://{request.getfixturevalue('redis_url')}/0"
        extra.update(
            SLIPWAY_STREAM_URL=url,
            SLIPWAY_WINDOWS_URL=url,
            SLIPWAY_WINDOWS_NAMESPACE=f"test:win:{uuid.uuid4().hex[:10]}",
        )
    return extra


def _world(pipeline: PipelineData, target: Path) -> Path:
    return copy_world(pipeline.data_dir, target, ignore=("landing", "streams", "windows"))


@dataclass
class ShadowWorld:
    root: Path
    extra: dict[str, str]
    lines: list[str]
    half: int
    champion: int
    challenger: int
    shadow_run: ReplayResult
    canary_run: ReplayResult
    served: pd.DataFrame


@pytest.fixture(scope="module", params=["embedded", "redis"])
def shadow(
    pipeline: PipelineData,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[ShadowWorld]:
    from slipway.serving.scorer import OnlineScorer

    extra = _extra(request.param, request)
    root = _world(pipeline, tmp_path_factory.mktemp(f"shadow-{request.param}") / "world")
    usecase = get_usecase()
    model = usecase.model.name
    lines = landed_lines(pipeline.landing_root, usecase.primary.name, pipeline.end)
    half = len(lines) // 2
    with slipway_env(root, extra):
        lakehouse = Lakehouse(root / "lakehouse" / "fraud")
        registry = ModelRegistry(lakehouse)
        champion = registry.alias(model, CHAMPION)
        challenger = register_shifted_challenger(registry, model, SHIFT)
        scorer = OnlineScorer.from_env(usecase, reload_every=0)
        scorer.warm_up()
        streams: LiveStreams = open_streams(usecase)
        try:
            shadow_run = replay(usecase, scorer, streams, lines[:half], rate=None)
            start_canary(registry, model, SHARE, reason="test canary")
            canary_run = replay(usecase, scorer, streams, lines[half:], rate=None)
            drain_served(lakehouse, usecase, streams.served.logs)
            served = lakehouse.read(SERVED).to_pandas()
        finally:
            if request.param == "redis":  # only this test's keys
                streams.delete()
            streams.close()
    # Yielded outside the environment: the next tests must not inherit its Redis variables.
    yield ShadowWorld(
        root, extra, lines, half, champion, challenger, shadow_run, canary_run, served
    )


def _ids(lines: list[str]) -> list[str]:
    return [json.loads(line)["transaction_id"] for line in lines]


def test_every_live_event_has_a_shadow_row_on_the_same_features(shadow: ShadowWorld) -> None:
    spec = get_usecase().model
    ids = _ids(shadow.lines[: shadow.half])
    assert shadow.shadow_run.decided == len(ids)
    rows = shadow.served[shadow.served["event_id"].isin(ids)]
    assert len(rows) == 2 * len(ids)  # one row per model, for every event
    per_event = rows.groupby("event_id")["role"].agg(sorted)
    assert (per_event.map(tuple) == ("challenger", "champion")).all()
    champion = rows[rows["role"] == "champion"].set_index("event_id").loc[ids]
    challenger = rows[rows["role"] == "challenger"].set_index("event_id").loc[ids]
    assert champion["decided"].all() and not challenger["decided"].any()  # the champion decides
    assert (champion["model_version"] == shadow.champion).all()
    assert (challenger["model_version"] == shadow.challenger).all()
    for frame in (champion, challenger):
        assert (frame["routing"] == SHADOW).all()
        assert (frame["champion_version"] == shadow.champion).all()
        assert (frame["challenger_version"] == shadow.challenger).all()
    # The same features (fetched once) went into both models: same values in both rows, and
    # the challenger's score is exactly the shifted champion's.
    pd.testing.assert_frame_equal(champion[list(spec.features)], challenger[list(spec.features)])
    expected = champion["score"].map(lambda s: shifted(s, SHIFT))
    assert (challenger["score"] - expected).abs().max() < 1e-9
    assert (challenger["flagged"] == (challenger["score"] >= challenger["threshold"])).all()


def test_only_the_champion_decision_is_returned(shadow: ShadowWorld) -> None:
    from slipway.serving.scorer import OnlineScorer

    record = json.loads(shadow.lines[0])
    with slipway_env(shadow.root, shadow.extra):
        registry = ModelRegistry(Lakehouse(shadow.root / "lakehouse" / "fraud"))
        registry.set_routing(
            get_usecase().model.name, Routing(mode=SHADOW, reason="test: shadow again")
        )
        scorer = OnlineScorer.from_env(get_usecase(), reload_every=0)
        result = scorer.score(record)
    answer = result.as_dict(include_features=True)
    assert answer["model_version"] == shadow.champion and answer["role"] == "champion"
    assert "shadow" not in answer and "challenger" not in json.dumps(
        {k: v for k, v in answer.items() if k != "routing"}
    )
    (other,) = result.shadow  # kept for the served log, not answered
    assert other["model_version"] == shadow.challenger
    assert other["score"] == pytest.approx(shifted(answer["score"], SHIFT), abs=1e-9)


def test_canary_routing_is_stable_per_customer_and_at_its_share(shadow: ShadowWorld) -> None:
    ids = _ids(shadow.lines[shadow.half :])
    assert shadow.canary_run.decided == len(ids)
    rows = shadow.served[shadow.served["event_id"].isin(ids)]
    assert len(rows) == 2 * len(ids)
    decided = rows[rows["decided"]].set_index("event_id").loc[ids]
    assert (decided["routing"] == CANARY).all() and (decided["canary_share"] == SHARE).all()
    assert decided["routing_rule"].str.contains("sha256").all()
    # One customer, one model: every event of a customer decided by the same role.
    roles = decided.groupby("customer_id")["role"].nunique()
    assert (roles == 1).all()
    # ... the one the hash says (recomputed here, independently of the scorer) ...
    routing = Routing(mode=CANARY, share=SHARE)
    salt = f"v{shadow.challenger}"
    want = decided["customer_id"].map(lambda c: to_challenger(routing, salt, c))
    assert ((decided["role"] == "challenger") == want).all()
    assert (decided.loc[want, "model_version"] == shadow.challenger).all()
    # ... and the share of customers within sampling error (4 sigma).
    customers = decided.groupby("customer_id")["role"].first()
    share = (customers == "challenger").mean()
    sigma = math.sqrt(SHARE * (1 - SHARE) / len(customers))
    assert abs(share - SHARE) < 4 * sigma, (share, len(customers))
    # The champion still scored the canary's events, in shadow: the guard's comparison.
    shadowed = rows[~rows["decided"]].set_index("event_id").loc[decided.index[want]]
    assert (shadowed["role"] == "champion").all()


@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_the_guard_trips_a_deliberately_worse_challenger(
    pipeline: PipelineData, tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    import dagster as dg

    from assets.lib.keys import scoped_name
    from orchestration.definitions import build_definitions
    from slipway.serving.scorer import OnlineScorer

    usecase = get_usecase()
    model = usecase.model.name
    root = _world(pipeline, tmp_path / "world")
    lines = landed_lines(pipeline.landing_root, usecase.primary.name, pipeline.end)[:400]
    with slipway_env(root, _extra(backend, request)):
        lakehouse = Lakehouse(root / "lakehouse" / "fraud")
        registry = ModelRegistry(lakehouse)
        champion = registry.alias(model, CHAMPION)
        worse = register_shifted_challenger(registry, model, 4.0, "deliberately worse")
        start_canary(registry, model, 0.5, reason="test canary", limits=GuardLimits(min_events=50))
        scorer = OnlineScorer.from_env(usecase, reload_every=0)
        scorer.warm_up()
        streams = open_streams(usecase)
        replay(usecase, scorer, streams, lines, rate=None, batch=32)
        routing = registry.routing(model)
        assert routing.mode == SHADOW and routing.tripped, routing
        assert "flag rate" in routing.tripped or "PSI" in routing.tripped
        drain_served(lakehouse, usecase, streams.served.logs)
        decided = lakehouse.read(SERVED).to_pandas().query("decided")
        decided = decided.sort_values("decided_at")  # one consumer: the order it decided in
        by_challenger = decided[decided["role"] == "challenger"]
        assert 50 <= len(by_challenger) < len(decided) / 2
        # after the trip, the champion decides every event again (the worse one in shadow)
        after = decided[decided["decided_at"] > by_challenger["decided_at"].max()]
        assert len(after) > 100 and (after["model_version"] == champion).all()
        assert (after["routing"] == SHADOW).all()
        history = [m for m in registry.alias_history(model) if m.alias == "routing"]
        assert "canary guard" in history[-1].reason and history[-1].version == worse
        # The UI shows why: the drain job's canary_guard check on scoring/served.
        streams.served.primary.append(streams.served.primary.range(1)[0].fields)
        streams.close()
        defs = build_definitions()
        with dg.instance_for_test() as instance:
            job = defs.get_job_def(scoped_name(usecase, "drain_served"))
            run = job.execute_in_process(instance=instance)
        if backend == "redis":  # only this test's keys
            open_streams(usecase).delete()
        (check,) = [e for e in run.get_asset_check_evaluations() if e.check_name == "canary_guard"]
        assert not check.passed and "canary guard" in check.description
        assert check.metadata["tripped"].value == routing.tripped


def _scorer_loop(scorer, record, stop: threading.Event, seen: list) -> None:
    while not stop.is_set():
        result = scorer.score(record)
        seen.append((time.time(), result.role, result.model_version))
        time.sleep(0.02)


def _first_after(seen: list, since: float, test) -> float | None:
    for when, role, version in list(seen):
        if when >= since and test(role, version):
            return when - since
    return None


def _wait(seen: list, since: float, test, timeout: float = 20.0) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = _first_after(seen, since, test)
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not picked up within {timeout} s: last {seen[-3:]}")


def test_a_rollback_is_picked_up_live_without_a_restart(
    pipeline: PipelineData, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from slipway.serving.scorer import OnlineScorer

    usecase = get_usecase()
    model = usecase.model.name
    root = _world(pipeline, tmp_path / "world")
    record = json.loads(landed_lines(pipeline.landing_root, usecase.primary.name, pipeline.end)[0])
    extra = _extra("embedded", request)
    env = {**os.environ, **env_for(root), **extra}

    def cli(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "slipway.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,  # the command imports MLflow: 150 s measured at a load average of 15
        )
        assert done.returncode == 0, done.stderr

    def written(registry: ModelRegistry, alias: str) -> float:
        """When the command wrote the move (the alias-move log's recorded time)."""
        return [m for m in registry.alias_history(model) if m.alias == alias][-1].set_at.timestamp()

    with slipway_env(root, extra):
        registry = ModelRegistry(Lakehouse(root / "lakehouse" / "fraud"))
        champion = registry.alias(model, CHAMPION)
        challenger = register_shifted_challenger(registry, model, SHIFT)
        scorer = OnlineScorer.from_env(usecase, reload_every=1.0)  # a live scorer, polling
        scorer.warm_up()
        stop, seen = threading.Event(), []
        loop = threading.Thread(target=_scorer_loop, args=(scorer, record, stop, seen))
        loop.start()
        try:
            # a 100% canary: the challenger decides this customer's events
            cli("registry", "canary", "--share", "1.0", "--reason", "test")
            _wait(seen, written(registry, "routing"), lambda role, v: role == "challenger")
            cli("rollback", "--reason", "test: canary rollback")  # one command
            canary_s = _wait(seen, written(registry, "routing"), lambda role, v: role == "champion")
            assert registry.routing(model).mode == SHADOW
            # a promotion, then its rollback
            registry.promote(model, challenger, "test promotion")
            _wait(seen, written(registry, CHAMPION), lambda role, v: v == challenger)
            cli("rollback", "promotion", "--reason", "test: promotion rollback")
            promotion_s = _wait(seen, written(registry, CHAMPION), lambda role, v: v == champion)
        finally:
            stop.set()
            loop.join(timeout=10)
    assert registry.alias(model, CHAMPION) == champion
    # picked up within one registry check (1 s here) plus a model load and a pass (generous:
    # the 2-core machine is shared), never a restart
    assert canary_s < 5.0 and promotion_s < 10.0, (canary_s, promotion_s)

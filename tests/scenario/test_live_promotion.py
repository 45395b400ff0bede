"""Scenario: a drift-triggered retrain proves itself on live traffic before it takes over.

With live evidence required (``SLIPWAY_GATE_LIVE_EVIDENCE=1``), a drifted day fires the drift
sensor; the retrain registers a challenger whose gate passes the holdout but *waits* for live
evidence, so the champion stays and the challenger runs in shadow on the live path. Two days of
traffic are then served through the stream (days whose labels have matured, which neither
model trained on: the served-traffic performance can be judged at once instead of a week later);
the gate, run again, finds both models on the same served events, names that evidence, and
promotes the challenger.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from slipway.lakehouse import Lakehouse
from slipway.registry import ModelRegistry
from slipway.registry.store import CHALLENGER, CHAMPION
from slipway.streaming.replay import landed_lines, replay, seed_window_state
from slipway.streaming.served import SERVED, drain_served
from slipway.streaming.streams import open_streams
from slipway.usecases import get_usecase
from slipway.usecases.fraud.simulator import CovariateDrift
from tests.scenario.conftest import copy_world, next_day, simulator
from tests.support.automation import Automation
from tests.support.pipeline import slipway_env

pytestmark = pytest.mark.scenario


def test_a_drift_retrain_runs_in_shadow_wins_on_live_evidence_and_is_promoted(
    pipeline, tmp_path: Path
) -> None:
    from slipway.registry.lifecycle import evaluate_challenger, promote_challenger
    from slipway.serving.scorer import OnlineScorer

    usecase = get_usecase()
    model = usecase.model.name
    world = copy_world(pipeline, tmp_path / "world")
    d1 = next_day(pipeline, 1)
    sim = simulator(scenarios=(CovariateDrift(d1, amount_factor=2.5, ecom_share_shift=0.3),))
    extra = {
        "SLIPWAY_GATE_LIVE_EVIDENCE": "1",
        "SLIPWAY_STREAM_PREFIX": f"test-{uuid.uuid4().hex[:10]}",
    }
    with slipway_env(world, extra):
        lakehouse = Lakehouse(world / "lakehouse" / "fraud")
        registry = ModelRegistry(lakehouse)
        champion = registry.alias(model, CHAMPION)
        sim.deliver(world / "landing" / "fraud", d1)
        auto = Automation()
        assert all(r.success for r in auto.tick_and_run("landing_sensor"))
        (retrain,) = auto.tick_and_run("drift_sensor")
        assert retrain.request.tags["slipway/trigger"] == "drift"
        challenger = registry.alias(model, CHALLENGER)
        assert challenger is not None and challenger > champion
        (first,) = registry.decisions(model, challenger)
        # The holdout alone would have promoted it; live evidence is required, so it waits.
        assert not first["passed"] and first["waiting"], first["reason"]
        assert "waiting for live evidence: 0 of" in first["reason"]
        assert first["evidence"][0].startswith("holdout")
        assert registry.alias(model, CHAMPION) == champion  # the champion still decides

        # Live traffic: the days whose labels matured last (as of d1), which neither model was
        # trained on, served through the stream with the challenger in shadow.
        last_matured = d1 - dt.timedelta(days=usecase.label.maturity_days)
        days = [last_matured - dt.timedelta(days=1), last_matured]
        scorer = OnlineScorer.from_env(usecase, reload_every=0)
        scorer.warm_up()
        seed_window_state(scorer, lakehouse, days[0])
        streams = open_streams(usecase)
        served_events = 0
        for day in days:
            lines = landed_lines(world / "landing" / "fraud", usecase.primary.name, day)
            run = replay(usecase, scorer, streams, lines, rate=None)
            assert run.decided == len(lines)
            served_events += len(lines)
        drain_served(lakehouse, usecase, streams.served.logs)
        streams.close()
        served = lakehouse.read(SERVED).to_pandas()
        assert len(served) == 2 * served_events  # a shadow row for every live event
        assert set(served.loc[~served["decided"], "model_version"]) == {challenger}

        # The gate again (what `slipway registry gate --promote` runs): live evidence names the
        # shadow traffic and the served-traffic performance of both models on the same events.
        decision = evaluate_challenger(lakehouse, usecase)
        assert decision.passed, decision.reason
        assert decision.live["shadow_events"] == served_events
        assert decision.live["positives"] >= usecase.model.promotion.live.min_positives
        assert decision.live["challenger_metric"] >= decision.live["champion_metric"]
        assert "wins on served traffic" in decision.reason
        assert any(e.startswith("live (required)") for e in decision.evidence)
        promotion = promote_challenger(lakehouse, usecase)
        assert promotion.promoted and registry.alias(model, CHAMPION) == challenger
        (recorded,) = registry.decisions(model, challenger)
        assert recorded["passed"] and recorded["live"]["shadow_events"] == served_events

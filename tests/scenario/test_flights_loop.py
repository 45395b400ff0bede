"""The flights use case's whole loop on three and a half weeks of real 2013 data, then summer.

Landing adapter -> bronze/silver contracts -> dbt -> Spark feature tables -> Feast -> training set
-> LightGBM -> promotion gate -> champion -> batch scoring -> drift and performance, in one
Dagster run over 14 January - 7 February 2013 (four carriers, ~600 flights a day). Then the feed
resumes in June, as the upstream delivers it: the landing sensor runs the daily job for the new
days, and the winter champion meets summer (temperatures four reference deviations away, no
recent history for the trailing rates, a late-arrival rate it no longer catches): the drift
sensor requests one retrain, whose challenger the gate judges against the champion on the same
holdout. (With the calibrated thresholds the February nor'easter is *not* drift: its days stay
within what the reference's own days vary by.)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.compute as pc
import pytest

from slipway.lakehouse import Lakehouse
from slipway.registry import ModelRegistry
from slipway.registry.store import CHAMPION
from slipway.usecases.flights import FLIGHTS
from tests.support.automation import Automation
from tests.support.pipeline import run_graph, slipway_env

pytestmark = pytest.mark.scenario

START, DAYS = dt.date(2013, 1, 14), 25  # through 7 February
SUMMER, SUMMER_DAYS = dt.date(2013, 6, 3), 2
CARRIERS = ("UA", "B6", "EV", "DL")
ENV = {"SLIPWAY_USECASES": FLIGHTS.name}
assert FLIGHTS.model is not None
MODEL = FLIGHTS.model.name


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    from slipway.settings import load_settings

    data = tmp_path_factory.mktemp("flights_world")
    with slipway_env(data, ENV):
        scoped = load_settings(FLIGHTS.name)
        assert FLIGHTS.sample_data is not None
        days = FLIGHTS.sample_data.write(
            scoped.landing_root, START.isoformat(), DAYS, carriers=CARRIERS
        )
        result = run_graph(days[0], days[-1], usecase=FLIGHTS.name)
        yield data, scoped, result


def _counts(lakehouse: Lakehouse, name: str, **equal) -> dict[dt.date, int]:
    table = lakehouse.read(name)
    for column, value in equal.items():
        table = table.filter(pc.equal(table[column], value))
    return {c["values"]: c["counts"] for c in pc.value_counts(table["date"]).to_pylist()}


def test_one_run_lands_trains_promotes_scores_and_monitors(world) -> None:
    _, scoped, result = world
    failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, failed
    lakehouse = Lakehouse(scoped.lakehouse_root)
    # nothing landed is lost: silver + quarantine + duplicates = landed, day by day
    audit = lakehouse.read("audit.flights").to_pandas()
    assert len(audit) == DAYS and audit["breaker_reason"].isna().all()
    assert (
        audit["rows_landed"]
        == audit["rows_silver"] + audit["rows_quarantined"] + audit["duplicates_dropped"]
    ).all()
    # the first model cleared the floors and is champion, with its gate decision recorded
    registry = ModelRegistry(lakehouse)
    champion = registry.alias(MODEL, CHAMPION)
    assert champion == 1
    (decision,) = registry.decisions(MODEL, champion)
    assert decision["passed"], decision["reason"]
    record = registry.get(MODEL, champion)
    floors = FLIGHTS.model.promotion.floors  # type: ignore[union-attr]
    assert all(record.metrics[m] >= floor for m, floor in floors.items()), record.metrics
    # every example is scored, cancelled flights included; only arrived ones are judged
    examples = _counts(lakehouse, "gold.flight_examples")
    scored = _counts(lakehouse, "scoring.predictions", role="champion")
    assert scored == examples
    performance = lakehouse.read("monitoring.performance").to_pandas()
    assert performance["excluded"].sum() > 0
    assert (performance["rows"] + performance["excluded"]).sum() <= sum(examples.values())
    # drift: daily rates and weather compared over their declared 7-day windows
    drift = lakehouse.read("monitoring.drift_metrics").to_pandas()
    windows = drift[drift["metric"] == "value_drift"].groupby("feature")["window_days"].max()
    for name, rule in FLIGHTS.monitoring.feature_drift.items():
        if name in windows:
            assert windows[name] == rule.window_days, name
    assert set(FLIGHTS.monitoring.monitored_features) <= set(windows.index)


def test_summer_fires_the_drift_sensor_and_a_gated_retrain(world) -> None:
    data, scoped, _ = world
    with slipway_env(data, ENV):
        lakehouse = Lakehouse(scoped.lakehouse_root)
        registry = ModelRegistry(lakehouse)
        champion = registry.alias(MODEL, CHAMPION)
        auto = Automation(usecase=FLIGHTS.name)
        drift_sensor = "drift_sensor"
        assert not auto.tick(drift_sensor).run_requests, "quiet on the winter days"
        assert FLIGHTS.sample_data is not None
        FLIGHTS.sample_data.write(
            scoped.landing_root, SUMMER.isoformat(), SUMMER_DAYS, carriers=CARRIERS
        )
        runs = auto.tick_and_run("landing_sensor")
        assert runs and all(r.success for r in runs), [r.failures() for r in runs]
        assert any(r.request.tags.get("slipway/trigger") == "landing" for r in runs)
        new_days = {SUMMER + dt.timedelta(days=i) for i in range(SUMMER_DAYS)}
        assert new_days <= set(_counts(lakehouse, "scoring.predictions", role="champion"))

        retrains = auto.tick_and_run(drift_sensor)
        assert len(retrains) == 1, "summer must trigger exactly one retrain"
        retrain = retrains[0]
        tags = retrain.request.tags
        assert tags["slipway/trigger"] == "drift", tags
        assert "wx_temp" in tags["slipway/reason"], tags
        assert any(d.isoformat() in tags["slipway/reason"] for d in new_days), tags
        if tags["slipway/report"]:
            assert Path(tags["slipway/report"]).exists()
        challenger = max(v.version for v in registry.versions(MODEL))
        assert challenger > champion
        (decision,) = registry.decisions(MODEL, challenger)
        assert decision["reason"] and decision["champion_version"] == champion
        gate = retrain.checks()[f"{FLIGHTS.name}/training/model_candidate:promotion_gate"]
        assert gate.passed == decision["passed"]
        # a rejected challenger fails the run at its blocking gate, and only there
        failures = retrain.failures()
        assert retrain.success if decision["passed"] else failures, failures
        assert all("promotion_gate" in f for f in failures), failures
        assert registry.alias(MODEL, CHAMPION) == (challenger if decision["passed"] else champion)
        # the same evidence never retrains twice
        assert not auto.tick(drift_sensor).run_requests

"""The MLflow UI that ``make mlflow`` starts, in headless Chromium, on a copy of the test world.

The server is started with the very command of ``make mlflow`` (``python -m slipway.registry.ui``)
on a free loopback port, pointed at a copy of the session's world (the ``pipeline`` fixture, whose
first model was promoted), so what it shows is the store the assets wrote: the registered model
with its ``champion`` alias and the version's lineage tags and gate decision, and the training run
with its metrics. The picture of the registered model goes to docs/img/mlflow-champion.png
(``SLIPWAY_SCREENSHOTS=1``). Playwright drives Debian's /usr/bin/chromium, never a download.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.lakehouse import Lakehouse
from slipway.registry.lifecycle import evaluate_challenger, train_candidate
from slipway.registry.store import CHALLENGER, CHAMPION, ModelRegistry
from slipway.settings import PROJECT_ROOT
from slipway.usecases.fraud import FRAUD, MODEL
from tests.browser.test_web_ui import CHROMIUM, CHROMIUM_FLAGS, SCREENSHOTS, TIMEOUT_MS
from tests.support.pipeline import copy_world, env_for, slipway_env
from tests.support.servers import free_port, group_members, terminate

pytestmark = pytest.mark.browser


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def mlflow_ui(pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    world = copy_world(pipeline.data_dir, tmp_path_factory.mktemp("mlflow_ui") / "world")
    with slipway_env(world):  # a second version beside the champion: the challenger, judged
        lakehouse = Lakehouse(world / "lakehouse" / "fraud")
        train_candidate(lakehouse, FRAUD, seed=8, device="cpu", run_id="browser-test")
        evaluate_challenger(lakehouse, FRAUD, run_id="browser-test")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = world.parent / "mlflow-ui.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "slipway.registry.ui", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env_for(world)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the server's workers share its group: stopped together
        )
    try:
        deadline = time.monotonic() + 240
        while not _healthy(url):
            if process.poll() is not None:
                pytest.fail(f"the MLflow UI exited ({process.returncode}):\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the MLflow UI did not answer on {url}:\n{log.read_text()}")
            time.sleep(1)
        yield url, world
    finally:
        terminate(process, 30)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not group_members(process.pid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            time.sleep(2)
    assert not group_members(process.pid), "processes of the MLflow UI survived KILL"


@pytest.fixture(scope="module")
def page(mlflow_ui):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            context = browser.new_context(
                viewport={"width": 1600, "height": 900}, base_url=mlflow_ui[0]
            )
            context.set_default_timeout(TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


def test_the_registered_model_shows_its_champion_and_lineage(page, mlflow_ui) -> None:
    from playwright.sync_api import expect

    _, world = mlflow_ui
    with slipway_env(world):
        registry = ModelRegistry(Lakehouse(world / "lakehouse" / "fraud"))
        champion = registry.get(MODEL.name, registry.alias(MODEL.name, CHAMPION))
        challenger = registry.alias(MODEL.name, CHALLENGER)
        (decision,) = registry.decisions(MODEL.name, challenger)
    page.goto(f"/#/models/{MODEL.name}")
    rows = page.get_by_role("row")
    champion_row = rows.filter(has_text=f"Version {champion.version}")
    challenger_row = rows.filter(has_text=f"Version {challenger}")
    expect(champion_row.get_by_text(f"@ {CHAMPION}")).to_be_visible()
    expect(champion_row.get_by_text("training_set.version")).to_be_visible()
    expect(challenger_row.get_by_text(f"@ {CHALLENGER}")).to_be_visible()
    expect(challenger_row).to_contain_text(f"gate.passed: {str(decision['passed']).lower()}")
    # the picture: the model-training navigation, without the assistant's panel over a third of it
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Model training", exact=True).click(timeout=5000)
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Close", exact=True).click(timeout=5000)
    # the list scrolls inside its own pane, so the window is made tall enough for both rows
    page.set_viewport_size({"width": 1600, "height": 1400})
    expect(champion_row.get_by_text(f"@ {CHAMPION}")).to_be_in_viewport()
    page.wait_for_timeout(1500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "mlflow-champion.png"))
    page.set_viewport_size({"width": 1600, "height": 900})
    # the version page: its training run, and the gate's decision among its tags
    page.goto(f"/#/models/{MODEL.name}/versions/{challenger}")
    ts = champion.training_set
    expect(page.get_by_role("link", name=f"{MODEL.name} on {ts['table']}@v")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="gate.reason")).to_contain_text(
        decision["reason"]
    )


def test_the_training_run_shows_its_metrics_and_tags(page, mlflow_ui) -> None:
    from playwright.sync_api import expect

    _, world = mlflow_ui
    with slipway_env(world):
        registry = ModelRegistry(Lakehouse(world / "lakehouse" / "fraud"))
        champion = registry.get(MODEL.name, registry.alias(MODEL.name, CHAMPION))
        experiment = registry.experiment_id(MODEL.name)
    page.goto(f"/#/experiments/{experiment}/runs/{champion.mlflow_run_id}")
    expect(page.get_by_text("pr_auc").first).to_be_visible()
    expect(page.get_by_text("dagster.run_id").first).to_be_visible()
    expect(page.get_by_text(str(champion.run_id)).first).to_be_visible()

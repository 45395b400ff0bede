"""The Dagster web UI in a real browser (headless Chromium driven by Playwright) on a built world.

A copy of the session's small world (the ``pipeline`` fixture: landing -> predictions, champion
promoted) is served by a ``dagster-webserver`` started here on a free loopback port, with a
temporary DAGSTER_HOME whose history holds one ingestion run and one training run, so asset pages
show real metadata and check results. What a user sees is asserted by role and text:

* the asset graph shows every group of the definitions;
* asset checks are listed on a silver asset (its contract) and on the model candidate (the
  promotion gate);
* the automation page lists every sensor and schedule of the definitions;
* a materialization launched by clicking in the UI runs in the webserver's run launcher and
  succeeds (checked through GraphQL and the instance).

Screenshots land in docs/img/ under stable names for the README. Playwright never downloads a
browser here: it drives Debian's /usr/bin/chromium, and the tests skip when that is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from slipway.settings import PROJECT_ROOT
from tests.support.pipeline import copy_world, env_for, slipway_env
from tests.support.servers import free_port, graphql, group_members, terminate

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The README's pictures are refreshed on request (SLIPWAY_SCREENSHOTS=1), so an ordinary test run
# does not rewrite tracked files; otherwise they go to a scratch folder and are still taken (a
# screenshot that cannot be taken is a failure worth seeing).
SCREENSHOTS = (
    PROJECT_ROOT / "docs" / "img"
    if os.environ.get("SLIPWAY_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "slipway-screenshots"
)
# The UI launches runs itself (no daemon here): Dagster's default coordinator is the queued one,
# which leaves a UI-launched run QUEUED forever without a daemon. The community pop-up ("nux")
# would cover every page.
INSTANCE_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
"""
TIMEOUT_MS = 60_000
RUN_TIMEOUT_S = 180

SILVER = ["fraud", "silver", "transactions"]
CANDIDATE = ["fraud", "training", "model_candidate"]
LAUNCHED = ["fraud", "silver", "customers"]


@dataclass(frozen=True)
class Webserver:
    url: str
    pid: int
    dagster_home: Path
    world: Path
    log: Path


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/server_info", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(process: subprocess.Popen, timeout: float = 30) -> list[int]:
    """TERM the webserver by PID, then what it started (it leads its own session, so its group is
    its code server and run workers); KILL what outlives the timeout. Returns the stragglers."""
    terminate(process, timeout)  # reaps it: a zombie would still count as a member
    # its code server stops on its own once its RPCs are done: give it a moment
    deadline = time.monotonic() + 15
    while group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.25)
    stragglers = group_members(process.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_members(process.pid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + 10
        while group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.25)
    return stragglers


def _record_history(instance, last_day: str) -> None:
    """One ingestion run (a day of transactions) and one training run, in process."""
    import dagster as dg

    from orchestration.definitions import build_definitions

    defs = build_definitions()
    ingestion = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        partition_key=last_day,
        asset_selection=[
            dg.AssetKey(["fraud", "bronze", "transactions"]),
            dg.AssetKey(SILVER),
            dg.AssetKey(["fraud", "quarantine", "transactions"]),
        ],
        raise_on_error=False,
    )
    assert ingestion.success, "the ingestion run for the UI's history failed"
    # The candidate is trained on the champion's data: the gate evaluates it (and, with no
    # improvement to show, blocks it, which is worth seeing in the UI too).
    training = defs.get_job_def("fraud_retrain").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(CANDIDATE)], raise_on_error=False
    )
    evaluated = [e for e in training.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert evaluated, "the promotion gate was not evaluated"


@pytest.fixture(scope="module")
def webserver(pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    import dagster as dg

    root = tmp_path_factory.mktemp("web_ui")
    world = root / "world"
    # a private copy: the session's world is read-only, and the UI writes to this one
    copy_world(pipeline.data_dir, world, ignore=("dagster_home*",))
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    warnings.filterwarnings("ignore")
    with slipway_env(world, {"DAGSTER_HOME": str(home)}):
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            _record_history(instance, pipeline.end.isoformat())
        finally:
            instance.dispose()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "webserver.log"
    env = {
        **os.environ,
        **env_for(world),
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "PYSPARK_PYTHON": sys.executable,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster-webserver"),
                "-w",
                str(PROJECT_ROOT / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while not _answers(url):
            if process.poll() is not None:
                pytest.fail(f"dagster-webserver exited ({process.returncode}):\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not answer on {url}:\n{log.read_text()}")
            time.sleep(1)
        yield Webserver(url, process.pid, home, world, log)
    finally:
        stragglers = _stop(process)
    assert not group_members(process.pid), "processes of the webserver survived KILL"
    if stragglers:
        warnings.warn(
            f"processes outlived the webserver's own exit and were signalled: {stragglers}",
            stacklevel=2,
        )


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing (apt-get install chromium): Playwright here never "
            "downloads a browser"
        )
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, webserver: Webserver):
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, base_url=webserver.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def _screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SCREENSHOTS / name))


def _definitions():
    from orchestration.definitions import build_definitions

    return build_definitions()


# -- the asset graph ------------------------------------------------------------------------------
def test_asset_graph_shows_every_group(browser, webserver: Webserver) -> None:
    from playwright.sync_api import expect

    groups = sorted({spec.group_name for spec in _definitions().resolve_all_asset_specs()})
    # the platform's layers, wherever they are defined yet
    layers = {"ingestion", "gold", "features", "feast", "training", "registry"}
    assert {f"fraud_{g}" for g in layers} <= set(groups)
    # a sharp picture: the graph is wide and short, so it is cropped and rendered at 2x
    context = browser.new_context(
        viewport={"width": 1600, "height": 900}, base_url=webserver.url, device_scale_factor=2
    )
    try:
        page = context.new_page()
        page.goto("/asset-groups")
        nodes = page.locator("svg foreignObject")  # the graph's nodes, one per (collapsed) group
        # Every deployed use case's groups are in the sidebar's tree; the graph draws only the
        # nodes inside the view, so its nodes are checked on the flagship's groups.
        assert {g.split("_", 1)[0] for g in groups} >= {"fraud", "flights"}, groups
        for group in groups:
            expect(
                page.get_by_role("button", name=re.compile(rf"\b{group}\b")).first
            ).to_be_attached()
        for group in (g for g in groups if g.startswith("fraud_")):
            expect(nodes.get_by_text(group, exact=True)).to_be_visible()
        page.get_by_role("button", name="Hide navigation").click()
        page.get_by_role("button", name="panel_show_right").click()  # the asset sidebar
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1000)  # the graph slides into the freed space
        boxes = [node.bounding_box() for node in nodes.all()]
        left = min(b["x"] for b in boxes) - 40
        top = min(b["y"] for b in boxes) - 40
        right = max(b["x"] + b["width"] for b in boxes) + 40
        bottom = max(b["y"] + b["height"] for b in boxes) + 40
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(SCREENSHOTS / "asset-graph.png"),
            clip={"x": left, "y": top, "width": right - left, "height": bottom - top},
        )
    finally:
        context.close()


# -- asset pages: metadata and checks -------------------------------------------------------------
def test_silver_asset_page_shows_metadata_and_its_contract_check(page) -> None:
    from playwright.sync_api import expect

    page.goto("/assets/" + "/".join(SILVER))
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    # metadata recorded by the materialization: row count, the Delta table version, its schema
    expect(page.get_by_text("Row count")).to_be_visible()
    expect(page.get_by_text("table_version", exact=True)).to_be_visible()
    expect(page.get_by_text("rows_quarantined", exact=True)).to_be_visible()
    expect(page.get_by_text("transaction_id", exact=True).first).to_be_visible()
    # fold the column schema away so that the metadata table is in the picture
    page.get_by_role("button", name=re.compile(r"\bColumns\b")).click()
    # the day's own figures (each partition's event carries them) sit below the range's
    day_figure = page.get_by_text("rows_silver", exact=True)
    day_figure.scroll_into_view_if_needed()
    expect(day_figure).to_be_in_viewport()
    _screenshot(page, "asset-silver-transactions.png")

    page.goto("/assets/" + "/".join(SILVER) + "?view=checks")
    expect(page.get_by_text("Checks (1)")).to_be_visible()
    expect(page.get_by_text("contract", exact=True).first).to_be_visible()
    expect(page.get_by_text("blocking").first).to_be_visible()
    expect(page.get_by_text("Passed", exact=True)).to_be_visible()
    _screenshot(page, "asset-silver-transactions-checks.png")


def test_model_candidate_lists_the_promotion_gate(page) -> None:
    from playwright.sync_api import expect

    page.goto("/assets/" + "/".join(CANDIDATE) + "?view=checks")
    expect(page.get_by_text("promotion_gate", exact=True).first).to_be_visible()
    expect(page.get_by_text("blocking").first).to_be_visible()
    # the evaluation of the history's training run, with the gate's reason
    expect(page.get_by_text(re.compile(r"champion")).first).to_be_visible()
    _screenshot(page, "asset-model-candidate-gate.png")


# -- automation -----------------------------------------------------------------------------------
def test_automation_page_lists_every_sensor_and_schedule(page) -> None:
    from playwright.sync_api import expect

    repo = _definitions().get_repository_def()
    names = sorted({s.name for s in repo.sensor_defs} | {s.name for s in repo.schedule_defs})
    page.goto("/automation")
    for name in names:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    if not names:
        warnings.warn("the definitions declare no sensor or schedule yet", stacklevel=2)
    _screenshot(page, "automation.png")


# -- a materialization launched from the UI -------------------------------------------------------
RUN_QUERY = """
query($id: ID!) {
  runOrError(runId: $id) {
    __typename
    ... on Run { status assetSelection { path } }
  }
}
"""


def test_materialization_launched_from_the_ui_succeeds(page, webserver: Webserver) -> None:
    import dagster as dg
    from playwright.sync_api import expect

    page.goto("/assets/" + "/".join(LAUNCHED))
    page.get_by_role("button").filter(has_text=re.compile(r"^Materialize$")).click()
    # silver/customers comes with its quarantine table (one multi-asset): the UI asks first
    confirm = page.get_by_role("button", name="Confirm", exact=True)
    confirm.click()
    expect(page.get_by_text("Launched run")).to_be_visible()
    page.get_by_role("link", name="View", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = page.url.rstrip("/").split("/runs/")[1].split("?")[0]

    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        run = graphql(webserver.url, RUN_QUERY, {"id": run_id})["runOrError"]
        assert run["__typename"] == "Run", run
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}"
        time.sleep(2)
    assert run["status"] == "SUCCESS", f"run {run_id}: {run['status']} (see {webserver.log})"
    assert LAUNCHED in [a["path"] for a in run["assetSelection"]]

    with slipway_env(webserver.world, {"DAGSTER_HOME": str(webserver.dagster_home)}):
        instance = dg.DagsterInstance.from_config(str(webserver.dagster_home))
        try:
            event = instance.get_latest_materialization_event(dg.AssetKey(LAUNCHED))
            assert event is not None and event.run_id == run_id
            evaluations = [
                r.event_log_entry.dagster_event.event_specific_data
                for r in instance.get_records_for_run(
                    run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
                ).records
            ]
            contract = dg.AssetCheckKey(dg.AssetKey(LAUNCHED), "contract")
            assert [e.passed for e in evaluations if e.asset_check_key == contract] == [True]
        finally:
            instance.dispose()

    page.reload()  # the header's status, settled (and no toast over the log)
    expect(page.get_by_text("RUN_SUCCESS").first).to_be_visible()
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    _screenshot(page, "run.png")

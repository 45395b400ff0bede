"""The Feast CLI agrees with Slipway: `feast plan` in a use case's repo after the project's apply
reports nothing to change, and a changed view definition is reported.

This is the CI check of the repos (`make test` runs it): the real ``feast`` executable, run in
``feature_repo/<usecase>/`` as a Feast user runs it, against the registry that Slipway's own path
(:func:`slipway.featurestore.store.apply_repo`, what the registry asset calls) applied and the
online store it materialized. Any "Created/Updated/Deleted" line in the plan fails the test.

The committed repo folder is copied beside a copy of the world (``<tmp>/feature_repo/<usecase>``
and ``<tmp>/data``), so the yaml's relative paths (``../../data/feast/<usecase>``) name the
world exactly as they name ``data/`` in a checkout, and the checkout's own data is never touched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slipway.usecase import FeastSpec, UseCase
from tests.support.pipeline import PipelineData, copy_world, slipway_env

ROOT = Path(__file__).resolve().parents[2]
FEAST = Path(sys.executable).with_name("feast")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Feast's plan words (feast.diff.registry_diff / infra_diff): one line per changed object.
_CHANGE = re.compile(r"^(Created|Updated|Deleted) (.+?) (\S+)$")


@dataclasses.dataclass(frozen=True)
class Plan:
    output: str
    registry: list[tuple[str, str, str]]  # (action, object type, name)
    infra: list[tuple[str, str, str]]


def feast_cli(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the real ``feast`` executable in ``repo``, the way a user runs it there."""
    proc = subprocess.run(
        [str(FEAST), *args],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"feast {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return _ANSI.sub("", proc.stdout)


def parse_plan(output: str) -> Plan:
    """Split `feast plan`'s output into registry and infrastructure changes."""
    registry, infra = [], []
    section = registry
    for line in output.splitlines():
        if "to infrastructure" in line or "sqlite table" in line or "Redis" in line:
            section = infra
        match = _CHANGE.match(line.strip())
        if match and not line.startswith("\t"):
            (infra if "table" in match.group(2) else section).append(match.groups())
    return Plan(output, registry, infra)


def assert_no_changes(plan: Plan) -> None:
    assert "No changes to registry" in plan.output, plan.output
    assert not plan.registry, plan.output
    assert "No changes to infrastructure" in plan.output, plan.output
    assert not plan.infra, plan.output


def repo_copy(usecase: UseCase, tmp: Path) -> tuple[UseCase, Path]:
    """``usecase`` with its Feast repo copied to ``<tmp>/feature_repo/<usecase>``."""
    assert usecase.feast is not None
    repo = tmp / "feature_repo" / usecase.name
    shutil.copytree(ROOT / usecase.feast.repo, repo, ignore=shutil.ignore_patterns("__pycache__"))
    feast = FeastSpec(repo=str(repo), project=usecase.feast.project)
    return dataclasses.replace(usecase, feast=feast), repo


def test_parse_plan_reads_feasts_words() -> None:
    output = (
        "Updated feature view merchant_risk\n\tttl: 2 days -> 3 days\n"
        "Created entity depot\n\n"
        "Updated sqlite table slipway_merchant_risk\n\tpath: a -> b\n"
    )
    plan = parse_plan(output)
    assert plan.registry == [
        ("Updated", "feature view", "merchant_risk"),
        ("Created", "entity", "depot"),
    ]
    assert plan.infra == [("Updated", "sqlite table", "slipway_merchant_risk")]
    assert parse_plan("No changes to registry\nNo changes to infrastructure\n").registry == []


# -- fraud: the session's built world (assets ran: apply, materialization) ----------------------
@pytest.fixture(scope="module")
def fraud_world(pipeline: PipelineData, tmp_path_factory: pytest.TempPathFactory):
    from slipway.featurestore.store import apply_repo, open_store
    from slipway.usecases.fraud import FRAUD

    tmp = tmp_path_factory.mktemp("feast_cli_fraud")
    copy_world(pipeline.data_dir, tmp / "data", ignore=("landing",))
    usecase, repo = repo_copy(FRAUD, tmp)
    with slipway_env(tmp / "data"):
        apply_repo(open_store(usecase=usecase))  # the project's path, as the registry asset
        yield usecase, repo, tmp / "data"


def test_feast_plan_in_the_fraud_repo_reports_no_changes_after_the_projects_apply(
    fraud_world,
) -> None:
    from slipway.featurestore.store import apply_repo, open_store

    usecase, repo, _ = fraud_world
    store = open_store(usecase=usecase)
    materialized = [fv for fv in store.list_feature_views() if fv.materialization_intervals]
    assert materialized, "the world's online store was materialized: intervals are recorded"
    assert_no_changes(parse_plan(feast_cli(repo, "plan")))
    # and the project's path agrees with itself: nothing to apply
    assert not apply_repo(store).changed


def test_feast_cli_materialize_then_the_projects_apply_changes_nothing(fraud_world) -> None:
    from slipway.featurestore.store import apply_repo, open_store

    usecase, repo, _ = fraud_world
    store = open_store(usecase=usecase)
    before = {fv.name: len(fv.materialization_intervals) for fv in store.list_feature_views()}
    out = feast_cli(repo, "materialize-incremental", dt.datetime(2026, 9, 1).isoformat())
    assert "merchant_risk" in out, out
    store = open_store(usecase=usecase)
    after = {fv.name: len(fv.materialization_intervals) for fv in store.list_feature_views()}
    assert after["merchant_risk"] == before["merchant_risk"] + 1, (before, after)
    report = apply_repo(store)
    assert not report.changed, report.diff
    assert_no_changes(parse_plan(feast_cli(repo, "plan")))


def test_a_changed_view_definition_is_reported_by_feast_plan(
    pipeline: PipelineData, tmp_path: Path
) -> None:
    """The check can fail: edit a view in the repo copy and `feast plan` names it."""
    from slipway.featurestore.store import apply_repo, open_store
    from slipway.usecases.fraud import FRAUD

    copy_world(pipeline.data_dir, tmp_path / "data", ignore=("landing",))
    usecase, repo = repo_copy(FRAUD, tmp_path)
    with slipway_env(tmp_path / "data"):
        apply_repo(open_store(usecase=usecase))
        features = repo / "features.py"
        source = features.read_text()
        edited = source.replace("ttl=timedelta(days=2)", "ttl=timedelta(days=3)", 1)
        assert edited != source
        features.write_text(edited)
        plan = parse_plan(feast_cli(repo, "plan"))
        assert plan.registry == [("Updated", "feature view", "merchant_risk")], plan.output
        assert "ttl" in plan.output
        # the project's path sees the same change, applies it, and then the CLI sees none
        report = apply_repo(open_store(usecase=usecase))
        assert report.changed and "merchant_risk" in report.diff, report.diff
        assert_no_changes(parse_plan(feast_cli(repo, "plan")))


# -- flights: a slice built through the platform's functions -------------------------------------
def test_feast_plan_in_the_flights_repo_reports_no_changes_after_the_projects_apply(
    spark, tmp_path: Path
) -> None:
    from slipway.featurestore.online import materialize_online
    from slipway.featurestore.store import apply_repo, open_store
    from slipway.lakehouse import Lakehouse
    from slipway.usecases.flights import FLIGHTS
    from tests.support.flights import build_slice

    start = dt.date(2013, 2, 1)
    built = build_slice(spark, tmp_path / "slice", start, 10, carriers=("UA", "B6"))
    data = tmp_path / "data"
    (data / "lakehouse").mkdir(parents=True)
    lakehouse_root = data / "lakehouse" / FLIGHTS.name
    Path(built.lakehouse.root).rename(lakehouse_root)
    usecase, repo = repo_copy(FLIGHTS, tmp_path)
    with slipway_env(data):
        store = open_store(usecase=usecase)
        apply_repo(store)
        materialize_online(store, Lakehouse(lakehouse_root), start, progress=lambda _: None)
        assert any(fv.materialization_intervals for fv in store.list_feature_views())
        assert_no_changes(parse_plan(feast_cli(repo, "plan")))
        assert not apply_repo(open_store(usecase=usecase)).changed

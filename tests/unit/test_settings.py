"""Production configuration is declared once and every entrance checks it.

``slipway.settings.PROD_REQUIRED`` is the one list of what ``SLIPWAY_ENV=prod`` needs. The Dagster
code location (``build_resources``), the online scorer's start-up check, the stream consumer and
``deploy/prod/slipwayctl`` (through ``python -m slipway.settings missing-prod``) all refuse to
start without one of them, naming it, instead of falling back to an embedded default; in
production the resources carry ``dg.EnvVar``s resolved when a run starts.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import dagster as dg
import pytest

from orchestration.resources import build_resources
from slipway.serving.security import InsecureConfiguration, check_startup
from slipway.settings import (
    PROD_REQUIRED,
    PROJECT_ROOT,
    ServingSecurity,
    missing_for_prod,
    require_prod_settings,
)

FULL = {
    "SLIPWAY_ENV": "prod",
    "SLIPWAY_LAKEHOUSE_ROOT": "s3://bucket/lakehouse",
    "SLIPWAY_LANDING_ROOT": "s3://bucket/landing",
    "SLIPWAY_SPARK_REMOTE": "sc://spark:15002",
    "SLIPWAY_FEAST_ONLINE": "redis://redis:6379/0",
    "SLIPWAY_FEAST_REGISTRY": "postgresql+psycopg2://feast@pg:5432/feast",
    "SLIPWAY_MLFLOW_TRACKING_URI": "postgresql://ml@pg:5432/mlflow",
}


def _profile_without_feast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production profile with every variable but Feast's (the case the issue names)."""
    for name in PROD_REQUIRED:
        monkeypatch.delenv(name, raising=False)
    for name, value in FULL.items():
        if "FEAST" not in name:
            monkeypatch.setenv(name, value)


def test_the_list_names_every_location_a_production_process_would_otherwise_guess() -> None:
    assert set(PROD_REQUIRED) == set(FULL) - {"SLIPWAY_ENV"}
    assert missing_for_prod(FULL) == []
    assert missing_for_prod({}) == list(PROD_REQUIRED)
    blank = {**FULL, "SLIPWAY_FEAST_ONLINE": "  "}
    assert missing_for_prod(blank) == ["SLIPWAY_FEAST_ONLINE"]
    require_prod_settings({"SLIPWAY_ENV": "local"})  # the embedded default needs nothing
    with pytest.raises(RuntimeError, match="SLIPWAY_FEAST_ONLINE, SLIPWAY_FEAST_REGISTRY"):
        require_prod_settings({k: v for k, v in FULL.items() if "FEAST" not in k})


def test_prod_resources_refuse_a_partial_profile_and_hold_env_vars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _profile_without_feast(monkeypatch)
    with pytest.raises(RuntimeError) as refused:
        build_resources()
    assert "SLIPWAY_FEAST_ONLINE" in str(refused.value)
    assert "SLIPWAY_LAKEHOUSE_ROOT" not in str(refused.value)
    for name, value in FULL.items():
        monkeypatch.setenv(name, value)
    resources = build_resources()
    # The configuration is the variable's name, resolved when a run starts (shown in the UI).
    for key, field, variable in [
        ("lakehouse", "root", "SLIPWAY_LAKEHOUSE_ROOT"),
        ("landing", "root", "SLIPWAY_LANDING_ROOT"),
        ("spark", "remote", "SLIPWAY_SPARK_REMOTE"),
    ]:
        config = resources[key]._get_non_default_public_field_values()[field]
        assert isinstance(config, dg.EnvVar) and config.env_var_name == variable
    monkeypatch.setenv("SLIPWAY_ENV", "local")
    local = build_resources()
    assert isinstance(local["lakehouse"].root, str)
    assert not isinstance(local["lakehouse"].root, dg.EnvVar)


def test_a_hand_started_production_scorer_without_feast_variables_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _profile_without_feast(monkeypatch)
    security = ServingSecurity((secrets.token_urlsafe(24),), "127.0.0.1", 8000, 1024, 32)
    with pytest.raises(InsecureConfiguration, match="SLIPWAY_FEAST_REGISTRY"):
        check_startup(security, is_prod=True)
    check_startup(security, is_prod=False)


def test_slipwayctl_reads_the_same_list() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env.update({k: v for k, v in FULL.items() if k != "SLIPWAY_SPARK_REMOTE"})
    done = subprocess.run(
        [sys.executable, "-m", "slipway.settings", "missing-prod"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SLIPWAY_SPARK_REMOTE"]
    assert "slipway.settings missing-prod" in (PROJECT_ROOT / "deploy/prod/slipwayctl").read_text()


def test_the_typed_settings_parse_and_refuse_bad_values_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from slipway.settings import load_settings

    monkeypatch.setenv("SLIPWAY_SERVING_MAX_BATCH", "64")
    monkeypatch.setenv("SLIPWAY_SERVING_STORE_DEADLINE_MS", "12.5")
    monkeypatch.setenv("SLIPWAY_STREAM_FSYNC", "1")
    monkeypatch.setenv("SLIPWAY_SERVING_FEATURE_PATH", "Feast")
    settings = load_settings()
    assert settings.serving_max_batch == 64 and settings.serving_store_deadline_ms == 12.5
    assert settings.stream_fsync and settings.serving_feature_path == "feast"
    for name, bad in [
        ("SLIPWAY_SERVING_MAX_BATCH", "lots"),
        ("SLIPWAY_SERVING_STORE_COOLDOWN_S", "nan"),
        ("SLIPWAY_SERVING_FEATURE_PATH", "redis"),
        ("SLIPWAY_STREAM_PARTITION", "-1"),
    ]:
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=name):
            load_settings()
        monkeypatch.delenv(name)

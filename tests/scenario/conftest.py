"""Scenario fixtures: a private copy of the session's small world, and a simulator that continues it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.support.pipeline import SMALL

pytestmark = pytest.mark.scenario


def copy_world(pipeline, target: Path) -> Path:
    """A writable copy of the session's world (landing, lakehouse, Feast stores)."""
    from tests.support.pipeline import copy_world as copy

    return copy(pipeline.data_dir, target)


def next_day(pipeline, offset: int = 1) -> dt.date:
    return pipeline.end + dt.timedelta(days=offset)


def simulator(**overrides):
    """The simulation the session's world came from, extended with scenarios: earlier days are
    byte-identical, so new days continue the same customers, merchants and habits."""
    from slipway.usecases.fraud.simulator import SimConfig, Simulator

    return Simulator(SimConfig(**{**SMALL, **overrides}))

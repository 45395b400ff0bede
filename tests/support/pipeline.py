"""Build a small, real lakehouse end to end once, for tests that need a trained, scored world.

Everything runs for real (simulator, Sail, dbt, Feast, LightGBM, Dagster in process); only the
sizes are small. The environment variables that point Slipway at a data directory are set for
the duration of the context and restored afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SMALL = {"days": 24, "transactions_per_day": 1000, "customers": 600, "merchants": 60}
# The use case the small world is of: its tables live under <root>/<USECASE>/ (Settings.scoped).
USECASE = "fraud"


def env_for(data_dir: Path) -> dict[str, str]:
    return {
        "SLIPWAY_DATA_DIR": str(data_dir),
        "SLIPWAY_LANDING_ROOT": str(data_dir / "landing"),
        "SLIPWAY_LAKEHOUSE_ROOT": str(data_dir / "lakehouse"),
        "SLIPWAY_FEAST_DIR": str(data_dir / "feast"),
    }


@contextmanager
def slipway_env(data_dir: Path, extra: dict[str, str] | None = None) -> Iterator[None]:
    """Point every Slipway location at ``data_dir`` (and ``extra`` variables) for a while."""
    values = {**env_for(data_dir), **(extra or {})}
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@dataclass(frozen=True)
class PipelineData:
    data_dir: Path
    start: dt.date
    end: dt.date
    run_id: str

    @property
    def lakehouse_root(self) -> Path:
        """The use case's own lakehouse (``<data>/lakehouse/<usecase>``)."""
        return self.data_dir / "lakehouse" / USECASE

    @property
    def landing_root(self) -> Path:
        """The use case's own landing area (``<data>/landing/<usecase>``)."""
        return self.data_dir / "landing" / USECASE


def copy_world(source: Path, target: Path, ignore: tuple[str, ...] = ()) -> Path:
    """A writable copy of a built world whose Feast registry points at the copy.

    Feast's registry records each SQLite online table with its absolute path; left as is, the
    copy's first `feast apply` sees a moved store and tears the tables down *at the old path*,
    i.e. in the world that was copied. The copy's registry is relocated before anyone applies.
    """
    import shutil

    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*ignore) if ignore else None)
    # MLflow records absolute artefact locations: the copy must not write into the original's.
    mlflow_db = target / "lakehouse" / USECASE / "mlflow" / "mlflow.db"
    if mlflow_db.exists():
        from slipway.registry.tracking import relocate_sqlite_store

        relocate_sqlite_store(mlflow_db, str(Path(source).resolve()), str(Path(target).resolve()))
    registry = target / "feast" / USECASE / "registry.db"
    if registry.exists():
        from slipway.featurestore.store import open_store

        with slipway_env(target):
            store = open_store()
            infra = store.registry.get_infra(store.project)
            for obj in infra.infra_objects:
                path = getattr(obj, "path", None)
                if isinstance(path, str) and path.startswith(str(source)):
                    obj.path = str(target) + path[len(str(source)) :]
            store.registry.update_infra(infra, store.project, commit=True)
    return target


def simulate(data_dir: Path, **overrides) -> list[dt.date]:
    from slipway.usecases.fraud.simulator import SimConfig, Simulator

    config = SimConfig(**{**SMALL, **overrides})
    sim = Simulator(config)
    sim.write_range(data_dir / "landing" / USECASE)
    return sim.days()


def run_graph(
    start: dt.date,
    end: dt.date,
    instance=None,
    job: str = "end_to_end",
    tags: dict[str, str] | None = None,
    usecase: str = USECASE,
):
    """Run ``usecase``'s job (``<usecase>_<job>``) of freshly built definitions (they read the
    environment) for a date range."""
    import dagster as dg

    from orchestration.definitions import build_definitions

    warnings.filterwarnings("ignore")
    defs = build_definitions()
    return defs.get_job_def(f"{usecase}_{job}").execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat(),
            **(tags or {}),
        },
        raise_on_error=False,
    )


def build_pipeline(data_dir: Path, **sim_overrides) -> PipelineData:
    """Simulate, then run the whole graph once over every simulated day. Must succeed."""
    days = simulate(data_dir, **sim_overrides)
    result = run_graph(days[0], days[-1])
    if not result.success:
        failures = [
            f"{e.step_key}: {e.event_specific_data.error.message.splitlines()[0]}"
            for e in result.all_events
            if e.event_type_value == "STEP_FAILURE"
        ]
        raise RuntimeError("the test pipeline failed: " + "; ".join(failures))
    return PipelineData(data_dir, days[0], days[-1], result.run_id)

"""Gold assets: the dbt project in ``dbt_project/`` as Dagster assets, silver -> marts.

Thin on purpose: dbt does the work (``dbt build`` runs the models and their tests), the
``lakehouse`` dbt-duckdb plugin commits each mart to Delta, and this module only

* maps dbt nodes to asset keys (marts -> ``["gold", <model>]``, sources -> the silver/quarantine
  assets through ``meta.dagster.asset_key``; staging models are ephemeral, so the graph goes
  straight from silver to the marts),
* passes a partitioned run's time window to dbt as ``--vars`` (a backfill over a range is ONE dbt
  invocation that replaces exactly those dates),
* attaches the Delta version each mart was written at, the rows written and the silver versions
  read (from the plugin's receipts file) to every materialization.

dbt tests become asset checks (dagster-dbt's default), including on the partitioned mart, where
they test the rows written for the run's window.

dbt runs inside the step's process (:mod:`slipway.gold.dbt_runner`: no ``dbt`` subprocess, parsed
manifests reused), and dagster-dbt's own event translation turns its result events into outputs
and check results, so they are what ``DbtCliResource.cli(...).stream()`` would yield.
``SLIPWAY_DBT_SUBPROCESS=1`` switches back to that subprocess (the module docstring of
``dbt_runner`` says when that is worth it).
"""

import importlib.metadata
import json
import os
import sys
import uuid
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from dagster_dbt.asset_utils import get_updated_cli_invocation_params_for_context
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
from dagster_dbt.errors import DagsterDbtCliRuntimeError
from packaging import version

from orchestration.partitions import daily_partitions, partition_dates
from slipway.gold import dbt_project, dbt_runner
from slipway.gold.dbt_delta_plugin import RECEIPTS_ENV
from slipway.lakehouse import Lakehouse

GOLD = "gold"
DAILY_TAG = "daily"
DAILY_SELECT = f"tag:{DAILY_TAG}"
# Marts over monitoring results get their own step, so the business marts never wait for (or are
# skipped with) scoring and monitoring.
MONITORING_SELECT = "tag:monitoring"


class GoldTranslator(DagsterDbtTranslator):
    """Marts are ``["gold", <model>]`` in group ``gold``; sources keep their ``meta`` asset keys."""

    def __init__(self) -> None:
        # Two dbt sources (all of silver.transactions, and its run window) are the same asset.
        super().__init__(DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot"):
            return dg.AssetKey([GOLD, dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot"):
            return GOLD
        return super().get_group_name(dbt_resource_props)

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        table = _lakehouse_table(dbt_resource_props)
        extra = {"lakehouse_table": table} if table else {}
        return {**super().get_metadata(dbt_resource_props), **extra}

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: Any
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("model."):
            spec = spec.replace_attributes(kinds={"dbt", "duckdb", "delta"})
            tags = manifest["nodes"][unique_id].get("tags", [])
            if "daily" not in tags:
                # Full-refresh marts are cheap summaries: rebuild them whenever an input changes.
                spec = spec.replace_attributes(automation_condition=dg.AutomationCondition.eager())
        return spec


def _lakehouse_table(props: Mapping[str, Any]) -> str | None:
    if (
        props.get("resource_type") != "model"
        or props.get("config", {}).get("materialized") != "external"
    ):
        return None
    return props.get("config", {}).get("lakehouse_table") or f"{GOLD}.{props['name']}"


def dbt_executable() -> str:
    """The ``dbt`` next to this interpreter: Dagster may run without the venv's bin on PATH."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


class SlipwayDbtCliResource(DbtCliResource):
    """``DbtCliResource`` that reads the dbt version from the installed package.

    dagster-dbt runs ``dbt --version`` before every invocation (a cached property per resource
    instance, i.e. per run): ~3 s here, and it asks PyPI for the latest release, which stalls on a
    machine without internet. When the executable is this environment's own ``dbt``, the installed
    dbt-core version is the same answer at no cost.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable).absolute().parent == Path(sys.executable).absolute().parent:
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version


def dbt_resource() -> DbtCliResource:
    """The ``dbt`` resource for :func:`gold_definitions` (resource key ``dbt``)."""
    return SlipwayDbtCliResource(
        project_dir=os.fspath(dbt_project.DBT_PROJECT_DIR),
        profiles_dir=os.fspath(dbt_project.DBT_PROFILES_DIR),
        dbt_executable=dbt_executable(),
    )


def dbt_lakehouse_env(lakehouse_root: str | None = None) -> dict[str, str]:
    """The environment dbt runs with (lakehouse root, scratch folder), from the settings."""
    return dbt_project.dbt_env(lakehouse_root)


# -- running dbt ----------------------------------------------------------------------------------
def _read_receipts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


class Mart(NamedTuple):
    """What Dagster needs to know about one mart: its Delta table and the tables it reads."""

    table: str
    reads: frozenset[str]


def _delta_metadata(
    model: str, mart: Mart, receipts: list[dict[str, Any]], lakehouse: Lakehouse
) -> dict[str, Any]:
    """Version and rows the plugin wrote for ``model``, and the versions of what it read."""
    writes = [r for r in receipts if r["op"] == "write" and r.get("model") == model]
    reads = {
        r["table"]: r["version"] for r in receipts if r["op"] == "read" and r["table"] in mart.reads
    }
    meta: dict[str, Any] = {
        "table_uri": dg.MetadataValue.path(lakehouse.uri(mart.table)),
        "read_versions": dg.MetadataValue.json(reads),
    }
    if writes:
        last = writes[-1]
        meta["table_version"] = last["version"]
        meta["rows_written"] = last["rows"]
        meta["dagster/row_count"] = last["rows"]
        meta["replaced_dates"] = (
            " .. ".join(last["window"]) if last["window"] else "all (full overwrite)"
        )
    else:  # no receipt (a plugin from before receipts?): the table's head is the best guess
        meta["table_version"] = lakehouse.version(mart.table)
    return meta


def _cleanup(receipts_path: Path, receipts: list[dict[str, Any]]) -> None:
    """Remove the invocation's scratch parquet files and its receipts (Delta holds the data)."""
    for r in receipts:
        if r.get("scratch"):
            Path(r["scratch"]).unlink(missing_ok=True)
    receipts_path.unlink(missing_ok=True)


def run_dbt(
    context: dg.AssetExecutionContext,
    command: str,
    marts: Mapping[str, Mart],
    dbt_vars: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """Run ``dbt <command>`` for the selected assets and yield its events, with Delta metadata.

    In this process (:mod:`slipway.gold.dbt_runner`) unless ``SLIPWAY_DBT_SUBPROCESS=1`` asks for
    dagster-dbt's subprocess; either way the Dagster events are dagster-dbt's own translation of
    dbt's result events (outputs, asset checks), and a failed dbt fails the step with dbt's errors.
    """
    lakehouse: Lakehouse = context.resources.lakehouse.get()
    env = dbt_lakehouse_env(lakehouse.root)
    scratch = Path(env["SLIPWAY_DBT_SCRATCH"])
    scratch.mkdir(parents=True, exist_ok=True)
    receipts_path = scratch / f"{uuid.uuid4().hex}.receipts.jsonl"
    env[RECEIPTS_ENV] = os.fspath(receipts_path)
    run = _dbt_subprocess if dbt_runner.use_subprocess() else _dbt_in_process
    try:
        for event in run(context, command, dbt_vars, env):
            if isinstance(event, dg.Output):
                model = context.asset_key_for_output(event.output_name).path[-1]
                if model in marts:
                    meta = _delta_metadata(
                        model, marts[model], _read_receipts(receipts_path), lakehouse
                    )
                    event = event.with_metadata({**event.metadata, **meta})
            yield event
    finally:
        _cleanup(receipts_path, _read_receipts(receipts_path))


def _dbt_subprocess(
    context: dg.AssetExecutionContext,
    command: str,
    dbt_vars: Mapping[str, Any] | None,
    env: Mapping[str, str],
) -> Iterator[Any]:
    """dagster-dbt's path: a ``dbt`` subprocess per invocation, its JSON log lines streamed."""
    dbt: DbtCliResource = context.resources.dbt
    args = [command, *(["--vars", json.dumps(dict(dbt_vars))] if dbt_vars else [])]
    # DbtCliResource copies os.environ when it starts the dbt process (inside .cli()), so the
    # lakehouse root of *this* resource reaches dbt even when the environment says otherwise.
    with dbt_project.environ(env):
        invocation = dbt.cli(args, context=context)
    yield from invocation.stream()


def _dbt_in_process(
    context: dg.AssetExecutionContext,
    command: str,
    dbt_vars: Mapping[str, Any] | None,
    env: Mapping[str, str],
) -> Iterator[Any]:
    """dbt in this process; its result events translated exactly as dagster-dbt translates them."""
    dbt: DbtCliResource = context.resources.dbt
    # the selection dagster-dbt would pass (subsets of the assets and checks, indirect selection)
    params = get_updated_cli_invocation_params_for_context(
        context=context, manifest={}, dagster_dbt_translator=DagsterDbtTranslator()
    )
    project_dir = Path(params.dbt_project.project_dir if params.dbt_project else dbt.project_dir)
    args = [*dbt.global_config_flags, command, *params.selection_args]
    if params.indirect_selection:
        args += ["--indirect-selection", params.indirect_selection]
    target_path = _target_path(context, project_dir)
    invocation = dbt_runner.invoke(
        args,
        target_path=target_path,
        vars=dbt_vars,
        env=env,
        project_dir=project_dir,
        profiles_dir=Path(dbt.profiles_dir or project_dir),
        profile=dbt.profile,
        target=dbt.target,
    )
    context.log.info(
        f"{invocation.command}: manifest from {invocation.manifest_from} "
        f"({invocation.parse_seconds:.2f} s), dbt ran {invocation.run_seconds:.2f} s in-process"
    )
    for raw_event in invocation.events:
        event = DbtCoreCliEventMessage(raw_event=raw_event, event_history_metadata={})
        yield from event.to_default_asset_events(
            manifest=params.manifest,
            dagster_dbt_translator=params.dagster_dbt_translator,
            context=context,
            target_path=target_path,
            project=params.dbt_project,
        )
    if not invocation.success:
        log = target_path / "dbt.log"
        raise DagsterDbtCliRuntimeError(
            description=(
                f"The in-process dbt invocation\n\n`{invocation.command}`\n\nfailed"
                + (f" (dbt debug log: {log})" if log.exists() else "")
                + f".\n\nErrors from dbt:\n\n{invocation.error_message() or 'none reported'}"
            )
        )


def _target_path(context: dg.AssetExecutionContext, project_dir: Path) -> Path:
    """A target folder of its own for this invocation, named and placed as dagster-dbt does."""
    root = Path(os.getenv("DBT_TARGET_PATH", "target"))
    if not root.is_absolute():
        root = project_dir / root
    name = f"{context.op_execution_context.op.name}-{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}"
    return root / name


def _marts(manifest: Mapping[str, Any]) -> dict[str, Mart]:
    """model name -> its Delta table and the lakehouse tables it reads (through ephemeral models)."""
    sources = {
        uid: (src.get("config", {}).get("meta") or src.get("meta") or {}).get("lakehouse_table")
        or f"{src['source_name']}.{src['name']}"
        for uid, src in manifest.get("sources", {}).items()
    }
    nodes = manifest.get("nodes", {})

    def reads(uid: str, seen: set[str]) -> set[str]:
        found: set[str] = set()
        for parent in nodes.get(uid, {}).get("depends_on", {}).get("nodes", []):
            if parent in seen:
                continue
            seen.add(parent)
            if parent in sources:
                found.add(sources[parent])
            elif nodes.get(parent, {}).get("config", {}).get("materialized") == "ephemeral":
                found |= reads(parent, seen)
        return found

    return {
        node["name"]: Mart(table, frozenset(reads(uid, set())))
        for uid, node in nodes.items()
        if (table := _lakehouse_table(node))
    }


def _window_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The run's partition range as the inclusive ISO dates the dbt project expects."""
    start, end = partition_dates(context)
    return {"start_date": start.isoformat(), "end_date": end.isoformat()}


# -- definitions ----------------------------------------------------------------------------------
def gold_definitions() -> tuple[list[dg.AssetsDefinition], list]:
    """(assets, asset checks) of the gold layer; dbt tests are checks inside the dbt assets.

    Needs resources ``dbt`` (:func:`dbt_resource`) and ``lakehouse`` (``LakehouseResource``).
    Parses the dbt project first when its manifest is missing or stale.
    """
    manifest_path = dbt_project.ensure_manifest()
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    marts = _marts(manifest)
    translator = GoldTranslator()

    @dbt_assets(
        manifest=manifest,
        select=DAILY_SELECT,
        name="gold_daily_marts",
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
        required_resource_keys={"dbt", "lakehouse"},
    )
    def gold_daily_marts(context: dg.AssetExecutionContext):
        """Date-partitioned marts: one dbt build for the run's whole partition range."""
        window = _window_vars(context)
        context.log.info(f"dbt build for dates {window['start_date']} .. {window['end_date']}")
        yield from run_dbt(context, "build", marts, dbt_vars=window)

    @dbt_assets(
        manifest=manifest,
        exclude=f"{DAILY_SELECT} {MONITORING_SELECT}",
        name="gold_marts",
        dagster_dbt_translator=translator,
        required_resource_keys={"dbt", "lakehouse"},
    )
    def gold_marts(context: dg.AssetExecutionContext):
        """Full-refresh marts (every date, because late chargebacks change any past day)."""
        yield from run_dbt(context, "build", marts)

    @dbt_assets(
        manifest=manifest,
        select=MONITORING_SELECT,
        name="gold_monitoring_marts",
        dagster_dbt_translator=translator,
        required_resource_keys={"dbt", "lakehouse"},
    )
    def gold_monitoring_marts(context: dg.AssetExecutionContext):
        """Marts over the monitoring tables (drift and performance history), rebuilt in full."""
        yield from run_dbt(context, "build", marts)

    return [gold_daily_marts, gold_marts, gold_monitoring_marts], []

"""Gold assets: each use case's dbt models (``dbt_project/models/<usecase>/``) as Dagster assets.

Thin on purpose: dbt does the work (``dbt build`` runs the models and their tests), the
``lakehouse`` dbt-duckdb plugin commits each mart to Delta, ``slipway.gold`` knows the manifest's
marts and the plugin's receipts, and this module only

* maps dbt nodes to asset keys (marts -> ``<usecase>/gold/<model>``, sources -> the use case's
  silver/quarantine assets through ``meta.dagster.asset_key``, prefixed with the use case;
  staging models are ephemeral, so the graph goes straight from silver to the marts),
* selects the use case's models (``usecase.dbt.selection``) and runs dbt on its lakehouse, with
  ``--vars {"usecase": <name>, ...}`` so its manifests are its own,
* passes a partitioned run's time window to dbt as ``--vars`` (a backfill over a range is ONE dbt
  invocation that replaces exactly those dates),
* attaches the Delta version each mart was written at (also its data version), the rows written
  and the silver versions read (from the plugin's receipts file) to every materialization; a
  partitioned mart's event for each day carries that day's rows, the range's total is
  ``range_rows_written``.

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
from typing import Any

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

from assets.lib.keys import asset_key, scoped_name
from assets.lib.metadata import add_partition_metadata, data_version, day_rows
from assets.lib.partitions import daily_partitions, partition_dates
from assets.lib.resources import LakehouseResource
from assets.lib.retries import REMOTE_RETRY_POLICY, retry_transient_only
from slipway.gold import dbt_project, dbt_runner
from slipway.gold.dbt_delta_plugin import RECEIPTS_ENV, SCRATCH_ENV
from slipway.gold.marts import (
    GOLD,
    Mart,
    cleanup,
    dbt_executable,
    lakehouse_table,
    manifest_selection,
    mart_write,
    marts,
    read_receipts,
)
from slipway.lakehouse import Lakehouse
from slipway.usecase import UseCase

DAILY_TAG = "daily"
DAILY_SELECT = f"tag:{DAILY_TAG}"
# Marts over monitoring results get their own step, so the business marts never wait for (or are
# skipped with) scoring and monitoring.
MONITORING_SELECT = "tag:monitoring"


class GoldTranslator(DagsterDbtTranslator):
    """Marts are ``<usecase>/gold/<model>`` in group ``<usecase>_gold``; sources keep their
    ``meta`` asset keys, prefixed with the use case (``<usecase>/silver/<stream>``)."""

    def __init__(self, usecase: UseCase) -> None:
        # Two dbt sources (all of a silver stream, and its run window) can be the same asset.
        super().__init__(DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True))
        self.usecase = usecase

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot"):
            return asset_key(self.usecase, GOLD, dbt_resource_props["name"])
        return asset_key(self.usecase, *super().get_asset_key(dbt_resource_props).path)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot"):
            return scoped_name(self.usecase, GOLD)
        return super().get_group_name(dbt_resource_props)

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        table = lakehouse_table(dbt_resource_props)
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


# -- running dbt ----------------------------------------------------------------------------------
def _mart_metadata(facts: Mapping[str, Any], partitioned: bool) -> dict[str, Any]:
    """The mart's write; a partitioned run's rows are the range's (each day's go on its event)."""
    meta: dict[str, Any] = {
        "table_uri": dg.MetadataValue.path(facts["table_uri"]),
        "read_versions": dg.MetadataValue.json(facts["read_versions"]),
        "table_version": facts["table_version"],
    }
    if "rows_written" in facts:
        if partitioned:
            meta["range_rows_written"] = facts["rows_written"]
        else:
            meta["rows_written"] = facts["rows_written"]
            meta["dagster/row_count"] = facts["rows_written"]
        meta["replaced_dates"] = facts["replaced_dates"]
    return meta


def _with_mart_facts(
    context: dg.AssetExecutionContext,
    event: dg.Output,
    mart: Mart,
    facts: Mapping[str, Any],
    lakehouse: Lakehouse,
    date_column: str | None,
) -> dg.Output:
    """``event`` with the mart's Delta facts, its data version, and each day's own rows."""
    partitioned = date_column is not None and context.has_partition_key_range
    if partitioned and facts.get("table_version") is not None:
        start, end = partition_dates(context)
        counts = lakehouse.rows_per_date(
            mart.table, (start, end), version=facts["table_version"], date_column=date_column
        )
        add_partition_metadata(
            context,
            lambda day: day_rows(counts, day),
            asset_key=context.asset_key_for_output(event.output_name),
        )
    metadata = {**event.metadata, **_mart_metadata(facts, partitioned)}
    if partitioned:
        start, end = partition_dates(context)
        metadata.update(range_start=start.isoformat(), range_end=end.isoformat())
    return dg.Output(
        value=event.value,
        output_name=event.output_name,
        metadata=metadata,
        data_version=(
            data_version(facts["table_version"])
            if facts.get("table_version") is not None
            else event.data_version
        ),
        tags=event.tags,
    )


def run_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    lakehouses: LakehouseResource,
    usecase: UseCase,
    command: str,
    marts: Mapping[str, Mart],
    dbt_vars: Mapping[str, Any] | None = None,
    date_columns: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """Run ``dbt <command>`` for the selected assets and yield its events, with Delta metadata.

    In this process (:mod:`slipway.gold.dbt_runner`) unless ``SLIPWAY_DBT_SUBPROCESS=1`` asks for
    dagster-dbt's subprocess; either way the Dagster events are dagster-dbt's own translation of
    dbt's result events (outputs, asset checks), and a failed dbt fails the step with dbt's errors.
    ``date_columns`` (model -> column) marks the partitioned marts whose rows are split by day.

    A failed dbt is not retried by the step's retry policy: what dbt reports (a failed test, a
    SQL error) fails the same way again.
    """
    lakehouse: Lakehouse = lakehouses.get(usecase.name)
    env = dbt_project.dbt_env(lakehouse.root, usecase.name)
    dbt_vars = dbt_project.usecase_vars(usecase.name, **(dbt_vars or {}))
    scratch = Path(env[SCRATCH_ENV])
    scratch.mkdir(parents=True, exist_ok=True)
    receipts_path = scratch / f"{uuid.uuid4().hex}.receipts.jsonl"
    env[RECEIPTS_ENV] = os.fspath(receipts_path)
    run = _dbt_subprocess if dbt_runner.use_subprocess() else _dbt_in_process
    try:
        for event in run(context, dbt, command, dbt_vars, env):
            if isinstance(event, dg.Output):
                model = context.asset_key_for_output(event.output_name).path[-1]
                if model in marts:
                    facts = mart_write(model, marts[model], read_receipts(receipts_path), lakehouse)
                    event = _with_mart_facts(
                        context,
                        event,
                        marts[model],
                        facts,
                        lakehouse,
                        (date_columns or {}).get(model),
                    )
            yield event
    except DagsterDbtCliRuntimeError as err:
        err.allow_retries = False
        raise
    finally:
        cleanup(receipts_path)


def _dbt_subprocess(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    command: str,
    dbt_vars: Mapping[str, Any] | None,
    env: Mapping[str, str],
) -> Iterator[Any]:
    """dagster-dbt's path: a ``dbt`` subprocess per invocation, its JSON log lines streamed."""
    args = [command, *(["--vars", json.dumps(dict(dbt_vars))] if dbt_vars else [])]
    # DbtCliResource copies os.environ when it starts the dbt process (inside .cli()), so the
    # lakehouse root of *this* resource reaches dbt even when the environment says otherwise.
    with dbt_project.environ(env):
        invocation = dbt.cli(args, context=context)
    yield from invocation.stream()


def _dbt_in_process(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    command: str,
    dbt_vars: Mapping[str, Any] | None,
    env: Mapping[str, str],
) -> Iterator[Any]:
    """dbt in this process; its result events translated exactly as dagster-dbt translates them."""
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


def _window_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The run's partition range as the inclusive ISO dates the dbt project expects."""
    start, end = partition_dates(context)
    return {"start_date": start.isoformat(), "end_date": end.isoformat()}


# -- definitions ----------------------------------------------------------------------------------
def gold_definitions(usecase: UseCase) -> tuple[list[dg.AssetsDefinition], list]:
    """(assets, asset checks) of ``usecase``'s gold layer; dbt tests are checks inside the assets.

    Needs resources ``dbt`` (:func:`dbt_resource`) and ``lakehouse`` (``LakehouseResource``).
    Parses the dbt project first when the use case's manifest is missing or stale. A use case
    without dbt models (``dbt=None``) has no gold layer.
    """
    if usecase.dbt is None:
        return [], []
    manifest_path = dbt_project.ensure_manifest(usecase=usecase.name)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    models = marts(manifest)
    translator = GoldTranslator(usecase)
    selection = manifest_selection(usecase.dbt.selection)
    # the column each mart's date range is replaced on (the plugin's ``date_column``)
    date_columns = {
        node["name"]: node.get("config", {}).get("date_column") or "date"
        for node in manifest["nodes"].values()
        if node.get("resource_type") == "model"
    }

    @dbt_assets(
        manifest=manifest,
        select=f"{selection},{DAILY_SELECT}",
        name=scoped_name(usecase, "gold_daily_marts"),
        partitions_def=daily_partitions(usecase),
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def gold_daily_marts(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, lakehouse: LakehouseResource
    ):
        """Date-partitioned marts: one dbt build for the run's whole partition range."""
        window = _window_vars(context)
        context.log.info(f"dbt build for dates {window['start_date']} .. {window['end_date']}")
        yield from run_dbt(context, dbt, lakehouse, usecase, "build", models, window, date_columns)

    @dbt_assets(
        manifest=manifest,
        select=selection,
        exclude=f"{DAILY_SELECT} {MONITORING_SELECT}",
        name=scoped_name(usecase, "gold_marts"),
        dagster_dbt_translator=translator,
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def gold_marts(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, lakehouse: LakehouseResource
    ):
        """Full-refresh marts (every date: late labels can change any past day)."""
        yield from run_dbt(context, dbt, lakehouse, usecase, "build", models)

    built = [gold_daily_marts, gold_marts]
    if _selects_any(manifest, selection, MONITORING_SELECT):

        @dbt_assets(
            manifest=manifest,
            select=f"{selection},{MONITORING_SELECT}",
            name=scoped_name(usecase, "gold_monitoring_marts"),
            dagster_dbt_translator=translator,
            retry_policy=REMOTE_RETRY_POLICY,
        )
        @retry_transient_only
        def gold_monitoring_marts(
            context: dg.AssetExecutionContext, dbt: DbtCliResource, lakehouse: LakehouseResource
        ):
            """Marts over the monitoring tables (drift and performance history), rebuilt in full."""
            yield from run_dbt(context, dbt, lakehouse, usecase, "build", models)

        built.append(gold_monitoring_marts)
    return built, []


def _selects_any(manifest: Mapping[str, Any], selection: str, tag_select: str) -> bool:
    """Whether ``selection`` holds a model with the tag: dbt_assets refuses an empty selection,
    and a use case need not have monitoring marts."""
    from dagster_dbt.utils import select_unique_ids

    selected = select_unique_ids(
        select=f"{selection},{tag_select}",
        exclude="",
        selector="",
        project=None,
        manifest_json=manifest,
    )
    return bool(selected)

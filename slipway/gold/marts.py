"""What a dbt manifest says about the marts, and what the plugin's receipts say each run wrote.

The Dagster assets over dbt (``assets/gold/``) only translate; the facts come from here: which
Delta table each mart is (:func:`marts`, through ephemeral staging models down to the sources it
reads), the version and rows the ``lakehouse`` plugin committed for it and the source versions
it read (:func:`mart_write`, from the receipts file), and the cleanup of an invocation's scratch
files. Nothing here imports Dagster.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from slipway.lakehouse import Lakehouse

GOLD = "gold"


class Mart(NamedTuple):
    """One mart: its Delta table and the lakehouse tables it reads."""

    table: str
    reads: frozenset[str]


def lakehouse_table(props: Mapping[str, Any]) -> str | None:
    """The Delta table an ``external`` model is written to (``gold.<model>`` unless configured)."""
    if (
        props.get("resource_type") != "model"
        or props.get("config", {}).get("materialized") != "external"
    ):
        return None
    return props.get("config", {}).get("lakehouse_table") or f"{GOLD}.{props['name']}"


def marts(manifest: Mapping[str, Any]) -> dict[str, Mart]:
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
        if (table := lakehouse_table(node))
    }


class MartRelation(NamedTuple):
    """Where dbt looks for a mart in DuckDB (schema, identifier) and the Delta table it is."""

    schema: str
    identifier: str
    table: str


def mart_relations(manifest: Mapping[str, Any]) -> list[MartRelation]:
    """Every ``external`` mart of the manifest, as the relation dbt's catalog query looks for."""
    found = []
    for node in manifest.get("nodes", {}).values():
        table = lakehouse_table(node)
        if table:
            found.append(MartRelation(node["schema"], node.get("alias") or node["name"], table))
    return found


def read_receipts(path: Path) -> list[dict[str, Any]]:
    """The plugin's receipts of one invocation (one JSON object per read or write)."""
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def mart_write(
    model: str, mart: Mart, receipts: list[dict[str, Any]], lakehouse: Lakehouse
) -> dict[str, Any]:
    """Version and rows the plugin wrote for ``model``, the versions of what it read, the URI."""
    writes = [r for r in receipts if r["op"] == "write" and r.get("model") == model]
    reads = {
        r["table"]: r["version"] for r in receipts if r["op"] == "read" and r["table"] in mart.reads
    }
    facts: dict[str, Any] = {"table_uri": lakehouse.uri(mart.table), "read_versions": reads}
    if writes:
        last = writes[-1]
        facts["table_version"] = last["version"]
        facts["rows_written"] = last["rows"]
        facts["replaced_dates"] = (
            " .. ".join(last["window"]) if last["window"] else "all (full overwrite)"
        )
    else:  # no receipt (a plugin from before receipts?): the table's head is the best guess
        facts["table_version"] = lakehouse.version(mart.table)
    return facts


def cleanup(receipts_path: Path) -> None:
    """Remove the invocation's scratch parquet files and its receipts (Delta holds the data)."""
    for r in read_receipts(receipts_path):
        if r.get("scratch"):
            Path(r["scratch"]).unlink(missing_ok=True)
    receipts_path.unlink(missing_ok=True)


def dbt_executable() -> str:
    """The ``dbt`` next to this interpreter: Dagster may run without the venv's bin on PATH."""
    candidate = Path(sys.executable).parent / "dbt"
    return os.fspath(candidate) if candidate.exists() else "dbt"


def manifest_selection(selection: str) -> str:
    """A dbt selection that resolves the same against a manifest from any working directory.

    dbt's ``path:`` method globs relative to the *current* directory, so ``path:models/<folder>``
    (``DbtSpec.selection``'s default) selects nothing when the definitions load from the repo
    root; the same folder as an FQN selector (``fqn:<folder>``: the package name, then the
    folders under ``models/``) selects exactly its models wherever the process runs. Any other
    selection is returned as it is.
    """
    parts = []
    for item in selection.split():
        if item.startswith("path:models/"):
            folder = item.removeprefix("path:models/").strip("/")
            item = "fqn:" + ".".join(p for p in folder.split("/") if p)
        parts.append(item)
    return " ".join(parts)

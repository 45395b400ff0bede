"""Walk a prediction back to the landing file and line it came from.

Generic over use cases: the prediction's row key is the use case's ``examples.row_key``, and the
landing hop is the row of its primary stream with that key.

prediction -> model version (MLflow) -> training-set version -> feature table versions -> gold -> silver
-> bronze -> landing file and line. Every hop is read from the tables themselves: predictions
carry the model version and the versions of their inputs, the MLflow model version and its run
carry the training-set version, and every Delta commit on the way records the versions it read (``commit_metadata``).
Nothing depends on the orchestrator's own history, so lineage survives a lost Dagster database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as pads

from slipway.ingest.pipeline import bronze_table, files_table, silver_table
from slipway.lakehouse import Lakehouse
from slipway.registry.store import ModelRegistry
from slipway.usecase import UseCase

PREDICTIONS = "scoring.predictions"
INPUTS = "scoring.inputs"


@dataclass
class Node:
    """One hop of the lineage: what it is, which version, what it says, and where it came from."""

    label: str
    details: dict[str, Any] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)

    def find(self, prefix: str) -> Node | None:
        if self.label.startswith(prefix):
            return self
        for child in self.children:
            found = child.find(prefix)
            if found is not None:
                return found
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "details": self.details,
            "children": [c.as_dict() for c in self.children],
        }


class LineageError(LookupError):
    """The prediction (or a hop on its way) cannot be found."""


def _table_node(
    lakehouse: Lakehouse, name: str, version: int, depth: int, seen: set[tuple[str, int]]
) -> Node:
    """A table version and, recursively, the table versions its commit says it read."""
    node = Node(f"{name}@v{version}", {"uri": lakehouse.uri(name)})
    if (name, version) in seen or depth <= 0:
        return node
    seen.add((name, version))
    try:
        meta = lakehouse.commit_metadata(name, version)
    except (KeyError, Exception):
        return node
    if meta.get("run_id"):
        node.details["run_id"] = meta["run_id"]
    if meta.get("snapshot"):
        node.details["snapshot"] = meta["snapshot"]
    reads = meta.get("read_versions") or meta.get("source_versions") or {}
    for child, child_version in sorted(reads.items()):
        node.children.append(_table_node(lakehouse, child, int(child_version), depth - 1, seen))
    return node


def _one_row(
    lakehouse: Lakehouse, name: str, version: int | None, expr: pads.Expression
) -> dict[str, Any] | None:
    table = lakehouse.dataset(name, version).to_table(filter=expr)
    return table.slice(0, 1).to_pylist()[0] if table.num_rows else None


def _usecase(usecase: UseCase | None) -> UseCase:
    if usecase is not None:
        return usecase
    from slipway.usecases import get_usecase

    return get_usecase()


def _row_key(usecase: UseCase) -> str:
    if usecase.examples is None:
        raise LineageError(f"use case {usecase.name!r} declares no examples: nothing is scored")
    return usecase.examples.row_key


def trace_prediction(
    lakehouse: Lakehouse, prediction_id: str, usecase: UseCase | None = None
) -> Node:
    """The lineage tree of one prediction (``{row key}:v{model_version}``) of ``usecase``
    (default: the default use case) in its lakehouse."""
    usecase = _usecase(usecase)
    key = _row_key(usecase)
    if not lakehouse.exists(PREDICTIONS):
        raise LineageError("there are no predictions yet")
    pred = _one_row(lakehouse, PREDICTIONS, None, pads.field("prediction_id") == prediction_id)
    if pred is None:
        raise LineageError(f"no prediction {prediction_id!r} in {PREDICTIONS}")
    root = Node(
        f"prediction {prediction_id}",
        {
            "score": round(pred["score"], 6),
            "flagged": pred["flagged"],
            "role": pred["role"],
            "scored_at": str(pred["scored_at"]),
            "run_id": pred["run_id"],
        },
    )
    registry = ModelRegistry(lakehouse)
    try:
        record = registry.get(pred["model_name"], int(pred["model_version"]))
    except KeyError as exc:
        raise LineageError(
            f"prediction {prediction_id!r} names {pred['model_name']} v{pred['model_version']}, "
            f"which the MLflow registry ({registry.store.display_uri}) does not have"
        ) from exc
    model = Node(
        f"model {record.model_name} v{record.version}",
        {
            "created_at": str(record.created_at),
            "git_commit": record.git_commit,
            "run_id": record.run_id,
            "mlflow_run_id": record.mlflow_run_id,
            "device": record.device,
            "pr_auc": round(record.metrics.get("pr_auc", float("nan")), 4),
            "model_uri": record.model_uri,
            "artifact_uri": record.artifact_uri,
        },
    )
    seen: set[tuple[str, int]] = set()
    ts = record.training_set
    model.children.append(_table_node(lakehouse, str(ts["table"]), int(ts["version"]), 6, seen))
    root.children.append(model)

    inputs = Node(f"{INPUTS}@v{pred['inputs_version']}", {key: pred[key]})
    row = _one_row(
        lakehouse,
        INPUTS,
        int(pred["inputs_version"]),
        pads.field(key) == pred[key],
    )
    if row:
        inputs.details["features"] = {k: v for k, v in row.items() if k not in {"date", key}}
    for name, version in sorted(json.loads(pred["source_versions"]).items()):
        inputs.children.append(_table_node(lakehouse, name, int(version), 6, seen))
    root.children.append(inputs)

    root.children.append(_landing_node(lakehouse, usecase, pred, inputs))
    return root


SERVED = "scoring.served"


def trace_served(lakehouse: Lakehouse, event_id: str, usecase: UseCase | None = None) -> Node:
    """The lineage tree of one served (online) decision: the decision, where it entered (stream
    and position, or HTTP), the model, the batch prediction of the same event once its day landed
    (with that prediction's feature versions), and the landing file and line."""
    usecase = _usecase(usecase)
    if not lakehouse.exists(SERVED):
        raise LineageError("there are no served decisions yet")
    row = _one_row(lakehouse, SERVED, None, pads.field("event_id") == event_id)
    if row is None:
        raise LineageError(f"no served decision for {event_id!r} in {SERVED}")
    root = Node(
        f"served decision {event_id}",
        {
            "score": round(row["score"], 6),
            "flagged": row["flagged"],
            "source": row["source"],
            "stream": row["stream"],
            "position": row["position"],
            "received_at": str(row["received_at"]),
            "decided_at": str(row["decided_at"]),
            "degraded": row["degraded"],
            "defaults_used": ", ".join(row["defaults_used"] or []) or "none",
        },
    )
    record = ModelRegistry(lakehouse).get(row["model_name"], int(row["model_version"]))
    root.children.append(
        Node(
            f"model {record.model_name} v{record.version}",
            {"run_id": record.run_id, "model_uri": record.model_uri},
        )
    )
    prediction_id = f"{event_id}:v{row['model_version']}"
    try:
        batch = trace_prediction(lakehouse, prediction_id, usecase)
    except LineageError:
        silver = Node("(no batch prediction yet: its day has not landed or been scored)")
        root.children.append(silver)
        root.children.append(
            _landing_node(
                lakehouse, usecase, {"date": row["date"], _row_key(usecase): event_id}, silver
            )
        )
        return root
    root.children.append(batch)
    return root


def _landing_node(
    lakehouse: Lakehouse, usecase: UseCase, pred: dict[str, Any], inputs: Node
) -> Node:
    """Where the scored example itself landed (a row of the primary stream, keyed by its row
    key): file, line, ingest run, manifest status."""
    primary = usecase.primary
    silver_name = silver_table(primary.name)
    key = _row_key(usecase)
    silver = inputs.find(f"{silver_name}@v")
    version = int(silver.label.split("@v")[1]) if silver else None
    expr = (pads.field("date") == pred["date"]) & (pads.field(primary.key) == pred[key])
    row = _one_row(lakehouse, silver_name, version, expr)
    if row is None:
        return Node(f"landing: {primary.name} row not found in silver", {key: pred[key]})
    node = Node(
        f"landing {row['source_file']} line {row['source_line']}",
        {"ingest_run_id": row["ingest_run_id"], "ingested_at": str(row["ingested_at"])},
    )
    if lakehouse.exists(files_table(primary.name)):
        files = lakehouse.read(
            files_table(primary.name), filter=pads.field("source_file") == row["source_file"]
        )
        if files.num_rows:
            status = files.slice(files.num_rows - 1, 1).to_pylist()[0]
            node.details.update(
                {
                    "sha256": status["sha256"],
                    "manifest_status": status["status"],
                    "file_rows": status["rows"],
                }
            )
    raw = lakehouse.read(
        bronze_table(primary.name),
        filter=(pads.field("date") == pred["date"])
        & (pads.field("source_file") == row["source_file"])
        & (pads.field("source_line") == row["source_line"]),
        columns=["raw"],
    )
    if raw.num_rows:
        node.details["raw"] = pc.utf8_slice_codeunits(raw["raw"], 0, 300)[0].as_py()
    return node


def render(node: Node, depth: int = 0) -> str:
    """The tree as indented text, each hop's details on the lines under it."""
    pad = "   " * depth
    lines = [f"{pad}{'└─ ' if depth else ''}{node.label}"]
    for key, value in node.details.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        lines.append(f"{pad}{'   ' if depth else ''}   {key}: {value}")
    lines.extend(render(child, depth + 1) for child in node.children)
    return "\n".join(lines)

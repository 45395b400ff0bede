"""Challengers made on purpose: the champion's own trees with every score shifted on the logit.

A LightGBM binary model's raw score is the sum of its trees' leaf values; adding ``shift`` to
every leaf of the first tree adds ``shift`` to every event's logit. The challenger then reads
exactly the champion's features, and its score of an event is ``sigmoid(logit(champion) +
shift)``: a test can check that both models scored the *same* features, and a large shift is a
deliberately worse model (it flags far more).
"""

from __future__ import annotations

import math

from slipway.registry import ModelRegistry
from slipway.registry.store import CHALLENGER, CHAMPION


def shifted_model_text(text: str, shift: float) -> str:
    out, in_first_tree = [], False
    for line in text.splitlines():
        if line.startswith("Tree="):
            in_first_tree = line == "Tree=0"
        if line.startswith("tree_sizes="):  # byte offsets of the trees: LightGBM parses without
            continue
        if in_first_tree and line.startswith("leaf_value="):
            values = [float(v) + shift for v in line.split("=", 1)[1].split()]
            line = "leaf_value=" + " ".join(repr(v) for v in values)
        out.append(line)
    return "\n".join(out) + "\n"


def register_shifted_challenger(
    registry: ModelRegistry, model_name: str, shift: float, note: str = ""
) -> int:
    """Register the shifted champion as a new version and make it the challenger."""
    champion = registry.get(model_name, registry.alias(model_name, CHAMPION))
    text = shifted_model_text(registry.load_text(model_name, champion.version), shift)
    version = registry.register(
        model_name,
        text,
        metrics=champion.metrics,
        params=champion.params,
        features=champion.features,
        device=champion.device,
        training_set=champion.training_set,
        upstream_versions=champion.upstream_versions,
        run_id=None,
        notes=note
        or f"test challenger: champion v{champion.version} shifted {shift:+g} on the logit",
    )
    registry.set_alias(model_name, CHALLENGER, version.version, "test challenger")
    return version.version


def shifted(score: float, shift: float) -> float:
    logit = math.log(score / (1.0 - score))
    return 1.0 / (1.0 + math.exp(-(logit + shift)))

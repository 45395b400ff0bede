"""Use-case declarations. ``get_usecase(name)`` returns one; ``fraud`` is the default."""

from __future__ import annotations

import os

from slipway.usecase import UseCase


def get_usecase(name: str | None = None) -> UseCase:
    """The declared use case ``name`` (env ``SLIPWAY_USECASE``, default ``fraud``)."""
    name = name or os.environ.get("SLIPWAY_USECASE", "fraud")
    if name == "fraud":
        from slipway.usecases.fraud import FRAUD

        return FRAUD
    raise KeyError(f"unknown use case {name!r}")

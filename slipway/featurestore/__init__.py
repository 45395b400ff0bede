"""Feast over the lakehouse: a Delta data source, an offline store that reads pinned versions.

Kept light: ``import slipway.featurestore`` does not import Feast; the Feast-backed names load on
first use (``slipway.featurestore.DeltaSource``), so version pinning can be used by code that
never touches Feast. Use in feature_store.yaml::

    offline_store:
      type: slipway.featurestore.delta_offline_store.DeltaOfflineStore
      lakehouse_root: null   # SLIPWAY_LAKEHOUSE_ROOT, else <repo>/data/lakehouse
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from slipway.featurestore.versions import VersionLog, active_pins, pinned_versions

if TYPE_CHECKING:
    from slipway.featurestore.delta_offline_store import (
        DeltaOfflineStore,
        DeltaOfflineStoreConfig,
        DeltaRetrievalJob,
    )
    from slipway.featurestore.delta_source import DeltaSource

__all__ = [
    "DeltaOfflineStore",
    "DeltaOfflineStoreConfig",
    "DeltaRetrievalJob",
    "DeltaSource",
    "VersionLog",
    "active_pins",
    "pinned_versions",
]

_LAZY = {
    "DeltaOfflineStore": "slipway.featurestore.delta_offline_store",
    "DeltaOfflineStoreConfig": "slipway.featurestore.delta_offline_store",
    "DeltaRetrievalJob": "slipway.featurestore.delta_offline_store",
    "DeltaSource": "slipway.featurestore.delta_source",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

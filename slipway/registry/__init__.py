"""The model registry on MLflow: versions with lineage, aliases, the promotion gate and rollback."""

from slipway.registry.store import ModelRegistry, ModelVersion

__all__ = ["ModelRegistry", "ModelVersion"]

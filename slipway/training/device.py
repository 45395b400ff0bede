"""Pick the LightGBM device explicitly and say why when it is not the one asked for.

The PyPI wheel of LightGBM is built with OpenCL (``device_type="gpu"``), not CUDA; a CUDA build
must be compiled. ``auto`` therefore tries CUDA, then OpenCL, then the CPU, by training a tiny
probe model on each (the only reliable test: a GPU can be visible and still unusable), and the
result is recorded with every model so a reader knows what actually trained it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "gpu", "cuda"]
ORDER: dict[str, tuple[str, ...]] = {
    "auto": ("cuda", "gpu", "cpu"),
    "cuda": ("cuda", "cpu"),
    "gpu": ("gpu", "cpu"),
    "cpu": ("cpu",),
}

_cache: dict[str, tuple[bool, str]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class DeviceChoice:
    """The device that will train, and why any better one was passed over."""

    requested: str
    device: str
    fallbacks: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fell_back(self) -> bool:
        return self.device != self.requested and self.requested != "auto"

    def params(self) -> dict[str, object]:
        """LightGBM parameters for this device (GPU learners want single precision off)."""
        if self.device == "gpu":
            return {"device_type": "gpu", "gpu_use_dp": True}
        return {"device_type": self.device}


def probe(device: str) -> tuple[bool, str]:
    """Train a two-iteration model on ``device``; (usable, reason). Cached per process."""
    with _lock:
        if device in _cache:
            return _cache[device]
        import lightgbm as lgb

        rng = np.random.default_rng(0)
        x = rng.random((256, 4))
        y = (x[:, 0] > 0.5).astype(int)
        params = {"device_type": device, "verbose": -1, "num_iterations": 2, "num_threads": 1}
        try:
            lgb.train(params, lgb.Dataset(x, y))
            result = (True, "ok")
        except Exception as exc:  # LightGBMError, or an OpenCL driver crash surfaced as OSError
            result = (False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        _cache[device] = result
        return result


def choose_device(requested: Device = "auto") -> DeviceChoice:
    """The first usable device in ``requested``'s order; fallbacks carry the reasons."""
    if requested not in ORDER:
        raise ValueError(f"device must be one of {sorted(ORDER)}, got {requested!r}")
    reasons: list[str] = []
    for device in ORDER[requested]:
        usable, reason = probe(device)
        if usable:
            if reasons:
                log.warning(
                    "LightGBM device %s requested, training on %s: %s",
                    requested,
                    device,
                    "; ".join(reasons),
                )
            return DeviceChoice(requested, device, tuple(reasons))
        reasons.append(f"{device} unavailable ({reason})")
    raise RuntimeError("no LightGBM device is usable: " + "; ".join(reasons))

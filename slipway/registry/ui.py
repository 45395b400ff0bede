"""``make mlflow``: the MLflow UI on the same store that training, the gate and the scorer use.

The store is resolved exactly as ``ModelRegistry`` resolves it (``slipway.registry.tracking``),
so the UI shows this checkout's runs and registered models locally, and the production database
with ``SLIPWAY_ENV=prod``. It binds to 127.0.0.1 unless told otherwise: the MLflow UI has no
authentication, so anything wider belongs behind a proxy that has.
"""

from __future__ import annotations

import argparse
import os
import sys

from slipway.registry.tracking import client_for, tracking_store
from slipway.settings import load_settings


def _lakehouse_root() -> str:
    """The lakehouse of the use case whose store the UI shows (``SLIPWAY_USECASE``, else the
    default): each use case's embedded store lives in its own lakehouse."""
    from slipway.usecases import get_usecase

    return load_settings(get_usecase().name).lakehouse_root


def server_command(host: str, port: int, workers: int = 1) -> list[str]:
    """The ``mlflow server`` command line for this configuration's store."""
    store = tracking_store(_lakehouse_root())
    client_for(store)  # creates an embedded store's folder and schema before the UI reads it
    return [
        os.path.join(os.path.dirname(sys.executable), "mlflow"),
        "server",
        "--backend-store-uri",
        store.tracking_uri,
        # new experiments created from the UI keep their artefacts beside the others
        "--default-artifact-root",
        store.artifact_root,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slipway.registry.ui", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    command = server_command(args.host, args.port)
    store = tracking_store(_lakehouse_root())
    print(
        f"[slipway] MLflow UI on http://{args.host}:{args.port} "
        f"(store {store.display_uri}, artefacts {store.artifact_root})",
        flush=True,
    )
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow 3's server also starts a job runner and eight huey consumers (GenAI evaluation
    # jobs); browsing runs and the registry needs none of them.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

"""``python -m slipway.serving``: start the online scorer, after checking where it may listen.

``make serve`` runs this rather than ``uvicorn`` directly so that a keyless service is never
bound to a network address: ``check_bind`` runs before uvicorn opens the socket, and exits 2
with the reason (no keys and a non-loopback host; production without keys; a weak key).
Host and port default to ``SLIPWAY_SERVING_HOST``/``SLIPWAY_SERVING_PORT`` (127.0.0.1:8000).
"""

from __future__ import annotations

import argparse
import sys

from slipway.serving.security import InsecureConfiguration, check_bind
from slipway.settings import load_serving_security, load_settings


def main(argv: list[str] | None = None) -> int:
    security = load_serving_security()
    parser = argparse.ArgumentParser(prog="python -m slipway.serving", description=__doc__)
    parser.add_argument("--host", default=security.host)
    parser.add_argument("--port", type=int, default=security.port)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    try:
        check_bind(args.host, security, is_prod=load_settings().is_prod)
    except InsecureConfiguration as exc:
        print(f"[slipway.serving] {exc}", file=sys.stderr)
        return 2
    import uvicorn

    keys = f"{len(security.api_keys)} API key(s)" if security.api_keys else "no API keys"
    print(f"[slipway.serving] http://{args.host}:{args.port} ({keys})", file=sys.stderr)
    uvicorn.run(
        "slipway.serving.app:app",
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Slipway core: the framework-free machinery behind the asset graph.

Nothing in this package imports Dagster. Assets (``assets/``) and wiring (``orchestration/``)
call into it; the online scorer and the CLI use it directly.
"""

__version__ = "0.1.0"

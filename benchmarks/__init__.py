"""Reproducible performance measurements. `python -m benchmarks NAME` (or `all`).

Each benchmark module exposes ``run(quick: bool = False) -> dict`` returning a JSON-able result
with at least ``title``, ``machine`` and ``rows`` (a list of dicts: one line of the results table
each) and optionally ``notes``. Results are saved to ``benchmarks/results/NAME.json`` and
``docs/benchmarks.md`` is regenerated from every saved result, so one benchmark can be re-run
without losing the others.
"""

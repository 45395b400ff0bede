"""``python -m slipway.simulator``: the ``simulate`` command on its own."""

from slipway.simulator.cli import main

raise SystemExit(main())

"""``python -m slipway.usecases.fraud.simulator``: the ``simulate`` command on its own."""

from slipway.usecases.fraud.simulator.cli import main

raise SystemExit(main())

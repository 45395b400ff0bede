"""The canary guard in the UI: an asset check on the use case's ``scoring/served``.

Each drain of the served log runs it: the canary's live figures on ``scoring.served`` (the
challenger's decisions against the champion's shadow scores of the same events) are judged
against the routing's limits (``slipway.serving.canary``); a breach sends traffic back to the
champion (the live scorers trip on their own within a pass, this catches what they missed), and
a tripped canary fails the check with the reason, until a new canary or ``slipway registry
shadow`` clears it.
"""

import dagster as dg

from assets.lib.resources import LakehouseResource
from assets.streaming.assets import served_key
from slipway.usecase import UseCase

CANARY_CHECK = "canary_guard"


def canary_checks(usecase: UseCase) -> list:
    """The ``canary_guard`` check of ``usecase``'s served decisions."""
    spec = usecase.model
    assert spec is not None

    @dg.asset_check(
        asset=served_key(usecase),
        name=CANARY_CHECK,
        description=(
            "Fails when the canary guard sent live traffic back to the champion (score shift, "
            "flag rate, error rate or latency of the challenger against the champion on the "
            "same events), with the reason and the figures."
        ),
    )
    def canary_guard(
        context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
    ) -> dg.AssetCheckResult:
        from slipway.serving.canary import guard_served

        report = guard_served(lakehouse.get(usecase.name), spec.name, context.run.run_id)
        return dg.AssetCheckResult(
            passed=report.passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=report.description(),
            metadata={
                "routing": report.mode,
                "canary_share": report.share,
                "champion_version": report.champion_version or -1,
                "challenger_version": report.challenger_version or -1,
                "tripped": report.tripped or "",
                "tripped_by_this_check": report.tripped_now,
                "routing_reason": report.reason,
                "breaches": dg.MetadataValue.json(report.breaches),
                "figures": dg.MetadataValue.json(
                    report.figures.as_dict() if report.figures else {}
                ),
            },
        )

    return [canary_guard]

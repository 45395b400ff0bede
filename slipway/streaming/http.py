"""The HTTP app's decisions go into the same served log as the stream consumer's.

A transaction POSTed to ``/score`` (or ``/score/batch``) is scored by the same ``OnlineScorer``
the consumer uses and recorded by the same ``decision_record``, with ``source = "http"`` and no
stream position: so ``scoring.served``, the consistency check and drift on served traffic see
every online decision, whichever door it came through. A log that cannot be written never fails
the request (an authorisation must be answered): the error is logged, and on Redis the local
spool takes the decision instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slipway.serving.request import PreparedTransaction
from slipway.streaming.served import EventMeta, ServedLog, decision_record
from slipway.usecase import UseCase

log = logging.getLogger(__name__)

HTTP = EventMeta(source="http")


class HttpDecisions:
    """Records what the HTTP app decided."""

    def __init__(self, usecase: UseCase, served: ServedLog) -> None:
        self.usecase = usecase
        self.served = served
        self.failures = 0

    def record(self, prepared: Sequence[PreparedTransaction], results: Sequence[Any]) -> None:
        try:
            self.served.append(
                [
                    decision_record(self.usecase, p.values, r, HTTP)
                    for p, r in zip(prepared, results, strict=True)
                ]
            )
        except Exception as exc:  # answer anyway; say loudly that the decision was not kept
            self.failures += len(results)
            log.error("served log: %d HTTP decision(s) not recorded: %s", len(results), exc)

    def close(self) -> None:
        self.served.close()


def open_http_decisions(usecase: UseCase) -> HttpDecisions:
    """The served log of ``usecase`` as the settings name it (``SLIPWAY_STREAM_URL``)."""
    from slipway.streaming.streams import open_streams

    streams = open_streams(usecase)
    streams.events.close()
    streams.dead_letters.close()
    return HttpDecisions(usecase, streams.served)

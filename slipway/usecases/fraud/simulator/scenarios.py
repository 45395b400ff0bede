"""Scenarios: the ways the upstream world changes or breaks, switched on from a given day.

A scenario never touches days before its start, so a run with a scenario shares every earlier
day byte for byte with a run without it. That is what lets a test (or a demo) say "the data was
fine until this day, then this happened" and check that the platform noticed.

Three families:

* :class:`CovariateDrift` -- the legit and fraud populations shift (bigger amounts, more ecom).
* :class:`NewFraudPattern` -- card testing in a shape the model has never seen.
* :class:`BrokenUpstream` -- the processor delivers damaged bytes for one day; the ground truth
  (``Simulator.transactions``) stays clean, only the landed files are altered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from slipway.usecases.fraud.simulator.clock import as_date as _as_date

BROKEN_KINDS: tuple[str, ...] = (
    "cents",
    "renamed_field",
    "nulls",
    "duplicates",
    "garbage",
    "truncated",
)


@dataclass(frozen=True)
class CovariateDrift:
    """From ``start`` on, amounts are multiplied by ``amount_factor`` and channels move to ecom.

    ``ecom_share_shift`` is the share of each non-ATM category's channel mix moved to ecom
    (``p' = (1 - s) * p + s * ecom``), so fraud features tied to channel lose some contrast too.
    """

    start: dt.date
    amount_factor: float = 1.8
    ecom_share_shift: float = 0.15

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _as_date(self.start))
        if self.amount_factor <= 0:
            raise ValueError("amount_factor must be positive")
        if not 0.0 <= self.ecom_share_shift <= 1.0:
            raise ValueError("ecom_share_shift must be within [0, 1]")


@dataclass(frozen=True)
class NewFraudPattern:
    """From ``start`` on, card testing: bursts of tiny daytime domestic payments.

    Unlike the default world's ``test_and_cashout`` runs (a few probes a minute apart, then a
    large purchase), these are 6-15 probes of 0.5-2 over ~45 minutes on the victim's usual
    device at three merchants that never saw fraud, and nothing is cashed out: a shape a model
    trained before ``start`` has never seen, which performance monitoring should notice once
    their chargebacks arrive. ``rate`` is the extra share of the day's transactions.
    """

    start: dt.date
    rate: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _as_date(self.start))
        if not 0.0 <= self.rate < 1.0:
            raise ValueError("rate must be within [0, 1)")


@dataclass(frozen=True)
class BrokenUpstream:
    """On ``day`` the delivered transaction files are damaged in one way (see ``BROKEN_KINDS``).

    ``fraction`` is the share of rows affected (nulls, duplicates, garbage) or of the last part's
    bytes cut away (truncated); cents and renamed_field affect every row.
    """

    day: dt.date
    kind: str
    fraction: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "day", _as_date(self.day))
        if self.kind not in BROKEN_KINDS:
            raise ValueError(f"unknown broken kind {self.kind!r}; expected one of {BROKEN_KINDS}")
        if not 0.0 < self.fraction < 1.0:
            raise ValueError("fraction must be within (0, 1)")


Scenario = CovariateDrift | NewFraudPattern | BrokenUpstream


def drift_on(scenarios: tuple[Scenario, ...], day: dt.date) -> tuple[float, float]:
    """The combined (amount factor, ecom shift) of every drift active on ``day``."""
    factor, keep = 1.0, 1.0
    for s in scenarios:
        if isinstance(s, CovariateDrift) and day >= s.start:
            factor *= s.amount_factor
            keep *= 1.0 - s.ecom_share_shift
    return factor, 1.0 - keep


def card_testing_rate(scenarios: tuple[Scenario, ...], day: dt.date) -> float:
    """The summed card-testing rate of every new-fraud scenario active on ``day``."""
    return sum(s.rate for s in scenarios if isinstance(s, NewFraudPattern) and day >= s.start)


def broken_on(scenarios: tuple[Scenario, ...], day: dt.date) -> tuple[BrokenUpstream, ...]:
    """The broken-upstream scenarios of ``day``, in the order they are applied."""
    found = [s for s in scenarios if isinstance(s, BrokenUpstream) and s.day == day]
    return tuple(sorted(found, key=lambda s: BROKEN_KINDS.index(s.kind)))


def parse_scenario(spec: str) -> Scenario:
    """Parse the CLI's compact syntax.

    ``drift:2026-09-10[:factor[:ecom_shift]]``, ``new-fraud:2026-09-10[:rate]``,
    ``broken:2026-09-05:cents[:fraction]``.
    """
    parts = spec.strip().split(":")
    name = parts[0].lower()
    try:
        if name == "drift" and 2 <= len(parts) <= 4:
            kwargs: dict[str, float] = {}
            if len(parts) >= 3:
                kwargs["amount_factor"] = float(parts[2])
            if len(parts) == 4:
                kwargs["ecom_share_shift"] = float(parts[3])
            return CovariateDrift(_as_date(parts[1]), **kwargs)
        if name in ("new-fraud", "new_fraud") and 2 <= len(parts) <= 3:
            if len(parts) == 3:
                return NewFraudPattern(_as_date(parts[1]), rate=float(parts[2]))
            return NewFraudPattern(_as_date(parts[1]))
        if name == "broken" and 3 <= len(parts) <= 4:
            if len(parts) == 4:
                return BrokenUpstream(_as_date(parts[1]), parts[2], fraction=float(parts[3]))
            return BrokenUpstream(_as_date(parts[1]), parts[2])
    except ValueError as exc:
        raise ValueError(f"bad scenario {spec!r}: {exc}") from exc
    raise ValueError(
        f"bad scenario {spec!r}; expected drift:DATE[:factor], new-fraud:DATE[:rate] "
        f"or broken:DATE:KIND[:fraction] with KIND in {', '.join(BROKEN_KINDS)}"
    )

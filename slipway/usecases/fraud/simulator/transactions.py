"""One day of card payments: legit spending plus fraud patterns, fully vectorised.

Every component draws from its own generator seeded by ``(seed, day ordinal, stream)``, so a day
never depends on which days were generated before it, and switching a scenario on (which adds
rows or reshapes probabilities) does not disturb the draws of the other components.

Fraud mixes with normal behaviour: fraudsters pay at the hours, merchants, channels and
amounts customers use too, and customers themselves go on quick shopping runs, buy something
big, pay a few cents for parking or use a new browser. No single column separates the two.
What gives most fraud away is a *sequence within the day*: a card tester's few small probes
within minutes, at one or two shops, then a large purchase; a spree of several payments in an
hour on a compromised card. Only features that know the customer's last minutes (a count in
the last hour, seconds since the last payment, merchants in the last 24 h) see it; the same
features frozen at the previous midnight do not. No column says "fraud" in the landed data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from slipway.usecases.fraud.simulator.clock import DAY_US, HOUR_US, iso_utc
from slipway.usecases.fraud.simulator.config import (
    AMOUNT_MULT,
    ATM,
    ATM_CATEGORY,
    ATO_CATEGORIES,
    ATO_CATEGORY_WEIGHTS,
    BURST,
    CARD_TESTING,
    CASHOUT_CATEGORIES,
    CASHOUT_CATEGORY_WEIGHTS,
    CHANNEL_PROBS,
    CHANNELS,
    COUNTRIES,
    COUNTRY_CURRENCY_IDX,
    CURRENCIES,
    ECOM,
    FRAUD_CATEGORIES,
    FRAUD_CATEGORY_WEIGHTS,
    FRAUD_TYPES,
    FX_ARRAY,
    MCCS,
    RISKY_IDX,
    TAKEOVER,
    TEST_CASHOUT,
    USD_IDX,
    SimConfig,
)
from slipway.usecases.fraud.simulator.labels import draw_labels, label_frame
from slipway.usecases.fraud.simulator.scenarios import card_testing_rate, drift_on
from slipway.usecases.fraud.simulator.world import (
    PREFERRED_CUM,
    World,
    draw_index,
    draw_rows,
    hex_ids,
    numbered_ids,
)

# Relative volume per weekday (Mon..Sun), mean 1.
WEEKDAY_FACTOR = np.array([0.95, 0.96, 0.98, 1.0, 1.08, 1.10, 0.93])
# Hour-of-day profiles of legit spending: most people pay in the day, a few are night owls.
DAY_HOURS = np.cumsum(
    [
        0.6,
        0.35,
        0.2,
        0.15,
        0.2,
        0.5,
        1.5,
        3,
        4.5,
        5,
        5.5,
        6,
        7,
        6.5,
        5.5,
        5.5,
        6,
        7,
        7.5,
        7,
        6,
        4.5,
        3,
        1.6,
    ]
)
OWL_HOURS = np.cumsum(
    [4, 3.5, 3, 2, 1, 0.5, 0.5, 1, 2, 3, 3.5, 4, 4.5, 4.5, 4.5, 4.5, 5, 5.5, 6, 6.5, 7, 7, 6.5, 5]
)
PREFERRED_SHARE = 0.6  # of at-home payments going to the customer's own merchants
ABROAD_SHARE = 0.85  # of a travelling customer's payments made in the travel country
LOCAL_CURRENCY_SHARE = 0.7  # of payments abroad made in the local currency
ONE_OFF_DEVICE = 0.04  # legit payments from a device never seen before or after
# Legit habits that look like fraud on one feature: a payment a few minutes after the previous
# one (a shopping run, a taxi then a restaurant), a few cents to a few euros (parking, transit,
# app stores), an occasional big-ticket purchase.
SESSION_SHARE = 0.22
SESSION_GAP_US = 6 * 60 * 1_000_000  # mean gap to the payment it follows
MICRO_SHARE = 0.06
MICRO_EUR = (0.5, 8.0)
MICRO_CATEGORIES = ("4121", "5999", "5812", "5411", "7995")
BIG_TICKET_SHARE = 0.025
BIG_TICKET_MULT = (3.0, 9.0)
# Shares of fraud rows per pattern (they sum to 1) and the patterns' shapes.
TEST_CASHOUT_SHARE = 0.45
SPREE_SHARE = 0.35  # the rest are account takeovers
PROBES = (2, 7)
PROBE_GAP_US = 70 * 1_000_000  # mean gap between probes
PROBE_EUR = (0.5, 6.0)
CASHOUTS = (1, 2)
CASHOUT_GAP_US = 5 * 60 * 1_000_000
CASHOUT_MULT = (2.0, 8.0)
SPREE_SIZE = (2, 6)
SPREE_GAP_US = 12 * 60 * 1_000_000
SPREE_MULT = (0.8, 3.5)
NIGHT_SHARE = 0.25  # of fraud runs started at night instead of at the victim's own hours
NEW_DEVICE_SHARE = 0.6  # of fraud runs from a device the victim never used (else theirs)
FRAUD_ECOM_SHARE = 0.6  # else the channel mix of the merchant's category (a cloned card)
FRAUD_FOREIGN_SHARE = 0.3
COMPROMISED_SHARE = 0.2
CARD_TEST_SIZE = (6, 15)

# Arrival at the processor: most authorisations arrive milliseconds after the terminal's
# timestamp (lognormal around ~40 ms); LATE_SHARE arrive late (offline terminals, store-and-
# forward, retries): log-uniform between LATE_RANGE_S seconds and a few hours, capped so that
# nothing is received after the end of its event day (a day's file holds that day's events).
ARRIVAL_MEDIAN_US = 40_000
LATE_SHARE = 0.015
LATE_RANGE_S = (2.0, 3 * 3600.0)

# Random streams: one per component so that they never shift each other; arrival delays draw
# from S_ARRIVAL + the component's position, so a scenario's extra rows leave others' delays.
S_LEGIT, S_BURST, S_TAKEOVER, S_CARD_TEST, S_TEST_CASHOUT = 1, 2, 3, 4, 5
S_ARRIVAL = 20


@dataclass
class Rows:
    """Column arrays of generated transactions before they get ids and strings."""

    cust: np.ndarray
    merch: np.ndarray
    country: np.ndarray
    currency: np.ndarray
    channel: np.ndarray
    amount: np.ndarray  # currency units, rounded
    offset_us: np.ndarray  # since midnight UTC of the day
    received_us: np.ndarray  # arrival at the processor, since midnight UTC (>= offset_us)
    device: np.ndarray
    fraud: np.ndarray  # -1 legit, else index into FRAUD_TYPES
    delay: np.ndarray  # chargeback delay in days (0 for legit)
    report_us: np.ndarray  # chargeback time of day (0 for legit)

    def take(self, idx: np.ndarray) -> Rows:
        return Rows(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        return Rows(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Rows)}
        )


@dataclass(frozen=True)
class DayData:
    """A generated day: the records with hidden ground truth, and the day's future chargebacks."""

    frame: pd.DataFrame
    labels: pd.DataFrame  # transaction_id, reported_at, fraud_type, report_ordinal


def _rng(cfg: SimConfig, day: dt.date, stream: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, day.toordinal(), stream])


def _to_currency(eur: np.ndarray, currency: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(eur / FX_ARRAY[currency], 2), 0.5)


def _channels(cat: np.ndarray, u: np.ndarray, ecom_shift: float) -> np.ndarray:
    probs = CHANNEL_PROBS[cat]
    if ecom_shift > 0:
        moved = (1.0 - ecom_shift) * probs
        moved[:, ECOM] += ecom_shift
        probs = np.where((cat == ATM_CATEGORY)[:, None], probs, moved)
    return draw_rows(np.cumsum(probs, axis=1), u)


def _hours(world: World, cust: np.ndarray, u: np.ndarray) -> np.ndarray:
    """An hour of day from each customer's own profile (day person or night owl)."""
    return np.where(world.night_owl[cust], draw_index(OWL_HOURS, u), draw_index(DAY_HOURS, u))


def _usual_device(world: World, cust: np.ndarray, ordinal: int) -> np.ndarray:
    return np.where(
        ordinal >= world.device_change_ordinal[cust], world.device_new[cust], world.device0[cust]
    )


def _legit(world: World, cfg: SimConfig, day: dt.date, expected: float) -> Rows:
    rng = _rng(cfg, day, S_LEGIT)
    ordinal = day.toordinal()
    factor, shift = drift_on(cfg.scenarios, day)
    weights = np.cumsum(world.activity * (world.signup_ordinal <= ordinal))
    n = int(rng.poisson(expected * (1.0 - cfg.fraud_rate))) if weights[-1] > 0 else 0
    # Who travels today, and where (one destination per customer and day).
    travelling = rng.random(world.n_customers) < world.travel_prob
    destination = draw_rows(world.travel_cum, rng.random(world.n_customers))

    cust = draw_index(weights, rng.random(n)) if n else np.zeros(0, dtype=np.int64)
    hour_u = rng.random(n)
    offset = ((_hours(world, cust, hour_u) + rng.random(n)) * HOUR_US).astype(np.int64)
    # Shopping runs: a share of payments follow another payment of the same customer by minutes.
    follows = rng.random(n) < SESSION_SHARE
    lead = rng.integers(0, max(n, 1), size=n)
    follows &= ~follows[lead]  # follow a payment that is itself a run's first
    gap = rng.exponential(SESSION_GAP_US, size=n).astype(np.int64) + 20_000_000
    cust = np.where(follows, cust[lead], cust)
    offset = np.where(follows, np.minimum(offset[lead] + gap, DAY_US - 1), offset)

    abroad = travelling[cust] & (rng.random(n) < ABROAD_SHARE)
    home = world.home[cust]
    country = np.where(abroad, destination[cust], home)
    use_pref = ~abroad & (rng.random(n) < PREFERRED_SHARE)
    slot = np.searchsorted(PREFERRED_CUM, rng.random(n) * PREFERRED_CUM[-1], side="right")
    slot = np.minimum(slot, PREFERRED_CUM.size - 1)
    merch = np.where(
        use_pref, world.preferred[cust, slot], world.by_country.sample(country, rng.random(n))
    )
    micro = rng.random(n) < MICRO_SHARE
    micro_cat = np.array([MCCS.index(m) for m in MICRO_CATEGORIES])
    picked = micro_cat[rng.integers(0, micro_cat.size, size=n)]
    merch = np.where(micro, world.by_category.sample(picked, rng.random(n)), merch)
    cat = world.merchant_category[merch]
    channel = _channels(cat, rng.random(n), shift)

    local = abroad & (rng.random(n) < LOCAL_CURRENCY_SHARE)
    currency = np.where(local, COUNTRY_CURRENCY_IDX[country], COUNTRY_CURRENCY_IDX[home])
    eur = world.spend_eur[cust] * AMOUNT_MULT[cat] * rng.lognormal(0.0, 0.55, size=n)
    big = rng.random(n) < BIG_TICKET_SHARE
    eur = np.where(big, eur * rng.uniform(*BIG_TICKET_MULT, size=n), eur)
    eur = np.where(micro, np.exp(rng.uniform(*np.log(MICRO_EUR), size=n)), eur) * factor
    amount = _to_currency(eur, currency)
    atm = channel == ATM
    amount[atm] = np.maximum(np.round(amount[atm] / 10.0) * 10.0, 10.0)

    primary = _usual_device(world, cust, ordinal)
    second = world.has_device1[cust] & (rng.random(n) < 0.25)
    device = np.where(second, world.device1[cust], primary)
    one_off = rng.random(n) < ONE_OFF_DEVICE
    device[one_off] = hex_ids(rng, int(one_off.sum()))

    zeros = np.zeros(n, dtype=np.int64)
    return Rows(
        cust, merch, country, currency, channel, amount, offset, offset, device, zeros - 1, zeros,
        zeros,
    )  # fmt: skip


def _victims(world: World, day: dt.date, rng: np.random.Generator, k: int) -> np.ndarray:
    active = np.flatnonzero(world.signup_ordinal <= day.toordinal())
    if active.size == 0:
        return np.zeros(0, dtype=np.int64)
    return active[rng.integers(0, active.size, size=k)]


def _foreign(
    world: World, rng: np.random.Generator, cust: np.ndarray, risky_share: float
) -> np.ndarray:
    """A country that is not the customer's home: risky with ``risky_share``, else a trip."""
    n = cust.size
    risky = RISKY_IDX[rng.integers(0, RISKY_IDX.size, size=n)]
    trip = draw_rows(world.travel_cum[cust], rng.random(n))
    return np.where(rng.random(n) < risky_share, risky, trip)


def _fraud_merchants(
    world: World, rng: np.random.Generator, n: int, share: float, cats, cat_w
) -> np.ndarray:
    cat = cats[draw_index(np.cumsum(cat_w), rng.random(n))]
    anywhere = world.by_category.sample(cat, rng.random(n))
    compromised = world.compromised[rng.integers(0, world.compromised.size, size=n)]
    return np.where(rng.random(n) < share, compromised, anywhere)


@dataclass
class _Runs:
    """Per-run draws shared by every payment of a fraud run (one victim, one fraudster)."""

    victim: np.ndarray
    start: np.ndarray  # offset of the run's first payment
    device: np.ndarray
    country: np.ndarray
    currency: np.ndarray
    ecom: np.ndarray  # bool: card not present (else a cloned card at a terminal)


def _runs(world: World, day: dt.date, rng: np.random.Generator, k: int) -> _Runs:
    """``k`` fraud runs: the victim, when, from which device, where, in which currency.

    Most start at an hour the victim pays at anyway (NIGHT_SHARE at night), from a new device
    (else the victim's own: malware, a stolen phone), at home or abroad, in the card's currency
    or USD, so each of these is only a hint.
    """
    victim = _victims(world, day, rng, k)
    k = victim.size
    night = rng.random(k) < NIGHT_SHARE
    hour = np.where(night, rng.integers(0, 5, size=k), _hours(world, victim, rng.random(k)))
    start = ((hour + rng.random(k)) * HOUR_US).astype(np.int64)
    new = rng.random(k) < NEW_DEVICE_SHARE
    device = np.where(new, hex_ids(rng, k), _usual_device(world, victim, day.toordinal()))
    foreign = rng.random(k) < FRAUD_FOREIGN_SHARE
    country = np.where(foreign, _foreign(world, rng, victim, 0.4), world.home[victim])
    card = COUNTRY_CURRENCY_IDX[world.home[victim]]
    currency = np.where(rng.random(k) < 0.25, USD_IDX, card)
    return _Runs(victim, start, device, country, currency, rng.random(k) < FRAUD_ECOM_SHARE)


def _run_channels(runs: _Runs, event: np.ndarray, cat: np.ndarray, u: np.ndarray) -> np.ndarray:
    physical = _channels(cat, u, 0.0)
    return np.where(runs.ecom[event] | (physical == ATM), ECOM, physical)


def _gaps(
    rng: np.random.Generator, event: np.ndarray, mean_us: float | np.ndarray, floor_us: int
) -> np.ndarray:
    """Offsets within each run (rows grouped by ``event``): the first payment at 0, then
    cumulative gaps of ``floor_us`` plus an exponential of mean ``mean_us`` (one per row)."""
    gap = (rng.exponential(1.0, size=event.size) * mean_us).astype(np.int64) + floor_us
    first = np.r_[True, event[1:] != event[:-1]] if event.size else np.zeros(0, dtype=bool)
    gap[first] = 0
    total = np.cumsum(gap)
    return total - np.maximum.accumulate(np.where(first, total, 0))


def _bursts(world: World, cfg: SimConfig, day: dt.date, expected: float) -> Rows:
    """A spree on a compromised card: 2-6 payments minutes apart, at amounts near the victim's
    own (0.8-3.5x), at shops across the categories people use (tilted to resellable goods)."""
    rng = _rng(cfg, day, S_BURST)
    factor, _ = drift_on(cfg.scenarios, day)
    mean_size = sum(SPREE_SIZE) / 2
    runs = _runs(
        world, day, rng, int(rng.poisson(SPREE_SHARE * cfg.fraud_rate * expected / mean_size))
    )
    k = runs.victim.size
    size = rng.integers(SPREE_SIZE[0], SPREE_SIZE[1] + 1, size=k)
    event = np.repeat(np.arange(k), size)
    n = event.size
    cust = runs.victim[event]
    gaps = _gaps(rng, event, SPREE_GAP_US, 30_000_000)
    offset = np.minimum(runs.start[event] + gaps, DAY_US - 1)
    merch = _fraud_merchants(
        world, rng, n, COMPROMISED_SHARE, FRAUD_CATEGORIES, FRAUD_CATEGORY_WEIGHTS
    )
    cat = world.merchant_category[merch]
    eur = world.spend_eur[cust] * AMOUNT_MULT[cat] * rng.uniform(*SPREE_MULT, size=n) * factor
    currency = runs.currency[event]
    channel = _run_channels(runs, event, cat, rng.random(n))
    delay, report = draw_labels(cfg, day, BURST, event, k)
    return Rows(
        cust, merch, runs.country[event], currency, channel, _to_currency(eur, currency), offset,
        offset, runs.device[event], np.full(n, BURST), delay, report,
    )  # fmt: skip


def _test_and_cashout(world: World, cfg: SimConfig, day: dt.date, expected: float) -> Rows:
    """Card testing, then cash-out: 2-7 small probes (0.5-6 EUR) about a minute apart at one or
    two weakly protected shops, then 1-2 purchases 2-8x the victim's usual within minutes."""
    rng = _rng(cfg, day, S_TEST_CASHOUT)
    factor, _ = drift_on(cfg.scenarios, day)
    mean_size = (sum(PROBES) + sum(CASHOUTS)) / 2
    runs = _runs(
        world,
        day,
        rng,
        int(rng.poisson(TEST_CASHOUT_SHARE * cfg.fraud_rate * expected / mean_size)),
    )
    k = runs.victim.size
    n_probe = rng.integers(PROBES[0], PROBES[1] + 1, size=k)
    n_cash = rng.integers(CASHOUTS[0], CASHOUTS[1] + 1, size=k)
    size = n_probe + n_cash
    event = np.repeat(np.arange(k), size)
    n = event.size
    cust = runs.victim[event]
    step = np.arange(n) - np.repeat(np.cumsum(size) - size, size)
    probe = step < n_probe[event]
    # Probes a minute apart; the cash-out waits a few minutes after the last probe.
    gaps = _gaps(rng, event, np.where(probe, PROBE_GAP_US, CASHOUT_GAP_US), 10_000_000)
    offset = np.minimum(runs.start[event] + gaps, DAY_US - 1)
    # One or two probe shops per run.
    shops = world.probe_merchants[rng.integers(0, world.probe_merchants.size, size=(k, 2))]
    second = rng.random(n) < np.where(rng.random(k) < 0.35, 0.5, 0.0)[event]
    probe_merch = np.where(second, shops[event, 1], shops[event, 0])
    cash_merch = _fraud_merchants(
        world, rng, n, COMPROMISED_SHARE, CASHOUT_CATEGORIES, CASHOUT_CATEGORY_WEIGHTS
    )
    merch = np.where(probe, probe_merch, cash_merch)
    cat = world.merchant_category[merch]
    small = np.exp(rng.uniform(*np.log(PROBE_EUR), size=n))
    large = world.spend_eur[cust] * AMOUNT_MULT[cat] * rng.uniform(*CASHOUT_MULT, size=n)
    eur = np.where(probe, small, large) * factor
    currency = runs.currency[event]
    channel = _run_channels(runs, event, cat, rng.random(n))
    delay, report = draw_labels(cfg, day, TEST_CASHOUT, event, k)
    return Rows(
        cust, merch, runs.country[event], currency, channel, _to_currency(eur, currency), offset,
        offset, runs.device[event], np.full(n, TEST_CASHOUT), delay, report,
    )  # fmt: skip


def _takeovers(world: World, cfg: SimConfig, day: dt.date, expected: float) -> Rows:
    """Account takeover: one payment 1.5-6x the usual spend in resellable goods."""
    rng = _rng(cfg, day, S_TAKEOVER)
    factor, _ = drift_on(cfg.scenarios, day)
    share = 1.0 - TEST_CASHOUT_SHARE - SPREE_SHARE
    runs = _runs(world, day, rng, int(rng.poisson(share * cfg.fraud_rate * expected)))
    n = runs.victim.size
    cust = runs.victim
    merch = _fraud_merchants(world, rng, n, COMPROMISED_SHARE, ATO_CATEGORIES, ATO_CATEGORY_WEIGHTS)
    cat = world.merchant_category[merch]
    eur = world.spend_eur[cust] * rng.uniform(1.5, 6.0, size=n) * factor
    channel = _run_channels(runs, np.arange(n), cat, rng.random(n))
    delay, report = draw_labels(cfg, day, TAKEOVER, np.arange(n), n)
    return Rows(
        cust, merch, runs.country, runs.currency, channel, _to_currency(eur, runs.currency),
        runs.start, runs.start, runs.device, np.full(n, TAKEOVER), delay, report,
    )  # fmt: skip


def _card_testing(world: World, cfg: SimConfig, day: dt.date, expected: float, rate: float) -> Rows:
    """Card testing: many tiny daytime domestic payments on the usual device at a few merchants."""
    rng = _rng(cfg, day, S_CARD_TEST)
    mean_size = sum(CARD_TEST_SIZE) / 2
    victims = _victims(world, day, rng, int(rng.poisson(rate * expected / mean_size)))
    k = victims.size
    size = rng.integers(CARD_TEST_SIZE[0], CARD_TEST_SIZE[1] + 1, size=k)
    event = np.repeat(np.arange(k), size)
    n = event.size
    cust = victims[event]
    start = rng.integers(9 * HOUR_US, 17 * HOUR_US, size=k)
    offset = start[event] + rng.integers(0, 45 * 60 * 1_000_000, size=n)
    merch = world.card_testing_merchants[rng.integers(0, world.card_testing_merchants.size, size=n)]
    home = world.home[cust]
    currency = COUNTRY_CURRENCY_IDX[home]
    amount = np.round(rng.uniform(0.5, 2.0, size=n), 2)
    ordinal = day.toordinal()
    device = np.where(
        ordinal >= world.device_change_ordinal[cust], world.device_new[cust], world.device0[cust]
    )
    delay, report = draw_labels(cfg, day, CARD_TESTING, event, k)
    return Rows(
        cust, merch, home, currency, np.full(n, ECOM), amount, offset, offset, device,
        np.full(n, CARD_TESTING), delay, report,
    )  # fmt: skip


def _arrive(cfg: SimConfig, day: dt.date, component: int, rows: Rows) -> Rows:
    """Set ``received_us``: milliseconds after the event, or late, never after midnight."""
    rng = _rng(cfg, day, S_ARRIVAL + component)
    n = rows.offset_us.size
    prompt = rng.lognormal(np.log(ARRIVAL_MEDIAN_US), 0.8, size=n)
    lo, hi = np.log(LATE_RANGE_S[0] * 1e6), np.log(LATE_RANGE_S[1] * 1e6)
    late = np.exp(rng.uniform(lo, hi, size=n))
    delay = np.where(rng.random(n) < LATE_SHARE, late, prompt).astype(np.int64)
    received = np.minimum(rows.offset_us + np.maximum(delay, 1), DAY_US - 1)
    rows.received_us = np.maximum(received, rows.offset_us)
    return rows


def generate_rows(world: World, cfg: SimConfig, day: dt.date) -> Rows:
    """All of the day's transactions in event-time order (``received_us`` set)."""
    expected = cfg.transactions_per_day * float(WEEKDAY_FACTOR[day.weekday()])
    parts = [
        _legit(world, cfg, day, expected),
        _bursts(world, cfg, day, expected),
        _takeovers(world, cfg, day, expected),
        _test_and_cashout(world, cfg, day, expected),
    ]
    rate = card_testing_rate(cfg.scenarios, day)
    if rate > 0:
        parts.append(_card_testing(world, cfg, day, expected, rate))
    rows = Rows.concat([_arrive(cfg, day, i, p) for i, p in enumerate(parts)])
    return rows.take(np.argsort(rows.offset_us, kind="stable"))


def generate_day(world: World, cfg: SimConfig, day: dt.date) -> DayData:
    """The day's records (contract fields + ``is_fraud``/``fraud_type``) and their chargebacks.

    Ids are numbered in event-time order; the records are then listed in arrival order
    (``received_at``, ties by id), the order the processor's live stream saw them and the order
    of the day's landed file.
    """
    rows = generate_rows(world, cfg, day)
    n = rows.cust.size
    tx_id = numbered_ids(f"tx_{day:%Y%m%d}_", n, 6)
    # offset order already sorts the ids, so a stable sort on arrival breaks ties by id
    arrival = np.argsort(rows.received_us, kind="stable")
    rows = rows.take(arrival)
    tx_id = tx_id[arrival]
    fraud_names = np.array([*FRAUD_TYPES, None], dtype=object)
    frame = pd.DataFrame(
        {
            "transaction_id": tx_id.astype(object),
            "event_time": iso_utc(day.toordinal(), rows.offset_us).astype(object),
            "received_at": iso_utc(day.toordinal(), rows.received_us).astype(object),
            "customer_id": world.customer_id[rows.cust].astype(object),
            "merchant_id": world.merchant_id[rows.merch].astype(object),
            "amount": rows.amount.astype(np.float64),
            "currency": np.array(CURRENCIES, dtype=object)[rows.currency],
            "channel": np.array(CHANNELS, dtype=object)[rows.channel],
            "country": np.array(COUNTRIES, dtype=object)[rows.country],
            "merchant_category": np.array(MCCS, dtype=object)[world.merchant_category[rows.merch]],
            "device_id": rows.device.astype(object),
            "is_fraud": rows.fraud >= 0,
            "fraud_type": fraud_names[rows.fraud],
        }
    )
    fraud = np.flatnonzero(rows.fraud >= 0)
    labels = label_frame(
        day, tx_id[fraud], fraud_names[rows.fraud[fraud]], rows.delay[fraud], rows.report_us[fraud]
    )
    return DayData(frame, labels)

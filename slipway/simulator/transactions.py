"""One day of card payments: legit spending plus fraud patterns, fully vectorised.

Every component draws from its own generator seeded by ``(seed, day ordinal, stream)``, so a day
never depends on which days were generated before it, and switching a scenario on (which adds
rows or reshapes probabilities) does not disturb the draws of the other components.

Fraud is only visible through behaviour relative to the customer's history: the hour, a device
the customer never used, a country they never pay in, an amount far above their usual, a
merchant that keeps turning up in fraud. No column says "fraud" in the landed data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from slipway.simulator.clock import DAY_US, HOUR_US, iso_utc
from slipway.simulator.config import (
    AMOUNT_MULT,
    ATM,
    ATM_CATEGORY,
    ATO_CATEGORIES,
    ATO_CATEGORY_WEIGHTS,
    BURST,
    CARD_TESTING,
    CHANNEL_PROBS,
    CHANNELS,
    COUNTRIES,
    COUNTRY_CURRENCY_IDX,
    CURRENCIES,
    ECOM,
    FRAUD_CATEGORIES,
    FRAUD_CATEGORY_MULT,
    FRAUD_CATEGORY_WEIGHTS,
    FRAUD_TYPES,
    FX_ARRAY,
    MCCS,
    RISKY_IDX,
    TAKEOVER,
    USD_IDX,
    SimConfig,
)
from slipway.simulator.labels import draw_labels, label_frame
from slipway.simulator.scenarios import card_testing_rate, drift_on
from slipway.simulator.world import (
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
ONE_OFF_DEVICE = 0.02  # legit payments from a device never seen before or after
BURST_SIZE = (3, 8)
BURST_SHARE = 0.75  # of default fraud transactions that come in compromised-card bursts
NIGHT_BURSTS = 0.55
COMPROMISED_SHARE = 0.75
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
S_LEGIT, S_BURST, S_TAKEOVER, S_CARD_TEST = 1, 2, 3, 4
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
    abroad = travelling[cust] & (rng.random(n) < ABROAD_SHARE)
    home = world.home[cust]
    country = np.where(abroad, destination[cust], home)
    use_pref = ~abroad & (rng.random(n) < PREFERRED_SHARE)
    slot = np.searchsorted(PREFERRED_CUM, rng.random(n) * PREFERRED_CUM[-1], side="right")
    slot = np.minimum(slot, PREFERRED_CUM.size - 1)
    merch = np.where(
        use_pref, world.preferred[cust, slot], world.by_country.sample(country, rng.random(n))
    )
    cat = world.merchant_category[merch]
    channel = _channels(cat, rng.random(n), shift)

    local = abroad & (rng.random(n) < LOCAL_CURRENCY_SHARE)
    currency = np.where(local, COUNTRY_CURRENCY_IDX[country], COUNTRY_CURRENCY_IDX[home])
    eur = world.spend_eur[cust] * AMOUNT_MULT[cat] * rng.lognormal(0.0, 0.55, size=n) * factor
    amount = _to_currency(eur, currency)
    atm = channel == ATM
    amount[atm] = np.maximum(np.round(amount[atm] / 10.0) * 10.0, 10.0)

    hour_u = rng.random(n)
    hour = np.where(
        world.night_owl[cust], draw_index(OWL_HOURS, hour_u), draw_index(DAY_HOURS, hour_u)
    )
    offset = ((hour + rng.random(n)) * HOUR_US).astype(np.int64)

    primary = np.where(
        ordinal >= world.device_change_ordinal[cust], world.device_new[cust], world.device0[cust]
    )
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


def _bursts(world: World, cfg: SimConfig, day: dt.date, expected: float) -> Rows:
    """Compromised card: 3-8 ecom payments within ~30 min, often at night, from a new device."""
    rng = _rng(cfg, day, S_BURST)
    factor, _ = drift_on(cfg.scenarios, day)
    mean_size = sum(BURST_SIZE) / 2
    victims = _victims(
        world, day, rng, int(rng.poisson(BURST_SHARE * cfg.fraud_rate * expected / mean_size))
    )
    k = victims.size
    size = rng.integers(BURST_SIZE[0], BURST_SIZE[1] + 1, size=k)
    event = np.repeat(np.arange(k), size)
    n = event.size
    cust = victims[event]
    night = rng.random(k) < NIGHT_BURSTS
    start = np.where(
        night,
        rng.integers(0, int(4.5 * HOUR_US), size=k),
        rng.integers(6 * HOUR_US, 23 * HOUR_US, size=k),
    )
    offset = start[event] + rng.integers(0, HOUR_US // 2, size=n)
    device = hex_ids(rng, k)[event]
    where = rng.random(k)
    country_event = np.where(
        where < 0.5, _foreign(world, rng, victims, 0.3 / 0.5), world.home[victims]
    )
    country = country_event[event]
    merch = _fraud_merchants(
        world, rng, n, COMPROMISED_SHARE, FRAUD_CATEGORIES, FRAUD_CATEGORY_WEIGHTS
    )
    cat = world.merchant_category[merch]
    mult = np.ones(n)
    for cat_idx, m in zip(FRAUD_CATEGORIES, FRAUD_CATEGORY_MULT, strict=True):
        mult[cat == cat_idx] = m
    eur = rng.lognormal(np.log(110.0), 0.75, size=n) * mult * factor
    card_currency = COUNTRY_CURRENCY_IDX[world.home[victims]]
    currency = np.where(rng.random(k) < 0.35, USD_IDX, card_currency)[event]
    delay, report = draw_labels(cfg, day, BURST, event, k)
    return Rows(
        cust, merch, country, currency, np.full(n, ECOM), _to_currency(eur, currency), offset,
        offset, device, np.full(n, BURST), delay, report,
    )  # fmt: skip


def _takeovers(world: World, cfg: SimConfig, day: dt.date, expected: float) -> Rows:
    """Account takeover: one ecom payment 3-9x the usual spend, new device, often abroad."""
    rng = _rng(cfg, day, S_TAKEOVER)
    factor, _ = drift_on(cfg.scenarios, day)
    cust = _victims(
        world, day, rng, int(rng.poisson((1.0 - BURST_SHARE) * cfg.fraud_rate * expected))
    )
    n = cust.size
    country = np.where(rng.random(n) < 0.5, _foreign(world, rng, cust, 0.4), world.home[cust])
    merch = _fraud_merchants(world, rng, n, 0.3, ATO_CATEGORIES, ATO_CATEGORY_WEIGHTS)
    eur = world.spend_eur[cust] * rng.uniform(3.0, 9.0, size=n) * factor
    currency = COUNTRY_CURRENCY_IDX[world.home[cust]]
    offset = rng.integers(0, DAY_US, size=n)
    device = hex_ids(rng, n)
    delay, report = draw_labels(cfg, day, TAKEOVER, np.arange(n), n)
    return Rows(
        cust, merch, country, currency, np.full(n, ECOM), _to_currency(eur, currency), offset,
        offset, device, np.full(n, TAKEOVER), delay, report,
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

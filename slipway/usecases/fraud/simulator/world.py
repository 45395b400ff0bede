"""The simulated world: customers and merchants, with the hidden habits that drive their payments.

Only the public attributes (ids, signup date, home country, segment, birth year; merchant name,
category, country) are ever written to the landing zone. The hidden ones (spending level,
activity, usual devices, preferred merchants, compromised merchants) are what make fraud
learnable from behaviour: a model has to infer them from history, as it would in production.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from slipway.usecases.fraud.simulator.config import (
    ATM_CATEGORY,
    CASHOUT_CATEGORIES,
    CATEGORIES,
    CATEGORY_WEIGHTS,
    COUNTRIES,
    HOME_COUNTRY_WEIGHTS,
    MCCS,
    MERCHANT_COUNTRY_WEIGHTS,
    N_HOME,
    PROBE_CATEGORIES,
    SEGMENT_SPEND,
    SEGMENT_TRAVEL,
    SEGMENT_WEIGHTS,
    SEGMENTS,
    TRAVEL_WEIGHTS,
    SimConfig,
)

PREFERRED_SLOTS = 6
PREFERRED_CUM = np.cumsum([0.35, 0.25, 0.15, 0.10, 0.10, 0.05])
NEVER = 10**9  # an ordinal later than any simulated day
# Categories of the first merchants (one per country): each home country gets a non-ATM shop.
_FIRST_CATEGORIES = np.array([0, 1, 2, 3, 4, 6, 7, 8, 9, 0, ATM_CATEGORY, 1, 2, 3])
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# fmt: off
_NAME_A = np.array([
    "Blue", "North", "Golden", "Urban", "Green", "Silver", "Royal", "Happy", "Swift", "Bright",
    "Old", "New", "Prime", "Star", "River", "Oak", "Maple", "Stone", "Sunny", "Harbor", "Alpine",
    "Coastal", "Metro", "Little", "Grand", "Lucky", "Cedar", "Iron", "Velvet", "Amber",
])
_NAME_B = np.array([
    "Harbor", "Valley", "Corner", "Market", "Point", "Lane", "Square", "Bridge", "Garden", "Hill",
    "Gate", "Field", "Works", "House", "Street", "Park", "Bay", "Town", "Yard", "Mill",
])
# fmt: on


def draw_index(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: ``cum`` ascending and ending at the total, ``u`` uniform in [0, 1)."""
    return np.minimum(np.searchsorted(cum, u * cum[-1], side="right"), len(cum) - 1)


def draw_rows(cum_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw with one CDF per row (``cum_rows`` shape (n, k), rows end at 1)."""
    return np.minimum((cum_rows <= u[:, None]).sum(axis=1), cum_rows.shape[1] - 1)


def hex_ids(rng: np.random.Generator, n: int, prefix: str = "D", digits: int = 12) -> np.ndarray:
    """``n`` random ids like ``D3fa9c01b22e4`` built without a Python loop."""
    chars = _HEX[rng.integers(0, 16, size=(n, digits))]
    head = np.full((n, len(prefix)), np.frombuffer(prefix.encode(), dtype=np.uint8))
    raw = np.ascontiguousarray(np.concatenate([head, chars], axis=1))
    return raw.view(f"S{len(prefix) + digits}").ravel().astype(f"U{len(prefix) + digits}")


def numbered_ids(prefix: str, n: int, width: int, start: int = 1) -> np.ndarray:
    """``prefix`` + zero-padded running numbers, vectorised."""
    if n == 0:
        return np.zeros(0, dtype=f"U{len(prefix) + width}")
    numbers = np.arange(start, start + n).astype("U")
    return np.strings.add(prefix, np.strings.zfill(numbers, width))


class GroupSampler:
    """Weighted draws of an item *within a given group* (e.g. a merchant in a given country).

    All groups share one sorted key array (group index + cumulative share inside the group), so
    a draw for a million rows with a million different groups is a single ``searchsorted``.
    """

    def __init__(self, groups: np.ndarray, weights: np.ndarray, n_groups: int) -> None:
        counts = np.bincount(groups, minlength=n_groups)
        if (counts == 0).any():
            raise ValueError(f"groups without items: {np.flatnonzero(counts == 0).tolist()}")
        order = np.lexsort((np.arange(len(groups)), groups))
        g = groups[order]
        w = weights[order].astype(float)
        cum = np.cumsum(w)
        ends = np.cumsum(np.bincount(g, weights=w, minlength=n_groups))
        starts = ends - np.bincount(g, weights=w, minlength=n_groups)
        within = (cum - starts[g]) / (ends[g] - starts[g])
        last = np.cumsum(counts) - 1
        within[last] = 1.0
        self.order = order
        self.keys = g + within

    def sample(self, group: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One item per row: ``group`` the wanted group, ``u`` uniform in [0, 1)."""
        idx = np.searchsorted(self.keys, group + u * (1.0 - 1e-9), side="right")
        return self.order[idx]


@dataclass(frozen=True)
class World:
    """Customers and merchants as column arrays (index = position; ids are derived from it)."""

    # customers
    customer_id: np.ndarray
    home: np.ndarray  # country index
    segment: np.ndarray
    birth_year: np.ndarray
    signup_ordinal: np.ndarray
    spend_eur: np.ndarray  # median legit amount at a multiplier-1 category
    activity: np.ndarray  # relative transaction rate
    night_owl: np.ndarray
    travel_prob: np.ndarray  # chance to be abroad on a given day
    travel_cum: np.ndarray  # (n, countries) destination CDF, home excluded
    device0: np.ndarray
    device1: np.ndarray
    has_device1: np.ndarray
    device_new: np.ndarray  # replaces device0 from device_change_ordinal on
    device_change_ordinal: np.ndarray
    preferred: np.ndarray  # (n, PREFERRED_SLOTS) merchant index
    # merchants
    merchant_id: np.ndarray
    merchant_name: np.ndarray
    merchant_category: np.ndarray  # category index
    merchant_country: np.ndarray  # country index
    popularity: np.ndarray
    compromised: np.ndarray  # merchant indexes fraudsters concentrate on
    probe_merchants: np.ndarray  # weakly protected shops card testers probe at
    card_testing_merchants: np.ndarray  # the NewFraudPattern scenario's merchants
    by_country: GroupSampler
    by_category: GroupSampler

    @property
    def n_customers(self) -> int:
        return len(self.customer_id)

    def customers_frame(self, as_of: dt.date | None = None) -> pd.DataFrame:
        """The public customer records, those signed up by ``as_of`` (all when None)."""
        keep = np.ones(self.n_customers, dtype=bool)
        if as_of is not None:
            keep = self.signup_ordinal <= as_of.toordinal()
        epoch = dt.date(1970, 1, 1).toordinal()
        signup = (self.signup_ordinal[keep] - epoch).astype("datetime64[D]")
        return pd.DataFrame(
            {
                "customer_id": self.customer_id[keep].astype(object),
                "signup_date": np.datetime_as_string(signup, unit="D").astype(object),
                "home_country": np.array(COUNTRIES)[self.home[keep]].astype(object),
                "segment": np.array(SEGMENTS)[self.segment[keep]].astype(object),
                "birth_year": self.birth_year[keep].astype(np.int64),
            }
        )

    def merchants_frame(self) -> pd.DataFrame:
        """The public merchant records."""
        return pd.DataFrame(
            {
                "merchant_id": self.merchant_id.astype(object),
                "merchant_name": self.merchant_name.astype(object),
                "merchant_category": np.array(MCCS)[self.merchant_category].astype(object),
                "country": np.array(COUNTRIES)[self.merchant_country].astype(object),
            }
        )


def _merchants(cfg: SimConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = cfg.merchants
    n_countries = len(COUNTRIES)
    # The first merchants cover every country and category so no draw can find an empty group.
    country = rng.choice(
        n_countries, size=n, p=MERCHANT_COUNTRY_WEIGHTS / MERCHANT_COUNTRY_WEIGHTS.sum()
    )
    category = rng.choice(len(MCCS), size=n, p=CATEGORY_WEIGHTS / CATEGORY_WEIGHTS.sum())
    # Home countries get a guaranteed non-ATM merchant; the ATM goes to a risky country.
    country[:n_countries] = np.arange(n_countries)
    category[:n_countries] = _FIRST_CATEGORIES
    popularity = rng.lognormal(0.0, 1.0, size=n)
    name_a = _NAME_A[rng.integers(0, len(_NAME_A), size=n)]
    name_b = _NAME_B[rng.integers(0, len(_NAME_B), size=n)]
    labels = np.array([c.label for c in CATEGORIES])[category]
    name = np.strings.add(
        np.strings.add(np.strings.add(name_a, " "), np.strings.add(name_b, " ")), labels
    )
    risky_cat = np.isin(category, CASHOUT_CATEGORIES)
    candidates = np.flatnonzero(risky_cat)
    n_comp = max(2, round(0.2 * len(candidates)))
    compromised = np.sort(rng.choice(candidates, size=min(n_comp, len(candidates)), replace=False))
    tester_pool = np.flatnonzero(~risky_cat & (category != ATM_CATEGORY) & (country < N_HOME))
    card_testing = np.sort(rng.choice(tester_pool, size=min(3, len(tester_pool)), replace=False))
    # Probes land at ordinary shops with legit traffic of their own (a tenth of the cheap-goods
    # merchants), so a probe's merchant is a hint that only history can learn.
    probe_pool = np.setdiff1d(np.flatnonzero(np.isin(category, PROBE_CATEGORIES)), card_testing)
    n_probe = max(2, round(0.1 * len(probe_pool)))
    probe = np.sort(rng.choice(probe_pool, size=min(n_probe, len(probe_pool)), replace=False))
    return {
        "merchant_id": numbered_ids("M", n, 5),
        "merchant_name": name,
        "merchant_category": category,
        "merchant_country": country,
        "popularity": popularity,
        "compromised": compromised,
        "probe_merchants": probe,
        "card_testing_merchants": card_testing,
    }


def _signups(cfg: SimConfig, rng: np.random.Generator) -> np.ndarray:
    """Signup ordinals: 95% over the six years before the start, 5% on later snapshot days."""
    n = cfg.customers
    start = cfg.start_date.toordinal()
    before = start - rng.integers(1, 6 * 365, size=n)
    step = cfg.reference_every_days
    later = start + step * rng.integers(1, max(2, 84 // step + 1), size=n)
    return np.where(rng.random(n) < 0.05, later, before)


def build_world(cfg: SimConfig) -> World:
    """Draw the world from ``cfg.seed``: a pure function of the world-shaping config fields."""
    rng_m = np.random.default_rng([cfg.seed, 0, 1])
    rng_c = np.random.default_rng([cfg.seed, 0, 2])
    m = _merchants(cfg, rng_m)
    by_country = GroupSampler(m["merchant_country"], m["popularity"], len(COUNTRIES))
    by_category = GroupSampler(m["merchant_category"], m["popularity"], len(MCCS))

    n = cfg.customers
    home_w = np.array(list(HOME_COUNTRY_WEIGHTS.values()))
    home = rng_c.choice(N_HOME, size=n, p=home_w / home_w.sum())
    segment = rng_c.choice(len(SEGMENTS), size=n, p=SEGMENT_WEIGHTS)
    student = segment == SEGMENTS.index("student")
    birth_year = np.where(
        student, rng_c.integers(1999, 2008, size=n), rng_c.integers(1948, 2004, size=n)
    )
    signup = _signups(cfg, rng_c)
    spend = rng_c.lognormal(np.log(28.0), 0.55, size=n) * SEGMENT_SPEND[segment]
    activity = rng_c.gamma(0.9, 1.0, size=n) + 0.02
    night_owl = rng_c.random(n) < 0.06
    travel_prob = np.minimum(rng_c.beta(1.3, 25.0, size=n) * SEGMENT_TRAVEL[segment], 0.5)
    dest = np.tile(TRAVEL_WEIGHTS, (n, 1))
    dest[np.arange(n), home] = 0.0
    travel_cum = np.cumsum(dest, axis=1)
    travel_cum /= travel_cum[:, -1:]

    device0 = hex_ids(rng_c, n)
    device1 = hex_ids(rng_c, n)
    device_new = hex_ids(rng_c, n)
    has_device1 = rng_c.random(n) < 0.4
    # One customer in ten replaces their main device during the first ~12 weeks: a legit
    # "new device" that then becomes usual, so device novelty is a signal, not a giveaway.
    changes = rng_c.random(n) < 0.10
    change_day = cfg.start_date.toordinal() + rng_c.integers(0, 84, size=n)
    device_change = np.where(changes, change_day, NEVER)

    pref_u = rng_c.random((n, PREFERRED_SLOTS))
    preferred = by_country.sample(np.repeat(home[:, None], PREFERRED_SLOTS, axis=1), pref_u)

    return World(
        customer_id=numbered_ids("C", n, 6),
        home=home,
        segment=segment,
        birth_year=birth_year,
        signup_ordinal=signup,
        spend_eur=spend,
        activity=activity,
        night_owl=night_owl,
        travel_prob=travel_prob,
        travel_cum=travel_cum,
        device0=device0,
        device1=device1,
        has_device1=has_device1,
        device_new=device_new,
        device_change_ordinal=device_change,
        preferred=preferred,
        by_country=by_country,
        by_category=by_category,
        **m,
    )

"""The simulator's knobs and the fixed facts of its world (currencies, countries, categories).

Everything here is data, not behaviour, so the platform can import the same constants
(``FX_TO_EUR``, the landed field names) the simulator generates with.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

# The business's own tables: the simulator generates what the use case declares, so converted
# amounts are exact and every channel, MCC and segment is one the model knows.
from slipway.usecases.fraud import landing as _landing
from slipway.usecases.fraud.landing import CHANNELS, FX_TO_EUR, SEGMENTS
from slipway.usecases.fraud.simulator.scenarios import Scenario

__all__ = ["CHANNELS", "FX_TO_EUR", "SEGMENTS", "SimConfig"]

CURRENCIES: tuple[str, ...] = tuple(FX_TO_EUR)
FX_ARRAY = np.array([FX_TO_EUR[c] for c in CURRENCIES])

ECOM, POS, CONTACTLESS, ATM = range(4)

# Countries customers live in (with their share of customers), then risky ones that appear
# mostly in fraud. Index order is the order here.
HOME_COUNTRY_WEIGHTS: dict[str, float] = {
    "DE": 0.24,
    "FR": 0.16,
    "NL": 0.08,
    "ES": 0.10,
    "IT": 0.10,
    "PL": 0.07,
    "SE": 0.05,
    "GB": 0.12,
    "CH": 0.04,
    "US": 0.04,
}
RISKY_COUNTRIES: tuple[str, ...] = ("NG", "RU", "BR", "CN")
COUNTRIES: tuple[str, ...] = (*HOME_COUNTRY_WEIGHTS, *RISKY_COUNTRIES)
N_HOME = len(HOME_COUNTRY_WEIGHTS)
RISKY_IDX = np.arange(N_HOME, len(COUNTRIES))
COUNTRY_CURRENCY: dict[str, str] = {
    "DE": "EUR",
    "FR": "EUR",
    "NL": "EUR",
    "ES": "EUR",
    "IT": "EUR",
    "PL": "PLN",
    "SE": "SEK",
    "GB": "GBP",
    "CH": "CHF",
    "US": "USD",
    "NG": "USD",
    "RU": "USD",
    "BR": "USD",
    "CN": "USD",
}
COUNTRY_CURRENCY_IDX = np.array([CURRENCIES.index(COUNTRY_CURRENCY[c]) for c in COUNTRIES])
USD_IDX = CURRENCIES.index("USD")
# Where legit customers travel to (risky countries are rare but possible, so "foreign risky
# country" is a strong fraud signal, not a perfect one).
TRAVEL_WEIGHTS = np.array([*HOME_COUNTRY_WEIGHTS.values(), 0.01, 0.01, 0.02, 0.02])
# Where merchants are (US a bit larger: online shops; one or two merchants in risky countries).
MERCHANT_COUNTRY_WEIGHTS = np.array(
    [0.21, 0.14, 0.08, 0.10, 0.10, 0.07, 0.05, 0.11, 0.04, 0.07, 0.005, 0.005, 0.005, 0.005]
)


@dataclass(frozen=True)
class Category:
    """A merchant category: its MCC, how common it is, how pricey, and its channel mix."""

    mcc: str
    label: str
    weight: float
    amount_mult: float
    channels: tuple[float, float, float, float]  # ecom, pos, contactless, atm


CATEGORIES: tuple[Category, ...] = (
    Category("5411", "Grocers", 0.20, 1.0, (0.05, 0.45, 0.50, 0.0)),
    Category("5812", "Bistro", 0.18, 1.1, (0.10, 0.40, 0.50, 0.0)),
    Category("5732", "Electronics", 0.07, 5.0, (0.55, 0.30, 0.15, 0.0)),
    Category("4722", "Travel", 0.05, 8.0, (0.85, 0.10, 0.05, 0.0)),
    Category("7995", "Casino", 0.03, 1.5, (0.90, 0.07, 0.03, 0.0)),
    Category("6011", "Bank ATM", 0.05, 3.0, (0.0, 0.0, 0.0, 1.0)),
    Category("5999", "Store", 0.12, 0.8, (0.40, 0.30, 0.30, 0.0)),
    Category("5691", "Fashion", 0.10, 2.0, (0.35, 0.35, 0.30, 0.0)),
    Category("4121", "Cabs", 0.05, 0.7, (0.40, 0.10, 0.50, 0.0)),
    Category("5541", "Fuel", 0.12, 1.8, (0.0, 0.55, 0.45, 0.0)),
)
MCCS: tuple[str, ...] = tuple(c.mcc for c in CATEGORIES)
CATEGORY_WEIGHTS = np.array([c.weight for c in CATEGORIES])
AMOUNT_MULT = np.array([c.amount_mult for c in CATEGORIES])
CHANNEL_PROBS = np.array([c.channels for c in CATEGORIES])
ATM_CATEGORY = MCCS.index("6011")
# Categories a compromised card is spent at: the legit mix tilted towards resellable goods and
# gambling (x3), so a fraud's category is a weak hint, not a giveaway.
FRAUD_TILT = np.array([1.0, 1.0, 3.0, 2.0, 3.0, 0.0, 1.5, 2.0, 1.0, 0.7])
FRAUD_CATEGORIES = np.flatnonzero(FRAUD_TILT > 0)
FRAUD_CATEGORY_WEIGHTS = (CATEGORY_WEIGHTS * FRAUD_TILT)[FRAUD_CATEGORIES]
# Where a card tester cashes out once a probe went through (resellable goods, travel, gambling).
CASHOUT_CATEGORIES = np.array([MCCS.index(m) for m in ("5732", "4722", "5691", "7995")])
CASHOUT_CATEGORY_WEIGHTS = np.array([0.40, 0.20, 0.25, 0.15])
# Categories an account takeover buys in (resellable goods).
ATO_CATEGORIES = np.array([MCCS.index(m) for m in ("5732", "4722", "5691", "5999")])
ATO_CATEGORY_WEIGHTS = np.array([0.40, 0.20, 0.20, 0.20])
# Categories whose merchants a card tester probes with small amounts (cheap online goods).
PROBE_CATEGORIES = np.array([MCCS.index(m) for m in ("5999", "5812", "4121", "7995")])

SEGMENT_WEIGHTS = np.array([0.60, 0.12, 0.10, 0.18])
SEGMENT_SPEND = np.array([1.0, 2.2, 1.7, 0.55])
SEGMENT_TRAVEL = np.array([1.0, 2.0, 2.5, 0.8])

# card_not_present: a spending spree on a compromised card; account_takeover: one large payment;
# card_testing: the NewFraudPattern scenario's probes; test_and_cashout: the default world's
# card-testing sequence (small probes within minutes, then large purchases).
FRAUD_TYPES: tuple[str, ...] = (
    "card_not_present",
    "account_takeover",
    "card_testing",
    "test_and_cashout",
)
BURST, TAKEOVER, CARD_TESTING, TEST_CASHOUT = range(4)

# The landed records, in the order their keys appear on each line: the upstream contract as the
# use case declares it (one declaration; the simulator only writes it).
TRANSACTION_FIELDS: tuple[str, ...] = tuple(f.name for f in _landing.TRANSACTION_FIELDS)
CHARGEBACK_FIELDS: tuple[str, ...] = tuple(f.name for f in _landing.CHARGEBACK_FIELDS)
CUSTOMER_FIELDS: tuple[str, ...] = tuple(f.name for f in _landing.CUSTOMER_FIELDS)
MERCHANT_FIELDS: tuple[str, ...] = tuple(f.name for f in _landing.MERCHANT_FIELDS)
# Ground truth columns that ``Simulator.transactions`` adds and that never reach the landing zone.
HIDDEN_FIELDS: tuple[str, ...] = ("is_fraud", "fraud_type")


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Frozen and hashable: the config plus a day fully determines the data.

    The world (customers, merchants) depends on ``seed``, ``customers``, ``merchants``,
    ``start_date`` and ``reference_every_days`` only, so lengthening ``days`` or changing the
    daily volume leaves the world, and with an unchanged volume every earlier day, as it was.

    Customers who sign up during the period do so on reference-snapshot days
    (``start_date + k * reference_every_days``), so every transaction's customer is in the
    latest snapshot delivered by then.
    """

    seed: int = 7
    start_date: dt.date = dt.date(2026, 8, 1)
    days: int = 40
    customers: int = 2000
    merchants: int = 200
    transactions_per_day: int = 3000
    fraud_rate: float = 0.015
    label_delay_days: tuple[int, int] = (1, 7)
    parts_per_day: int = 1
    compress: bool = False
    scenarios: tuple[Scenario, ...] = field(default_factory=tuple)
    reference_every_days: int = 7

    def __post_init__(self) -> None:
        if isinstance(self.start_date, str):
            object.__setattr__(self, "start_date", dt.date.fromisoformat(self.start_date))
        object.__setattr__(self, "scenarios", tuple(self.scenarios))
        object.__setattr__(self, "label_delay_days", tuple(int(d) for d in self.label_delay_days))
        lo, hi = self.label_delay_days
        if not 1 <= lo <= hi:
            raise ValueError("label_delay_days must be (min, max) with 1 <= min <= max")
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        if self.merchants < len(COUNTRIES):
            raise ValueError(f"merchants must be >= {len(COUNTRIES)} (one per country at least)")
        if self.transactions_per_day < 0:
            raise ValueError("transactions_per_day must be >= 0")
        if not 0.0 <= self.fraud_rate < 0.5:
            raise ValueError("fraud_rate must be within [0, 0.5)")
        if self.parts_per_day < 1:
            raise ValueError("parts_per_day must be >= 1")
        if self.reference_every_days < 1:
            raise ValueError("reference_every_days must be >= 1")

    @property
    def end_date(self) -> dt.date:
        """The last simulated day (inclusive)."""
        return self.start_date + dt.timedelta(days=self.days - 1)

    @property
    def maturity_days(self) -> int:
        """Days after which a transaction without a chargeback is known legit."""
        return self.label_delay_days[1]

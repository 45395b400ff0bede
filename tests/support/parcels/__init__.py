"""A toy third use case, "parcels": depot scan events and late deliveries, names unlike fraud's
and flights'.

It exists to prove the platform is generic: it is loaded by module path
(``SLIPWAY_USECASES=fraud,tests.support.parcels:PARCELS``), never registered, and declares what
the other two do with other names and shapes: a stream of parcel scans keyed by ``scan_id``, a
depot reference snapshot (read whole by its feature table), a *rule* label (a parcel more than an
hour late is positive; a lost one is excluded), one windowed feature table per depot and day,
its own Feast repo (``tests/support/parcels/feature_repo``) and no dbt models (the examples are
silver scans). Its data is a few hundred generated rows a day (:mod:`tests.support.parcels.sample`).
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.pandas import Check, Column

from slipway.usecase import (
    Examples,
    FeastSpec,
    FeatureTable,
    Field,
    IngestPolicy,
    LabelRule,
    LabelSpec,
    ModelSpec,
    PromotionPolicy,
    Reference,
    SampleData,
    Stream,
    UseCase,
)

UTC_TS = pd.DatetimeTZDtype("us", "UTC")
SERVICES = ("standard", "express")
REGIONS = ("north", "south")
LATE_MINUTES = 60.0


def scans_contract() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "scan_id": Column(str, Check.str_matches(r"^S\d+$"), nullable=False, unique=True),
            "parcel_id": Column(str, nullable=False),
            "depot_id": Column(str, Check.str_matches(r"^D\d+$"), nullable=False),
            "event_time": Column(UTC_TS, nullable=False),
            "weight_kg": Column(float, Check.in_range(0.01, 70.0), nullable=False),
            "distance_km": Column(float, Check.ge(0), nullable=False),
            "service": Column(str, Check.isin(list(SERVICES)), nullable=False),
            "delay_minutes": Column(float, nullable=True),
            "status": Column(str, Check.isin(["delivered", "lost"]), nullable=False),
        },
        strict=False,
        name="silver.scans",
    )


def depots_contract() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "depot_id": Column(str, Check.str_matches(r"^D\d+$"), nullable=False, unique=True),
            "region": Column(str, Check.isin(list(REGIONS)), nullable=False),
        },
        strict=False,
        name="silver.depots",
    )


def depot_load_contract() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "depot_id": Column(str, nullable=False),
            "feature_ts": Column(UTC_TS, nullable=False),
            "region": Column(str, Check.isin(list(REGIONS)), nullable=False),
            "depot_scans_3d": Column("Int64", Check.ge(0), nullable=False),
            "depot_avg_weight_3d": Column(float, Check.gt(0), nullable=True),
        },
        unique=["depot_id", "feature_ts"],
        strict=False,
        name="features.depot_load",
    )


def depot_load(inputs, start, end):
    """Per depot and day, stamped at midnight: scans and mean weight over the 3 days before."""
    from pyspark.sql import functions as F

    scans = inputs["silver.scans"].select(
        F.col("depot_id").alias("s_depot"), F.col("date").alias("s_date"), "weight_kg"
    )
    depots = inputs["silver.depots"].select("depot_id", "region")
    spark = scans.sparkSession
    days = spark.range((end - start).days + 1).select(
        F.date_add(F.lit(start.isoformat()).cast("date"), F.col("id").cast("int")).alias("date")
    )
    window = (
        (F.col("s_depot") == F.col("depot_id"))
        & (F.col("s_date") < F.col("date"))
        & (F.col("s_date") >= F.date_sub(F.col("date"), 3))
    )
    return (
        days.crossJoin(depots)
        .join(scans, window, "left")
        .groupBy("date", "depot_id", "region")
        .agg(
            F.count("weight_kg").cast("bigint").alias("depot_scans_3d"),
            F.avg("weight_kg").alias("depot_avg_weight_3d"),
        )
        .select(
            "date",
            "depot_id",
            F.to_utc_timestamp(F.col("date").cast("timestamp"), "UTC").alias("feature_ts"),
            "region",
            "depot_scans_3d",
            "depot_avg_weight_3d",
        )
    )


def _late(frame: pd.DataFrame) -> pd.Series:
    return frame["delay_minutes"].fillna(0.0) > LATE_MINUTES


def _lost(frame: pd.DataFrame) -> pd.Series:
    return frame["status"] == "lost"


def _write_sample(*args, **kwargs):
    from tests.support.parcels.sample import write_sample

    return write_sample(*args, **kwargs)


SCANS = Stream(
    name="scans",
    key="scan_id",
    event_time="event_time",
    fields=(
        Field("scan_id", "string", normalise="upper"),
        Field("parcel_id", "string"),
        Field("depot_id", "string", normalise="upper"),
        Field("event_time", "timestamp"),
        Field("weight_kg", "double"),
        Field("distance_km", "double"),
        Field("service", "string", normalise="lower"),
        Field("delay_minutes", "double", required=False),
        Field("status", "string", normalise="lower"),
    ),
    contract=scans_contract,
    description="Parcel scans at the depots, delivered daily.",
)

DEPOTS = Reference(
    name="depots",
    key="depot_id",
    fields=(Field("depot_id", "string", normalise="upper"), Field("region", "string")),
    contract=depots_contract,
    description="Depot master data snapshot.",
)

DEPOT_LOAD = FeatureTable(
    name="depot_load",
    entity="depot_id",
    timestamp="feature_ts",
    inputs=("silver.scans", "silver.depots"),
    lookback_days=3,
    build=depot_load,
    contract=depot_load_contract,
    description="Per depot and day: scans and mean weight of the 3 days before.",
)

PARCELS = UseCase(
    name="parcels",
    streams=(SCANS,),
    references=(DEPOTS,),
    label=LabelSpec(
        maturity_days=1,
        target="is_late",
        rule=LabelRule(
            columns=("delay_minutes", "status"),
            positive=_late,
            exclude=_lost,
            description="more than an hour late; lost parcels have no label",
        ),
    ),
    examples=Examples(
        table="silver.scans",
        row_key="scan_id",
        event_time="event_time",
        entity_columns=("depot_id",),
        request_columns=("weight_kg", "distance_km", "service"),
    ),
    primary_stream="scans",
    partition_start="2026-03-01",
    dbt=None,
    feast=FeastSpec(repo="tests/support/parcels/feature_repo", project="parcels"),
    sample_data=SampleData(write=_write_sample, start="2026-03-01", days=6),
    ingest=IngestPolicy(max_bad_share=0.05, require_manifest=True),
    feature_tables=(DEPOT_LOAD,),
    model=ModelSpec(
        name="parcels_lgbm",
        target="is_late",
        feature_service="parcels_model_v1",
        numeric_features=("weight_kg", "distance_km", "depot_scans_3d", "depot_avg_weight_3d"),
        categorical_features={"service": SERVICES, "region": REGIONS},
        params={"num_iterations": 20, "num_leaves": 7, "min_data_in_leaf": 5, "num_threads": 1},
        validation_days=1,
        promotion=PromotionPolicy(metric="pr_auc", margin=0.0, floors={}),
    ),
)

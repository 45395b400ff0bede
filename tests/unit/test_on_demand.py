"""The on-demand function's two entrances give the same features, value for value.

Feast runs ``transaction_context`` on the frame it builds (python dict -> Arrow -> pandas); the
live path hands it the pass's python lists (``apply_transforms``). The cases cover what the live
path meets: nulls everywhere, NaN, empty and missing recent sets, a customer with no state, the
event before the last one (negative gap), zero and negative averages, integers and floats, and
columns that are absent altogether.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from slipway.featurestore.on_demand import ColumnarTransform, numeric
from slipway.serving.features import ServicePlan, _TransformPlan, apply_transforms
from slipway.usecases.fraud.request_features import OUTPUTS, transaction_context

COUNTRIES = ["DE", "FR", "NL", None]
DEVICES = ["d1", "d2", "d3", None]


def _row(rng: random.Random) -> dict[str, Any]:
    t = rng.choice([1_754_000_000, 1_754_000_000.5, 1_754_021_599, 1_754_021_600, None])
    pick = rng.random()
    return {
        "event_epoch": t,
        "amount_eur": rng.choice([0.0, 12.3456, 999.99, None, 7]),
        "country": rng.choice(COUNTRIES),
        "device_id": rng.choice(DEVICES),
        "last_txn_epoch": None if pick < 0.2 else rng.choice([1_753_999_000.0, 1_754_100_000.0]),
        "amount_avg_30d": rng.choice([None, 0.0, -1.0, 55.5, 100]),
        "countries_30d": rng.choice([None, [], ["DE"], ["FR", "NL"], ["DE", "DE", "FR"]]),
        "devices_30d": rng.choice([None, [], ["d1"], ["d2", "d3"]]),
        "home_country": rng.choice(COUNTRIES),
        "signup_epoch": rng.choice([None, 1_700_000_000.0, 1_754_000_000]),
    }


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(a, dtype="float64"), b, equal_nan=True))


def _through_feast_frame(columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    frame = pa.Table.from_pydict(columns).to_pandas()  # what Feast hands a pandas-mode view
    out = transaction_context(frame)
    assert list(out.index) == list(frame.index)
    return {name: out[name].to_numpy() for name in out.columns}


@pytest.mark.parametrize("seed", range(6))
def test_the_frame_and_the_lists_give_identical_features(seed: int) -> None:
    rng = random.Random(seed)
    # 1,500 rows: the vectorised novelty (training-set sizes) on both entrances too.
    rows = [_row(rng) for _ in range([1, 3, 40, 1, 40, 1_500][seed])]
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    via_frame = _through_feast_frame(columns)
    via_lists = transaction_context.columns(columns, len(rows))
    assert set(via_frame) == set(via_lists) == set(OUTPUTS)
    for name in OUTPUTS:
        assert _same(via_frame[name], via_lists[name]), (name, via_frame[name], via_lists[name])


def test_absent_columns_agree_too() -> None:
    columns: dict[str, list[Any]] = {"event_epoch": [1_754_000_000, None], "amount_eur": [1.0, 2]}
    via_frame = _through_feast_frame(columns)
    via_lists = transaction_context.columns(columns, 2)
    for name in OUTPUTS:
        assert _same(via_frame[name], via_lists[name]), name
    assert via_lists["is_new_country"].tolist() == [1.0, 1.0]  # nothing known: new
    assert math.isnan(via_lists["is_foreign"][0])


def test_the_features_are_the_documented_ones() -> None:
    out = transaction_context.columns(
        {
            "event_epoch": [1_754_008_400.0],  # 2025-08-01 00:33:20 UTC
            "amount_eur": [30.0],
            "country": ["FR"],
            "device_id": ["d9"],
            "last_txn_epoch": [1_754_007_400.0],
            "amount_avg_30d": [20.0],
            "countries_30d": [["DE", "FR"]],
            "devices_30d": [["d1"]],
            "home_country": ["DE"],
            "signup_epoch": [1_754_008_400.0 - 2 * 86_400],
        },
        1,
    )
    assert {k: float(v[0]) for k, v in out.items()} == {
        "seconds_since_last_txn": 1000.0,
        "amount_to_avg_30d": 1.5,
        "is_new_country": 0.0,
        "is_new_device": 1.0,
        "is_foreign": 1.0,
        "account_age_days": 2.0,
        "hour_of_day": 0.0,
        "is_night": 1.0,
    }


def test_numeric_takes_pandas_coercion_for_anything_but_plain_numbers() -> None:
    assert _same(numeric([1, None, 2.5, True]), np.array([1.0, np.nan, 2.5, 1.0]))
    assert _same(numeric(["3.5", "x", None]), np.array([3.5, np.nan, np.nan]))


def test_apply_transforms_takes_the_lists_entrance() -> None:
    """The serving path hands a ColumnarTransform the lists (no frame) and gets python floats."""
    assert isinstance(transaction_context, ColumnarTransform)
    fields = ("amount_eur", "country", "device_id", "event_epoch")
    stored = ("last_txn_epoch", "amount_avg_30d", "countries_30d", "devices_30d")
    plan = ServicePlan(
        service=None,
        views=(),
        transforms=(
            _TransformPlan(
                name="transaction_context",
                fn=transaction_context,
                sources=("windows", "profile"),
                request_fields=fields,
                outputs=tuple(OUTPUTS),
            ),
        ),
        provided=(("windows", stored), ("profile", ("home_country", "signup_epoch"))),
    )
    rng = random.Random(7)
    rows = [_row(rng) for _ in range(25)]
    values = {name: [r[name] for r in rows] for name in (*stored, "home_country", "signup_epoch")}
    apply_transforms(plan, rows, values)
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    expected = _through_feast_frame(columns)
    for name in OUTPUTS:
        got = values[name]
        assert all(v is None or type(v) is float for v in got), name
        as_array = np.array([np.nan if v is None else v for v in got])
        assert _same(expected[name], as_array), name


def _arrow_rows(seed: int, n: int) -> pa.Table:
    """Generated rows as the offline store's chunk holds them, null list items included."""
    rng = random.Random(seed)
    rows = [_row(rng) for _ in range(n)]
    for r in rows[::7]:  # a null item in a recent set: a missing value then counts as seen
        r["countries_30d"] = [None, "DE"]
        r["devices_30d"] = ["d1", None]
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    return pa.Table.from_pydict(columns)


@pytest.mark.parametrize(("seed", "n"), [(0, 1), (1, 3), (2, 40), (3, 1_500), (4, 5_000)])
def test_the_arrow_entrance_returns_feasts_pandas_table_exactly(seed: int, n: int) -> None:
    """The offline store's entrance (Arrow in, Arrow out) against Feast's pandas mode
    (``pa.Table.from_pandas(udf(table.to_pandas()))``): same names, types, values."""
    table = _arrow_rows(seed, n)
    expected = pa.Table.from_pandas(transaction_context(table.to_pandas()))
    got = transaction_context.arrow(table)
    assert got.schema == expected.schema
    for name in expected.column_names:
        assert _same(got[name].to_numpy(), expected[name].to_numpy()), name
    # And the lists entrance agrees with both, so all three are one function.
    via_lists = transaction_context.columns(table.to_pydict(), n)
    for name in OUTPUTS:
        assert _same(via_lists[name], got[name].to_numpy()), name


def test_the_arrow_entrance_on_integer_and_absent_columns() -> None:
    table = pa.table(
        {
            "event_epoch": pa.array([1_754_000_000, None, 2**62], pa.int64()),
            "amount_eur": pa.array([1, 2, None], pa.int32()),
            "country": pa.array(["DE", None, "FR"]),
        }
    )
    expected = pa.Table.from_pandas(transaction_context(table.to_pandas()))
    got = transaction_context.arrow(table)
    assert got.schema == expected.schema
    for name in expected.column_names:
        assert _same(got[name].to_numpy(), expected[name].to_numpy()), name


@pytest.mark.parametrize("full_feature_names", [False, True])
def test_the_offline_store_takes_the_tagged_transform_of_the_registrys_view(
    full_feature_names: bool,
) -> None:
    """The fraud repo's on-demand view, as read back from a registry (Feast rebuilds its
    function from source), still names its transform by tag, and the offline store's Arrow
    path gives exactly Feast's ``transform_arrow`` (names, types, values)."""
    from pathlib import Path

    from feast.on_demand_feature_view import OnDemandFeatureView

    from slipway.featurestore.delta_offline_store import _transform_arrow
    from slipway.featurestore.on_demand import columnar_of
    from slipway.featurestore.store import repo_contents

    repo = Path(__file__).resolve().parents[2] / "feature_repo" / "fraud"
    declared = next(
        v for v in repo_contents(repo).on_demand_feature_views if v.name == "transaction_context"
    )
    odfv = OnDemandFeatureView.from_proto(declared.to_proto())
    assert columnar_of(odfv.tags) is transaction_context
    table = _arrow_rows(5, 2_000)
    if full_feature_names:  # the stored features under their view-prefixed names
        table = table.rename_columns(
            [
                f"customer_behaviour__{c}"
                if c in ("last_txn_epoch", "amount_avg_30d", "countries_30d", "devices_30d")
                else c
                for c in table.column_names
            ]
        )
    expected = odfv.transform_arrow(table, full_feature_names)
    got = _transform_arrow(odfv, table, full_feature_names)
    assert got.column_names == expected.column_names
    assert got.schema == expected.schema
    for name in expected.column_names:
        assert _same(got[name].to_numpy(), expected[name].to_numpy()), name


def test_a_tag_naming_something_else_is_an_error() -> None:
    from slipway.featurestore.on_demand import columnar_of, columnar_tag

    assert columnar_of({}) is None
    with pytest.raises(TypeError, match="does not name a ColumnarTransform"):
        columnar_of(columnar_tag("slipway.featurestore.on_demand:numeric"))
    with pytest.raises(ValueError, match="module:name"):
        columnar_tag("no_colon")

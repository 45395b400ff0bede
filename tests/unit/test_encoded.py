"""The live path's matrix, built from the pass's lists, equals ``model_frame``'s encoding.

``Encoded.from_columns`` skips the frame when every value is a plain number, None or (in a
categorical column) a string; these tests hold the matrix equal to the one built through
``model_frame`` (the training and batch encoding) on both use cases' specs, with nulls, missing
defaults, unknown categories, integers and booleans, and check that anything else takes
``model_frame`` itself.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pandas as pd
import pytest

from slipway.serving.champion import Encoded, _matrix_from_frame
from slipway.training.train import model_frame
from slipway.usecase import ModelSpec
from slipway.usecases.flights import MODEL as FLIGHTS_MODEL
from slipway.usecases.fraud import MODEL as FRAUD_MODEL


def _columns(spec: ModelSpec, rng: random.Random, n: int) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for name in spec.numeric_features:
        columns[name] = [rng.choice([None, 0, 3, 2.5, -1.25, 1e12, True, False]) for _ in range(n)]
    for name, categories in spec.categorical_features.items():
        pool = [*categories, None, "not-a-category"]
        columns[name] = [rng.choice(pool) for _ in range(n)]
    return columns


def _reference(columns: dict[str, list[Any]], spec: ModelSpec) -> np.ndarray:
    return _matrix_from_frame(model_frame(pd.DataFrame(columns), spec), spec)


@pytest.mark.parametrize("spec", [FRAUD_MODEL, FLIGHTS_MODEL], ids=lambda s: s.name)
@pytest.mark.parametrize("seed", range(5))
def test_matrix_from_lists_equals_model_frame(spec: ModelSpec, seed: int) -> None:
    rng = random.Random(seed)
    columns = _columns(spec, rng, rng.choice([1, 2, 20, 250]))
    encoded = Encoded.from_columns(columns, spec)
    got = encoded.matrix()
    assert encoded._frame is None  # the fast path ran: no frame was built
    assert got.shape == (len(columns[spec.features[0]]), len(spec.features))
    np.testing.assert_array_equal(got, _reference(columns, spec))
    # The lazily built frame is model_frame's own.
    pd.testing.assert_frame_equal(encoded.frame, model_frame(pd.DataFrame(columns), spec))


def test_defaults_fill_nulls_and_unknown_categories_are_missing() -> None:
    spec = FRAUD_MODEL
    columns = _columns(spec, random.Random(1), 3)
    name = next(iter(spec.missing_defaults))
    columns[name] = [None, None, 4.0]
    cat, categories = next(iter(spec.categorical_features.items()))
    columns[cat] = [categories[1], "not-a-category", None]
    got = Encoded.from_columns(columns, spec).matrix()
    j = spec.features.index(name)
    assert got[:, j].tolist() == [spec.missing_defaults[name]] * 2 + [4.0]
    k = spec.features.index(cat)
    assert got[0, k] == 1.0 and np.isnan(got[1, k]) and np.isnan(got[2, k])


def test_other_values_take_model_frame_itself() -> None:
    spec = FRAUD_MODEL
    columns = _columns(spec, random.Random(2), 4)
    first = spec.numeric_features[0]
    columns[first] = ["12.5", "x", None, np.int64(3)]  # strings: pandas' coercion decides
    encoded = Encoded.from_columns(columns, spec)
    got = encoded.matrix()
    assert encoded._frame is not None  # went through model_frame
    np.testing.assert_array_equal(got, _reference(columns, spec))
    assert got[0, 0] == 12.5 and np.isnan(got[1, 0])


def test_a_missing_column_is_named() -> None:
    columns = _columns(FRAUD_MODEL, random.Random(3), 2)
    dropped = FRAUD_MODEL.features[-1]
    del columns[dropped]
    with pytest.raises(KeyError, match=dropped):
        Encoded.from_columns(columns, FRAUD_MODEL).matrix()

"""The vectorised novelty (training sets) gives exactly the per-row loop's answer (online)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from slipway.usecases.fraud import request_features as rf


def _generated(n: int, seed: int) -> tuple[list[object], list[object]]:
    rng = np.random.default_rng(seed)
    pool = [f"v{i}" for i in range(12)]
    values: list[object] = [
        None if rng.random() < 0.05 else str(rng.choice(pool)) for _ in range(n)
    ]
    seen: list[object] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.05:
            seen.append(None)
        elif r < 0.1:
            seen.append([])
        else:
            items = [str(v) for v in rng.choice(pool, int(rng.integers(1, 8)))]
            if rng.random() < 0.05:
                items.append(None)  # a null item: matches a missing value, as `in set` does
            seen.append(items)
    return values, seen


@pytest.mark.parametrize("via_arrow", [False, True], ids=["python lists", "arrow to_pandas"])
def test_vectorised_novelty_equals_the_loop(via_arrow: bool) -> None:
    values, seen = _generated(5000, seed=11)
    if via_arrow:  # what the offline store hands the on-demand view: numpy arrays per row
        frame = pa.table(
            {"v": pa.array(values, pa.string()), "s": pa.array(seen, pa.list_(pa.string()))}
        ).to_pandas()
        v, s = frame["v"], frame["s"]
    else:
        v, s = pd.Series(values, dtype=object), pd.Series(seen, dtype=object)
    assert len(v) >= rf._VECTOR_ROWS  # the vectorised branch runs
    got = rf._novelty(v, s)
    loop = rf._novelty_loop(v.tolist(), s.tolist())
    np.testing.assert_array_equal(got, loop)
    assert 0 < got.sum() < len(got)  # both answers occur
    # Spot checks of the rule itself.
    for i, (value, known) in enumerate(zip(values, seen, strict=True)):
        if not known:
            assert got[i] == 1.0
        else:
            assert got[i] == (0.0 if value in known else 1.0)


def test_novelty_with_missing_values_and_nan_lists_falls_back_exactly() -> None:
    n = rf._VECTOR_ROWS + 10
    values = pd.Series(["a", pd.NA] * (n // 2), dtype="string")
    seen = pd.Series([["a", "b"], np.nan] * (n // 2), dtype=object)
    got = rf._novelty(values, seen)
    np.testing.assert_array_equal(got, rf._novelty_loop(values.tolist(), seen.tolist()))
    assert got.tolist() == [0.0, 1.0] * (n // 2)


@pytest.mark.parametrize("item", [pa.string(), pa.large_string()])
def test_arrow_novelty_equals_the_loop(item: pa.DataType) -> None:
    """The offline store's Arrow columns: lists compared without leaving Arrow, null items and
    missing values (a missing value is seen where the list holds a null) as the loop has them."""
    values, seen = _generated(5000, seed=12)
    v = pa.chunked_array(
        [pa.array(values[:2000], pa.string()), pa.array(values[2000:], pa.string())]
    )
    s = pa.chunked_array(
        [pa.array(seen[:3000], pa.list_(item)), pa.array(seen[3000:], pa.list_(item))]
    )
    got = rf._novelty(v, s)
    np.testing.assert_array_equal(got, rf._novelty_loop(values, seen))
    sliced = rf._novelty(v.slice(1234, 777), s.slice(1234, 777))  # offsets not at zero
    np.testing.assert_array_equal(sliced, rf._novelty_loop(values[1234:2011], seen[1234:2011]))
    assert rf._novelty_arrow(pa.array([1, 2]), pa.array([[1], [3]])) is None  # not strings
    assert rf._novelty(pa.array([], pa.string()), pa.array([], pa.list_(pa.string()))).size == 0


def test_arrow_novelty_ignores_items_under_a_null_list() -> None:
    """A null list can still span items of the child array (as other writers leave it): they
    are not the row's seen values."""
    child = pa.array(["a", "b", "c", None, "e"])
    seen = pa.ListArray.from_arrays(
        pa.array([0, 2, 4, 4, 5], pa.int32()), child, mask=pa.array([True, False, False, True])
    )
    values = pa.array(["a", "c", None, "e"])
    got = rf._novelty(values, seen)
    loop = rf._novelty_loop(values.to_pylist(), [None, ["c", None], [], None])
    np.testing.assert_array_equal(got, loop)
    assert got.tolist() == [1.0, 0.0, 1.0, 1.0]

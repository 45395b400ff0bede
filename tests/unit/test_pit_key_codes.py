"""String keys are joined as codes of the entity side's keys, and feature rows whose key no
entity row has are dropped before the join: the answer must be the uncoded join's, row for row."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from slipway.featurestore.delta_offline_store import _pit_indices


def _keys(values: np.ndarray, nulls: np.ndarray, as_string: bool) -> pa.ChunkedArray:
    if as_string:
        cells = [None if n else f"c{v}" for v, n in zip(values.tolist(), nulls, strict=True)]
        return pa.chunked_array([pa.array(cells, pa.string())])
    return pa.chunked_array([pa.array(values, pa.int64(), mask=nulls)])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("with_created", [False, True])
def test_string_keys_give_the_integer_keys_answer(seed: int, with_created: bool) -> None:
    rng = np.random.default_rng(seed)
    n_feat, n_ent = 5_000, 800
    # Feature keys 0..399, entity keys 300..449: most feature keys have no entity row, some
    # entity keys have no feature row, and both sides have nulls.
    f_keys = rng.integers(0, 400, n_feat)
    e_keys = rng.integers(300, 450, n_ent)
    f_null, e_null = rng.random(n_feat) < 0.03, rng.random(n_ent) < 0.03
    f_ts = pa.chunked_array([pa.array(rng.integers(0, 1_000, n_feat) * 1_000_000, pa.int64())])
    e_ts = pa.chunked_array([pa.array(rng.integers(0, 1_200, n_ent) * 1_000_000, pa.int64())])
    created = (
        pa.chunked_array([pa.array(rng.integers(0, 3, n_feat), pa.int64())])
        if with_created
        else None
    )
    ids = np.arange(n_feat, dtype=np.int64) * 3 + 7  # ids are not positions
    answers = [
        _pit_indices(
            entity_keys=[_keys(e_keys, e_null, as_string)],
            entity_ts=e_ts,
            feature_keys=[_keys(f_keys, f_null, as_string)],
            feature_ts=f_ts,
            feature_created=created,
            ttl=dt.timedelta(seconds=300),
            feature_ids=ids,
        )
        for as_string in (False, True)
    ]
    np.testing.assert_array_equal(answers[1], answers[0])
    hits = answers[0] >= 0
    assert 0.2 * n_ent < hits.sum() < n_ent  # hits, misses and TTL drops all occur
    assert set(answers[0][hits].tolist()) <= set(ids.tolist())

"""On-demand feature functions written once, on columns, for Feast's pandas mode and the live path.

Feast runs an on-demand view's function on a pandas frame (point-in-time join, batch scoring,
``get_online_features``). The live path scores a handful of events per pass, where building that
frame (python dict -> Arrow -> pandas, then a pandas frame back) costs more than the arithmetic:
about 2 ms per pass against tens of microseconds for the function itself. A ``ColumnarTransform``
is one function over *columns*: Feast calls it as the pandas function it expects (``__call__``),
and the live path calls ``columns`` with python lists directly. The conversions below give the
function identical inputs both ways (what Arrow -> pandas would give: nulls become NaN in numeric
columns, None in object columns, lists stay sequences), and a unit test holds the two entrances
equal value for value, on edge cases included.

A third entrance, ``arrow``, serves the point-in-time join: the offline store's chunks are Arrow
tables, and Feast's own path converts every input to pandas first, where a list column becomes
an object array of numpy arrays (most of the transform's time on a training set). Arrow columns
are read as the pandas conversion would give them (:func:`numeric`, :func:`objects`), and list
columns stay Arrow for functions that can use them (:func:`is_arrow`); the same unit tests hold
this entrance equal to the other two.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# name -> pandas Series (Feast), python list (the live path) or Arrow array (the offline store)
Columns = Mapping[str, Any]
ColumnFn = Callable[[Columns, int], dict[str, np.ndarray]]

PLAIN_NUMBERS = (float, int, type(None))  # bool is an int


def numeric(column: Any) -> np.ndarray:
    """``column`` as float64 with NaN for nulls, as ``pd.to_numeric(errors='coerce')`` gives it.

    Python lists of plain numbers and None (the live path's values) go straight to numpy; any
    other content takes pandas' own coercion, so both entrances agree on every input. Arrow
    integers and floats become float64 with NaN for nulls (what ``to_pandas`` then coercion
    gives); any other Arrow type goes through ``to_pandas`` itself.
    """
    if is_arrow(column):
        t = column.type
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            return np.asarray(
                pc.fill_null(pc.cast(column, pa.float64(), safe=False), np.nan).to_numpy(),
                dtype="float64",
            )
        column = column.to_pandas()
    if isinstance(column, list):
        if all(isinstance(v, PLAIN_NUMBERS) for v in column):
            return np.array(column, dtype="float64")
        column = pd.Series(column, dtype=object)
    series = column if isinstance(column, pd.Series) else pd.Series(column)
    if pd.api.types.is_numeric_dtype(series.dtype) and not isinstance(
        series.dtype, pd.CategoricalDtype
    ):
        return series.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def objects(column: Any) -> np.ndarray:
    """``column`` as a 1-D object array (strings, None for nulls)."""
    if is_arrow(column):
        column = column.to_pandas()  # exactly the frame entrance's cells
    if isinstance(column, pd.Series):
        return column.to_numpy(dtype=object)
    return np.fromiter(column, dtype=object, count=len(column))  # lists stay cells, never rows


def is_arrow(column: Any) -> bool:
    """Whether ``column`` is an Arrow array (the offline store's entrance)."""
    return isinstance(column, pa.Array | pa.ChunkedArray)


def is_null(value: Any) -> bool:
    """None or a float NaN: what a null becomes after Arrow -> pandas."""
    return value is None or (isinstance(value, float) and value != value)


def values_of(column: Any) -> list[Any]:
    """``column``'s cells as a python list (sequences stay sequences)."""
    if is_arrow(column):
        column = column.to_pandas()
    return column.tolist() if isinstance(column, pd.Series) else list(column)


class ColumnarTransform:
    """An on-demand view's function over columns, callable as Feast's pandas function.

    ``columns(inputs, n)`` takes a mapping of column name -> Series or list (``n`` rows) and
    returns name -> float64 array; calling the object with a frame returns the frame Feast wants.
    """

    def __init__(self, fn: ColumnFn) -> None:
        self.columns = fn
        functools.update_wrapper(self, fn)

    def __call__(self, inputs: pd.DataFrame) -> pd.DataFrame:
        data = {name: inputs[name] for name in inputs.columns}
        return pd.DataFrame(self.columns(data, len(inputs)), index=inputs.index)

    def arrow(self, inputs: pa.Table) -> pa.Table:
        """The Arrow entrance: what Feast's pandas mode returns for ``inputs``
        (``pa.Table.from_pandas(self(inputs.to_pandas()))``), without the pandas frame in."""
        data = {name: inputs.column(name) for name in inputs.column_names}
        out = pd.DataFrame(
            self.columns(data, inputs.num_rows), index=pd.RangeIndex(inputs.num_rows)
        )
        return pa.Table.from_pandas(out)


def columnar(fn: ColumnFn) -> ColumnarTransform:
    """Decorator: ``fn(inputs, n) -> {name: array}`` becomes a ``ColumnarTransform``."""
    return ColumnarTransform(fn)


def run_columnar(
    transform: ColumnarTransform, inputs: Mapping[str, Sequence[Any]]
) -> dict[str, np.ndarray]:
    """The live entrance: python lists in, arrays out (no frame either way)."""
    n = len(next(iter(inputs.values()))) if inputs else 0
    return transform.columns(inputs, n)


COLUMNAR_TAG = "slipway.columnar"  # an on-demand view's tag: "module:name" of its transform


def columnar_tag(target: str) -> dict[str, str]:
    """The tag that names the ``ColumnarTransform`` (``"module:name"``) a Feast on-demand view's
    function delegates to.

    Feast rebuilds a view's function from its source text when it reads the registry, so the
    function itself cannot carry the link; a tag is kept. The offline store then calls the
    transform's Arrow entrance directly instead of going through a pandas frame.
    """
    module, sep, name = target.partition(":")
    if not (module and sep and name):
        raise ValueError(f"expected 'module:name', got {target!r}")
    return {COLUMNAR_TAG: target}


def columnar_of(tags: Mapping[str, str] | None) -> ColumnarTransform | None:
    """The ``ColumnarTransform`` a view's tags name; None when they name none."""
    target = (tags or {}).get(COLUMNAR_TAG)
    if not target or ":" not in target:
        return None
    module, _, name = target.partition(":")
    found = getattr(importlib.import_module(module), name, None)
    if not isinstance(found, ColumnarTransform):
        raise TypeError(f"{COLUMNAR_TAG}={target!r} does not name a ColumnarTransform")
    return found

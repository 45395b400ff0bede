"""The lakehouse: Delta tables addressed by ``layer.name`` under one root URI."""

from slipway.lakehouse.tables import (
    ConcurrentWriteError,
    Lakehouse,
    TableRef,
    WriteResult,
    days_between,
    normalise_arrow,
)

__all__ = [
    "ConcurrentWriteError",
    "Lakehouse",
    "TableRef",
    "WriteResult",
    "days_between",
    "normalise_arrow",
]

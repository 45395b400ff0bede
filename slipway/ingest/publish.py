"""A stream's table names and its publish record: what a reader pins to see whole days.

Silver, quarantine and the audit of a stream are three Delta commits; the audit's, written last,
carries the publish record (the versions of the tables that belong together). This module has no
heavy imports so that every reader (the contract check, dbt's source loader, lineage) can pin
those versions without loading the ingestion machinery.
"""

from __future__ import annotations

from slipway.lakehouse import Lakehouse


def bronze_table(stream: str) -> str:
    return f"bronze.{stream}"


def files_table(stream: str) -> str:
    return f"bronze.{stream}_files"


def silver_table(stream: str) -> str:
    return f"silver.{stream}"


def quarantine_table(stream: str) -> str:
    return f"quarantine.{stream}"


def audit_table(stream: str) -> str:
    return f"audit.{stream}"


PUBLISH_KEY = "publish"  # the audit commit's metadata key naming the versions published together


def published_versions(lakehouse: Lakehouse, stream: str) -> dict[str, int] | None:
    """The silver, quarantine and bronze versions the latest publish record names, or None.

    Silver, quarantine and the audit are three Delta commits; the audit's, written last, is the
    publish record. A reader that pins these versions sees every day of the stream as one
    silver run published it: never a silver commit whose quarantine and audit are missing.
    """
    latest = lakehouse.latest_commit_metadata(audit_table(stream))
    if latest is None:
        return None
    _, meta = latest
    record = meta.get(PUBLISH_KEY)
    return {k: int(v) for k, v in record.items()} if record else None


def published_version(lakehouse: Lakehouse, table: str) -> int | None:
    """The version of ``table`` (``silver.<stream>`` or ``quarantine.<stream>``) that its
    stream's latest publish record names, or None (another layer, or no record yet).

    A reader that takes this instead of the latest version never sees a silver commit whose
    quarantine and audit a killed run did not write.
    """
    layer, _, stream = table.partition(".")
    if layer not in ("silver", "quarantine") or not stream:
        return None
    record = published_versions(lakehouse, stream)
    return None if record is None else record.get(table)

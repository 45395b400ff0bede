"""Bronze: every landed line exactly as delivered, with where it came from.

Bronze does not parse: a garbage line or a half-written last line is still a landed row, kept
verbatim, so silver can quarantine it with a reason and nothing is ever lost between the landing
zone and the lakehouse. Each file is also recorded with its row count and sha256 against the
upstream's manifest, so a truncated delivery is caught before it is published.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from slipway.ingest.landing import LandedFile, Manifest

BRONZE_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32()),
        pa.field("source_file", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("raw", pa.string()),
        pa.field("ingest_run_id", pa.string()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)

LANDED_FILES_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32()),
        pa.field("stream", pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("bytes", pa.int64()),
        pa.field("sha256", pa.string()),
        pa.field("manifest_rows", pa.int64()),
        pa.field("manifest_sha256", pa.string()),
        pa.field("status", pa.string()),
        pa.field("ingest_run_id", pa.string()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class FileRead:
    """One file's lines and its integrity facts."""

    file: LandedFile
    lines: list[str]
    line_numbers: list[int]
    sha256: str
    size: int


def _decode_lines(data: bytes) -> tuple[list[str], list[int]]:
    """Non-blank lines with their 1-based physical line numbers; bad UTF-8 kept, escaped."""
    try:
        text = data.decode("utf-8")
        raw_lines = text.split("\n")
    except UnicodeDecodeError:
        raw_lines = [
            chunk.decode("utf-8", errors="backslashreplace") for chunk in data.split(b"\n")
        ]
    lines: list[str] = []
    numbers: list[int] = []
    for number, line in enumerate(raw_lines, start=1):
        stripped = line.rstrip("\r")
        if stripped.strip():
            lines.append(stripped)
            numbers.append(number)
    return lines, numbers


def read_file(file: LandedFile) -> FileRead:
    """Read one landed file (``.gz`` transparently)."""
    data = file.path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if file.name.endswith(".gz"):
        try:
            payload = gzip.decompress(data)
        except (OSError, EOFError):
            # A truncated gzip stream still yields what was written before the cut.
            payload = _salvage_gzip(data)
    else:
        payload = data
    lines, numbers = _decode_lines(payload)
    return FileRead(file, lines, numbers, sha, len(data))


def _salvage_gzip(data: bytes) -> bytes:
    import zlib

    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return decompressor.decompress(data)
    except zlib.error:
        return b""


def bronze_rows(
    reads: Sequence[FileRead], day: dt.date, run_id: str, ingested_at: dt.datetime
) -> pa.Table:
    """The bronze rows of one day: one per non-blank landed line."""
    files: list[str] = []
    numbers: list[int] = []
    raws: list[str] = []
    for read in reads:
        files.extend([read.file.relative] * len(read.lines))
        numbers.extend(read.line_numbers)
        raws.extend(read.lines)
    n = len(raws)
    return pa.table(
        {
            "date": pa.array([day] * n, pa.date32()),
            "source_file": pa.array(files, pa.string()),
            "source_line": pa.array(numbers, pa.int64()),
            "raw": pa.array(raws, pa.string()),
            "ingest_run_id": pa.array([run_id] * n, pa.string()),
            "ingested_at": pa.array([ingested_at] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=BRONZE_SCHEMA,
    )


def file_status(read: FileRead, manifest: Manifest | None) -> tuple[str, int | None, str | None]:
    """Compare a file with the manifest: ``ok``, ``no_manifest``, ``unlisted``, ``truncated``…"""
    if manifest is None:
        return "no_manifest", None, None
    entry = manifest.files.get(read.file.name)
    if entry is None:
        return "unlisted", None, None
    if entry.sha256 and entry.sha256 != read.sha256:
        status = "truncated" if len(read.lines) < entry.rows else "checksum_mismatch"
        return status, entry.rows, entry.sha256
    if len(read.lines) != entry.rows:
        return "row_count_mismatch", entry.rows, entry.sha256
    return "ok", entry.rows, entry.sha256


def landed_file_rows(
    reads: Sequence[FileRead],
    manifest: Manifest | None,
    day: dt.date,
    stream: str,
    run_id: str,
    ingested_at: dt.datetime,
) -> pa.Table:
    """One row per file (and per manifest entry whose file never arrived)."""
    rows = []
    seen = set()
    for read in reads:
        status, m_rows, m_sha = file_status(read, manifest)
        seen.add(read.file.name)
        rows.append(
            {
                "date": day,
                "stream": stream,
                "source_file": read.file.relative,
                "rows": len(read.lines),
                "bytes": read.size,
                "sha256": read.sha256,
                "manifest_rows": m_rows,
                "manifest_sha256": m_sha,
                "status": status,
                "ingest_run_id": run_id,
                "ingested_at": ingested_at,
            }
        )
    if manifest is not None:
        for name, entry in manifest.files.items():
            if name not in seen:
                rows.append(
                    {
                        "date": day,
                        "stream": stream,
                        "source_file": f"{stream}/{day.isoformat()}/{name}",
                        "rows": 0,
                        "bytes": 0,
                        "sha256": None,
                        "manifest_rows": entry.rows,
                        "manifest_sha256": entry.sha256,
                        "status": "missing",
                        "ingest_run_id": run_id,
                        "ingested_at": ingested_at,
                    }
                )
    return pa.Table.from_pylist(rows, schema=LANDED_FILES_SCHEMA)

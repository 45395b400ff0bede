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
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from slipway.ingest.landing import MANIFEST_NAME, LandedFile, Manifest

UNREADABLE = "unreadable"  # status prefix: "unreadable: <why>"
UNEXPECTED = "unexpected"  # status prefix: "unexpected: <why>"

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
    problem: str | None = None  # why (part of) the file could not be read


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
    """Read one landed file (``.gz`` transparently, whatever the case of the extension).

    Never raises for what is in the file: a gzip stream that is corrupt (``zlib.error``) or not
    gzip at all keeps the lines before the damage and says why in ``problem``; a truncated
    stream keeps what was written before the cut (the manifest tells truncation apart).
    """
    try:
        data = file.path.read_bytes()
    except OSError as err:
        return FileRead(file, [], [], "", file.size, f"{UNREADABLE}: {err.strerror or err}")
    sha = hashlib.sha256(data).hexdigest()
    problem = None
    if file.name.lower().endswith(".gz"):
        try:
            payload = gzip.decompress(data)
        except EOFError:
            payload, _ = _salvage_gzip(data)
        except (OSError, zlib.error) as err:
            payload, _ = _salvage_gzip(data)
            problem = f"{UNREADABLE}: not a readable gzip stream ({err}); kept the lines before the damage"
    else:
        payload = data
    lines, numbers = _decode_lines(payload)
    return FileRead(file, lines, numbers, sha, len(data), problem)


def _salvage_gzip(data: bytes) -> tuple[bytes, str | None]:
    """What decompresses before the stream ends or breaks, and the error if it broke."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    step = 1 << 10  # small pieces: what came before the damage is kept
    for offset in range(0, len(data), step):
        try:
            out += decompressor.decompress(data[offset : offset + step])
        except zlib.error as err:
            # Keep whole lines only: the last one may be cut by the damage.
            return bytes(out[: out.rfind(b"\n") + 1]), str(err)
    return bytes(out), None


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


def _manifest_entry(manifest: Manifest, name: str):
    """The manifest's entry for a file, matching the name exactly or else ignoring case."""
    entry = manifest.files.get(name)
    if entry is None:
        folded = {n.lower(): e for n, e in manifest.files.items()}
        entry = folded.get(name.lower())
    return entry


def file_status(
    read: FileRead, manifest: Manifest | None, manifest_problem: str | None = None
) -> tuple[str, int | None, str | None]:
    """Compare a file with the manifest: ``ok``, ``no_manifest``, ``unlisted``, ``truncated``…"""
    if read.problem:
        entry = _manifest_entry(manifest, read.file.name) if manifest else None
        return read.problem, entry.rows if entry else None, entry.sha256 if entry else None
    if manifest is None:
        return ("unverified" if manifest_problem else "no_manifest"), None, None
    entry = _manifest_entry(manifest, read.file.name)
    if entry is None:
        return "unlisted", None, None
    if entry.sha256 and entry.sha256 != read.sha256:
        status = "truncated" if len(read.lines) < entry.rows else "checksum_mismatch"
        return status, entry.rows, entry.sha256
    if len(read.lines) != entry.rows:
        return "row_count_mismatch", entry.rows, entry.sha256
    return "ok", entry.rows, entry.sha256


def _line_count(file: LandedFile) -> int:
    try:
        return sum(1 for line in file.path.read_bytes().split(b"\n") if line.strip())
    except OSError:
        return 0


def landed_file_rows(
    reads: Sequence[FileRead],
    manifest: Manifest | None,
    day: dt.date,
    stream: str,
    run_id: str,
    ingested_at: dt.datetime,
    *,
    unexpected: Sequence[LandedFile] = (),
    pattern: str = "*.jsonl*",
    manifest_problem: str | None = None,
) -> pa.Table:
    """One row per file of the day's folder, and per manifest entry whose file never arrived.

    Besides the data files: each unexpected file (status ``unexpected: …``, not ingested) and
    an unreadable manifest (status ``unreadable: …``), so that nothing in the folder goes unseen.
    """
    rows = []
    seen = set()
    for read in reads:
        status, m_rows, m_sha = file_status(read, manifest, manifest_problem)
        seen.add(read.file.name.lower())
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
    base = {
        "date": day,
        "stream": stream,
        "rows": 0,
        "manifest_rows": None,
        "manifest_sha256": None,
        "ingest_run_id": run_id,
        "ingested_at": ingested_at,
    }
    for file in unexpected:
        entry = _manifest_entry(manifest, file.name) if manifest else None
        listed = " although the manifest lists it" if entry else ""
        seen.add(file.name.lower())
        rows.append(
            {
                **base,
                "source_file": file.relative,
                "bytes": file.size,
                "sha256": None,
                "manifest_rows": entry.rows if entry else None,
                "status": f"{UNEXPECTED}: {_line_count(file)} lines not ingested, the name does "
                f"not match the stream's pattern {pattern}{listed}",
            }
        )
    if manifest_problem:
        rows.append(
            {
                **base,
                "source_file": f"{stream}/{day.isoformat()}/{MANIFEST_NAME}",
                "bytes": 0,
                "sha256": None,
                "status": f"{UNREADABLE}: {manifest_problem}",
            }
        )
    if manifest is not None:
        for name, entry in manifest.files.items():
            if name.lower() not in seen:
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

"""The landing zone as the upstream writes it: one folder per stream and day, plus a manifest.

Layout: ``{root}/{stream}/{YYYY-MM-DD}/*.jsonl[.gz]`` with ``_manifest.json`` written last (the
done-marker), and reference snapshots under ``{root}/reference/{name}/{name}_{YYYY-MM-DD}.jsonl``.
The manifest lists each file's row count and sha256, which is how a truncated delivery is told
apart from a small one.

Every file in a day's folder is accounted for: data files match the stream's pattern ignoring
case (``part-001.JSONL`` is a data file), anything else that is not hidden (``.`` prefix, the
upstream's temporary files) or the manifest is *unexpected* and named as such. A manifest that
cannot be read (a byte-order mark, cut mid-JSON, the wrong shape) raises :class:`ManifestError`
naming the file and the reason, never a bare decoding error.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "_manifest.json"


class ManifestError(ValueError):
    """The day's manifest exists but cannot be read; the message names the file and why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def matches(name: str, pattern: str) -> bool:
    """Whether a file name matches a stream's pattern, ignoring case (``.JSONL`` is ``.jsonl``)."""
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


@dataclass(frozen=True)
class LandedFile:
    """One data file in the landing zone."""

    stream: str
    day: dt.date
    path: Path
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def relative(self) -> str:
        """``stream/day/name``: how lineage columns and sensors refer to the file."""
        return f"{self.stream}/{self.day.isoformat()}/{self.name}"


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The upstream's statement of what it delivered for one stream and day."""

    stream: str
    day: dt.date
    files: dict[str, ManifestEntry]
    generated_at: str | None


def day_dir(root: str | Path, stream: str, day: dt.date) -> Path:
    return Path(root) / stream / day.isoformat()


def list_days(root: str | Path, stream: str) -> list[dt.date]:
    """Days that have a folder for ``stream``, ascending."""
    base = Path(root) / stream
    if not base.is_dir():
        return []
    days = []
    for child in base.iterdir():
        if child.is_dir():
            try:
                days.append(dt.date.fromisoformat(child.name))
            except ValueError:
                continue
    return sorted(days)


def list_files(
    root: str | Path, stream: str, day: dt.date, pattern: str = "*.jsonl*"
) -> list[LandedFile]:
    """Data files of one stream and day, sorted by name (the upstream's part order)."""
    return [f for f in _day_files(root, stream, day) if matches(f.name, pattern)]


def unexpected_files(
    root: str | Path, stream: str, day: dt.date, pattern: str = "*.jsonl*"
) -> list[LandedFile]:
    """Files of the day's folder that are neither data files, the manifest, nor hidden."""
    return [
        f
        for f in _day_files(root, stream, day)
        if f.name != MANIFEST_NAME and not matches(f.name, pattern)
    ]


def _day_files(root: str | Path, stream: str, day: dt.date) -> list[LandedFile]:
    folder = day_dir(root, stream, day)
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        stat = path.stat()
        files.append(LandedFile(stream, day, path, stat.st_size, stat.st_mtime_ns))
    return files


def read_manifest(root: str | Path, stream: str, day: dt.date) -> Manifest | None:
    """The day's manifest, or None when the upstream has not (yet) written one.

    Raises :class:`ManifestError` when the file is there but unreadable. A byte-order mark is
    refused rather than skipped: the upstream's writer changed, and the day is held until a
    person has looked.
    """
    path = day_dir(root, stream, day) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ManifestError(path, f"unreadable ({err.strerror or err})") from err
    if data.startswith(b"\xef\xbb\xbf"):
        raise ManifestError(path, "starts with a UTF-8 byte-order mark")
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ManifestError(path, f"not valid UTF-8 (byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise ManifestError(
            path, f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"
        ) from err
    try:
        entries = {
            str(f["name"]): ManifestEntry(str(f["name"]), int(f["rows"]), str(f.get("sha256", "")))
            for f in doc.get("files", [])
        }
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise ManifestError(path, f"not a manifest (files[]: name, rows, sha256): {err!r}") from err
    return Manifest(stream, day, entries, doc.get("generated_at"))


def latest_snapshot(root: str | Path, name: str) -> Path | None:
    """The newest snapshot file of a reference table (by the date in its name)."""
    folder = Path(root) / "reference" / name
    if not folder.is_dir():
        return None
    candidates = sorted(
        p for p in folder.iterdir() if p.is_file() and matches(p.name, f"{name}_*.jsonl*")
    )
    return candidates[-1] if candidates else None


def fingerprint(root: str | Path, streams: list[str]) -> dict[str, str]:
    """``stream/day/name -> size:mtime`` for every data file and manifest: a sensor's view."""
    result: dict[str, str] = {}
    for stream in streams:
        for day in list_days(root, stream):
            folder = day_dir(root, stream, day)
            for path in folder.iterdir():
                if path.is_file() and not path.name.startswith("."):
                    stat = path.stat()
                    result[f"{stream}/{day.isoformat()}/{path.name}"] = (
                        f"{stat.st_size}:{stat.st_mtime_ns}"
                    )
    return result

"""Ingestion steps as plain functions: what the bronze and silver assets (and the CLI) call.

Each step works on a closed range of days, writes each of its tables once (one Delta commit per
table per run, replacing exactly the range), and returns what it did so the caller can record
versions and counts. Re-running a range therefore converges to the same table contents.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from slipway.ingest.bronze import (
    BRONZE_SCHEMA,
    LANDED_FILES_SCHEMA,
    bronze_rows,
    landed_file_rows,
    read_file,
)
from slipway.ingest.contract import (
    AUDIT_SCHEMA,
    QUARANTINE_SCHEMA,
    DayVerdict,
    _contract_failures,
    apply_contract,
    contract_frame,
    file_quarantine_rows,
)
from slipway.ingest.landed_lines import bronze_lines
from slipway.ingest.landing import (
    ManifestError,
    latest_snapshot,
    list_files,
    read_manifest,
    unexpected_files,
)
from slipway.ingest.parse import LINEAGE_COLUMNS, silver_candidates
from slipway.ingest.publish import (
    PUBLISH_KEY,
    audit_table,
    bronze_table,
    files_table,
    published_versions,
    quarantine_table,
    silver_table,
)
from slipway.ingest.uniqueness import KeyLedger
from slipway.lakehouse import Lakehouse, TableRef, WriteResult, days_between
from slipway.usecase import IngestPolicy, Reference, Stream

log = logging.getLogger(__name__)


# -- bronze -------------------------------------------------------------------------------------
@dataclass
class BronzeDay:
    day: dt.date
    files: int
    rows: int
    statuses: list[tuple[str, str, int, int | None]]


@dataclass
class BronzeResult:
    days: list[BronzeDay]
    bronze: WriteResult
    files: WriteResult

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.days)

    @property
    def problems(self) -> list[str]:
        return [f"{f} ({s})" for d in self.days for f, s, _, _ in d.statuses if s != "ok"]


def land_to_bronze(
    lakehouse: Lakehouse,
    landing_root: str | Path,
    stream: Stream,
    start: dt.date,
    end: dt.date,
    run_id: str,
    now: dt.datetime | None = None,
) -> BronzeResult:
    """Copy every landed line of ``stream`` for ``[start, end]`` into bronze, with lineage."""
    now = now or dt.datetime.now(dt.UTC)
    file_rows: list[pa.Table] = []
    days: list[BronzeDay] = []

    def parts() -> Iterator[pa.Table]:
        # One day in memory at a time; the lakehouse streams them into one commit.
        for day in days_between(start, end):
            files = list_files(landing_root, stream.name, day, stream.file_pattern)
            others = unexpected_files(landing_root, stream.name, day, stream.file_pattern)
            try:
                manifest, manifest_problem = read_manifest(landing_root, stream.name, day), None
            except ManifestError as err:  # the day is held for it; the other days go on
                manifest, manifest_problem = None, err.reason
            reads = [read_file(f) for f in files]
            table = bronze_rows(reads, day, run_id, now)
            records = landed_file_rows(
                reads,
                manifest,
                day,
                stream.name,
                run_id,
                now,
                unexpected=others,
                pattern=stream.file_pattern,
                manifest_problem=manifest_problem,
            )
            file_rows.append(records)
            statuses = [
                (r["source_file"], r["status"], r["rows"], r["manifest_rows"])
                for r in records.to_pylist()
            ]
            days.append(BronzeDay(day, len(files), table.num_rows, statuses))
            log.info(f"bronze {stream.name} {day}: {len(files)} file(s), {table.num_rows} lines")
            del reads
            yield table

    bronze = lakehouse.write_batches(
        bronze_table(stream.name),
        BRONZE_SCHEMA,
        parts(),
        replace_dates=(start, end),
        partition_by=["date"],
    )
    files_written = lakehouse.write(
        files_table(stream.name),
        pa.concat_tables(file_rows) if file_rows else LANDED_FILES_SCHEMA.empty_table(),
        replace_dates=(start, end),
        partition_by=["date"],
        schema=LANDED_FILES_SCHEMA,
    )
    return BronzeResult(days=days, bronze=bronze, files=files_written)


# -- silver -------------------------------------------------------------------------------------
@dataclass
class SilverResult:
    verdicts: list[DayVerdict]
    silver: WriteResult
    quarantine: WriteResult
    audit: WriteResult
    bronze_read: TableRef
    preview: pd.DataFrame = field(default_factory=pd.DataFrame)
    rolled_back: dict[str, int] = field(default_factory=dict)

    @property
    def published(self) -> dict[str, int]:
        """The versions the audit commit (the publish record) names: what readers should pin."""
        return {
            self.silver.name: self.silver.version,
            self.quarantine.name: self.quarantine.version,
            self.bronze_read.name: self.bronze_read.version,
        }

    @property
    def held_days(self) -> list[DayVerdict]:
        return [v for v in self.verdicts if v.breaker_tripped]

    def totals(self) -> dict[str, int]:
        return {
            "rows_landed": sum(v.rows_landed for v in self.verdicts),
            "rows_silver": sum(v.rows_silver for v in self.verdicts),
            "rows_quarantined": sum(v.rows_quarantined for v in self.verdicts),
            "duplicates_dropped": sum(v.duplicates_dropped for v in self.verdicts),
        }


CHUNK_ROWS = 250_000  # bronze rows per Spark query: amortises the query cost, bounds memory


def _chunks(days: list[dt.date], statuses: dict[dt.date, list], limit: int) -> list[list[dt.date]]:
    """Consecutive days grouped so that each group's landed rows stay under ``limit``."""
    chunks: list[list[dt.date]] = []
    size = 0
    for day in days:
        rows = sum(s[2] or 0 for s in statuses.get(day, []))
        if chunks and size + rows <= limit:
            chunks[-1].append(day)
            size += rows
        else:
            chunks.append([day])
            size = rows
    return chunks


def roll_back_unpublished(lakehouse: Lakehouse, stream: str) -> dict[str, int]:
    """Undo silver/quarantine commits that no publish record names (a run died between them).

    Returns ``{table: version restored}``. Before publish records existed nothing is undone.
    """
    record = published_versions(lakehouse, stream)
    if record is None:
        return {}
    undone = {}
    for name in (silver_table(stream), quarantine_table(stream)):
        published = record.get(name)
        latest = lakehouse.version(name)
        if published is not None and latest is not None and latest > published:
            lakehouse.restore(
                name, published, {"restored_from": latest, "reason": "unpublished commit"}
            )
            undone[name] = published
    return undone


def silver_columns(stream: Stream) -> list[str]:
    derived = list(stream.derive().keys()) if stream.derive else []
    return ["date", *stream.field_names, *derived, *LINEAGE_COLUMNS]


def _statuses_by_day(
    lakehouse: Lakehouse, stream: Stream, start: dt.date, end: dt.date
) -> dict[dt.date, list]:
    if not lakehouse.exists(files_table(stream.name)):
        return {}
    records = lakehouse.read(files_table(stream.name), dates=(start, end)).to_pylist()
    result: dict[dt.date, list] = {}
    for r in records:
        result.setdefault(r["date"], []).append(
            (r["source_file"], r["status"], r["rows"], r["manifest_rows"])
        )
    return result


def bronze_to_silver(
    lakehouse: Lakehouse,
    spark,
    stream: Stream,
    policy: IngestPolicy,
    start: dt.date,
    end: dt.date,
    run_id: str,
    now: dt.datetime | None = None,
    bronze_version: int | None = None,
) -> SilverResult:
    """Parse, type, deduplicate and contract-check bronze rows of ``[start, end]`` day by day.

    Days whose files do not match their manifest, or with no files at all, are held back by the
    circuit breaker as well (when the policy requires a manifest).
    """
    from pyspark.sql import functions as F

    now = now or dt.datetime.now(dt.UTC)
    rolled_back = roll_back_unpublished(lakehouse, stream.name)
    for name, version in rolled_back.items():
        log.info(f"{name}: rolled back to v{version}, a commit no publish record names")
    bronze_ref = lakehouse.ref(bronze_table(stream.name), bronze_version)
    bronze = (
        spark.read.format("delta").option("versionAsOf", bronze_ref.version).load(bronze_ref.uri)
    )
    landed = bronze_lines(lakehouse, bronze_ref)
    statuses = _statuses_by_day(lakehouse, stream, start, end)
    columns = silver_columns(stream)
    quarantines: list[pa.Table] = []
    audits: list[pa.Table] = []
    verdicts: list[DayVerdict] = []
    previews: list[pa.Table] = []

    def day_statuses(day: dt.date) -> list:
        found = statuses.get(day) or [(f"{stream.name}/{day}/", "no_files", 0, None)]
        if not policy.require_manifest:
            found = [s for s in found if s[1] not in ("no_manifest", "no_files")]
        return found

    def contract_days(days: list[dt.date], candidates: pa.Table) -> pa.Table:
        """The contract for several days at once (its row rules in one pass, see contract.py);
        verdicts, the breaker and quarantine stay per day."""
        chunk_statuses = {day: day_statuses(day) for day in days}
        outcome = apply_contract(
            candidates,
            stream,
            policy,
            silver_columns=columns,
            file_statuses=chunk_statuses,
            days=days,
            now=now,
            raw_lines=landed,
        )
        quarantines.append(outcome.quarantine)
        for day in days:
            quarantines.append(
                file_quarantine_rows(chunk_statuses[day], day, stream.name, run_id, now)
            )
        audits.append(outcome.audit_rows(stream.name, run_id, now))
        verdicts.extend(outcome.verdicts)
        if sum(p.num_rows for p in previews) < 10:
            previews.append(outcome.silver.slice(0, 10))
        for v in outcome.verdicts:
            held = f" HELD: {v.breaker_reason}" if v.breaker_reason else ""
            log.info(
                f"silver {stream.name} {v.day}: landed {v.rows_landed}, silver {v.rows_silver}, "
                f"quarantined {v.rows_quarantined}, duplicates {v.duplicates_dropped}{held}"
            )
        return outcome.silver

    across_days = policy.unique_key_scope == "table"
    ledger = (
        KeyLedger.published(
            spark,
            lakehouse.uri(silver_table(stream.name)),
            lakehouse.version(silver_table(stream.name)),
            stream,
            start,
            end,
        )
        if across_days
        else None
    )

    def query(chunk: list[dt.date]) -> pa.Table:
        """One Spark query for several days (Sail's per-query cost dominates small days)."""
        rows = bronze.where(
            (F.col("date") >= F.lit(chunk[0].isoformat()).cast("date"))
            & (F.col("date") <= F.lit(chunk[-1].isoformat()).cast("date"))
        )
        return silver_candidates(
            rows, stream, with_payload=ledger is not None, across_days=across_days, with_raw=False
        ).toArrow()

    chunks = _chunks(days_between(start, end), statuses, CHUNK_ROWS)
    # The next chunk's query runs (in the engine's threads) while this chunk's contract runs
    # in Python: the contract holds one core, the query takes what is left. The key ledger
    # still marks the chunks one after the other, in landing order.
    prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="silver-query")

    def parts() -> Iterator[pa.Table]:
        pending = prefetch.submit(query, chunks[0])
        for i, chunk in enumerate(chunks):
            candidates = pending.result()
            if i + 1 < len(chunks):
                pending = prefetch.submit(query, chunks[i + 1])
            if ledger is not None:
                candidates = ledger.mark(candidates, stream.key)
            yield contract_days(chunk, candidates)

    try:
        parts_iter = parts()
        # The first chunk is computed eagerly for its schema; the rest stream into the commit.
        first = next(parts_iter)

        def all_parts() -> Iterator[pa.Table]:
            yield first
            yield from parts_iter

        silver = lakehouse.write_batches(
            silver_table(stream.name),
            first.schema,
            all_parts(),
            replace_dates=(start, end),
            partition_by=["date"],
            commit_metadata={
                "read_versions": {bronze_ref.name: bronze_ref.version},
                "run_id": run_id,
            },
        )
    finally:
        prefetch.shutdown(wait=True, cancel_futures=True)
    quarantine_data = (
        pa.concat_tables(quarantines) if quarantines else QUARANTINE_SCHEMA.empty_table()
    )
    audit_data = pa.concat_tables(audits) if audits else AUDIT_SCHEMA.empty_table()
    quarantine = lakehouse.write(
        quarantine_table(stream.name),
        quarantine_data,
        replace_dates=(start, end),
        partition_by=["date"],
        schema=QUARANTINE_SCHEMA,
    )
    # Written last: the audit commit is the publish record, naming the versions that belong
    # together. A run that dies before it leaves readers of the record on the previous ones.
    audit = lakehouse.write(
        audit_table(stream.name),
        audit_data,
        replace_dates=(start, end),
        partition_by=["date"],
        schema=AUDIT_SCHEMA,
        commit_metadata={
            PUBLISH_KEY: {
                silver.name: silver.version,
                quarantine.name: quarantine.version,
                bronze_ref.name: bronze_ref.version,
            },
            "run_id": run_id,
            "dates": [start.isoformat(), end.isoformat()],
        },
    )
    preview = pa.concat_tables(previews).slice(0, 10).to_pandas() if previews else pd.DataFrame()
    return SilverResult(
        verdicts=verdicts,
        silver=silver,
        quarantine=quarantine,
        audit=audit,
        bronze_read=bronze_ref,
        preview=preview,
        rolled_back=rolled_back,
    )


# -- references ---------------------------------------------------------------------------------
@dataclass
class ReferenceResult:
    snapshot: str
    verdict: DayVerdict
    silver: WriteResult | None
    quarantine: WriteResult
    preview: pd.DataFrame


def reference_to_silver(
    lakehouse: Lakehouse,
    spark,
    landing_root: str | Path,
    reference: Reference,
    policy: IngestPolicy,
    run_id: str,
    now: dt.datetime | None = None,
) -> ReferenceResult:
    """Publish the newest snapshot of a reference table, unless it breaks the contract.

    A snapshot whose bad share trips the breaker is not published: the previous silver version
    stays current, the snapshot's rows go to quarantine, and the caller's check fails.
    """
    from slipway.ingest.landing import LandedFile

    now = now or dt.datetime.now(dt.UTC)
    path = latest_snapshot(landing_root, reference.name)
    if path is None:
        raise FileNotFoundError(
            f"no snapshot for reference {reference.name!r} under {Path(landing_root) / 'reference' / reference.name}"
        )
    stat = path.stat()
    day = dt.date.fromisoformat(path.name.split("_")[-1].split(".")[0])
    landed = LandedFile(f"reference/{reference.name}", day, path, stat.st_size, stat.st_mtime_ns)
    rows = bronze_rows([read_file(landed)], day, run_id, now)
    stream = Stream(
        reference.name, reference.key, reference.key, reference.fields, reference.contract
    )
    candidates = silver_candidates(spark.createDataFrame(rows.to_pandas()), stream).toArrow()
    outcome = apply_contract(
        candidates,
        stream,
        policy,
        silver_columns=["date", *stream.field_names, *LINEAGE_COLUMNS],
        file_statuses={day: [(landed.relative, "ok", rows.num_rows, None)]},
        days=[day],
        now=now,
    )
    verdict = outcome.verdicts[0]
    silver = None
    if not verdict.breaker_tripped:
        data = outcome.silver.rename_columns(
            ["snapshot_date" if c == "date" else c for c in outcome.silver.column_names]
        )
        silver = lakehouse.write(
            silver_table(reference.name),
            data,
            mode="overwrite",
            commit_metadata={"snapshot": landed.relative, "run_id": run_id},
        )
    quarantine = lakehouse.write(
        quarantine_table(reference.name),
        outcome.quarantine,
        mode="overwrite",
        schema=QUARANTINE_SCHEMA,
    )
    return ReferenceResult(
        snapshot=landed.relative,
        verdict=verdict,
        silver=silver,
        quarantine=quarantine,
        preview=outcome.silver.slice(0, 10).to_pandas(),
    )


def processed_days(lakehouse: Lakehouse, stream: str) -> set[dt.date]:
    """Days the silver step has processed for ``stream`` (published or held), from its audit."""
    if not lakehouse.exists(audit_table(stream)):
        return set()
    return set(lakehouse.read(audit_table(stream), columns=["date"])["date"].to_pylist())


# -- checks -------------------------------------------------------------------------------------
@dataclass
class DayCheck:
    day: dt.date
    landed: int
    silver: int
    quarantined: int
    duplicates: int
    breaker_reason: str | None
    contract_violations: int

    @property
    def conserved(self) -> bool:
        return self.landed == self.silver + self.quarantined + self.duplicates

    @property
    def passed(self) -> bool:
        return self.conserved and self.breaker_reason is None and self.contract_violations == 0


def _counts_by_day(
    lakehouse: Lakehouse,
    name: str,
    start: dt.date,
    end: dt.date,
    version: int | None = None,
    lines_only: bool = False,
) -> dict[dt.date, int]:
    if not lakehouse.exists(name):
        return {}
    # File-level quarantine rows (source_line 0) name a file, they are not landed lines.
    where = pc.field("source_line") > 0 if lines_only else None
    dates = lakehouse.read(
        name, columns=["date"], dates=(start, end), version=version, filter=where
    )["date"]
    counts = pc.value_counts(dates).to_pylist()
    return {c["values"]: c["counts"] for c in counts}


def check_silver(
    lakehouse: Lakehouse, stream: Stream, start: dt.date, end: dt.date
) -> list[DayCheck]:
    """Recompute, from the tables themselves, whether each day is conserved, published and clean.

    Landed rows come from bronze, duplicates from the audit, silver and quarantine are counted,
    and the published silver rows are validated against the contract again. Every table is read
    at the version the latest publish record names, so a run that died between its commits is
    judged by what was published, not by a half-written state.
    """
    pinned = published_versions(lakehouse, stream.name) or {}
    names = (bronze_table(stream.name), silver_table(stream.name), quarantine_table(stream.name))
    bronze_v, silver_v, quarantine_v = (pinned.get(n) for n in names)
    landed = _counts_by_day(lakehouse, names[0], start, end, version=bronze_v)
    silver = _counts_by_day(lakehouse, names[1], start, end, version=silver_v)
    quarantined = _counts_by_day(lakehouse, names[2], start, end, quarantine_v, lines_only=True)
    audit = (
        {
            r["date"]: r
            for r in lakehouse.read(audit_table(stream.name), dates=(start, end)).to_pylist()
        }
        if lakehouse.exists(audit_table(stream.name))
        else {}
    )
    published = (
        lakehouse.read(silver_table(stream.name), dates=(start, end), version=silver_v)
        if lakehouse.exists(silver_table(stream.name))
        else None
    )
    results = []
    for day in days_between(start, end):
        violations = 0
        if published is not None and silver.get(day, 0):
            day_rows = published.filter(pc.equal(published["date"], pa.scalar(day, pa.date32())))
            violations = len(_contract_failures(contract_frame(day_rows), stream))
        record = audit.get(day)
        results.append(
            DayCheck(
                day=day,
                landed=landed.get(day, 0),
                silver=silver.get(day, 0),
                quarantined=quarantined.get(day, 0),
                duplicates=int(record["duplicates_dropped"]) if record else 0,
                breaker_reason=(
                    record["breaker_reason"] if record else "never processed by silver"
                ),
                contract_violations=violations,
            )
        )
    return results

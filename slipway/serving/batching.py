"""Opportunistic micro-batching: whatever queued up while the scorer was busy is scored together.

A scoring pass costs a few milliseconds of pandas overhead per call (the on-demand function and
``model_frame`` build DataFrames), almost independent of the number of rows. One worker thread
takes every request waiting in the queue and scores them in a single pass, so under load the
per-request cost falls instead of requests piling up, and no request ever waits for a timer: an
idle service scores each request alone, immediately. Semantics are unchanged: rows are scored
independently, exactly as ``/score/batch`` scores a list. The pass's decisions are appended to
the served log (``record``) on the same thread, before any of its requests is answered.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from slipway.serving.request import PreparedTransaction
from slipway.serving.scorer import OnlineScorer, ScoreResult

log = logging.getLogger(__name__)


@dataclass
class _Job:
    prepared: list[PreparedTransaction]
    include_features: bool
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """A single scoring thread in front of an ``OnlineScorer``; ``submit`` returns a future."""

    def __init__(
        self,
        scorer: OnlineScorer,
        max_rows: int = 1024,
        record: Callable[[list[PreparedTransaction], list[ScoreResult]], None] | None = None,
    ) -> None:
        self.scorer = scorer
        self.max_rows = max_rows
        # The served log's append, once per pass and before any answer: a decision is kept
        # before it is answered, at one write per pass instead of a thread hop and a write per
        # request.
        self.record = record
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="slipway-scorer", daemon=True)
        self._thread.start()
        self.passes = 0
        self.rows = 0

    def submit(self, prepared: list[PreparedTransaction], include_features: bool = False) -> Future:
        job = _Job(prepared, include_features)
        self._queue.put(job)
        return job.future

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _take(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, rows = [first], len(first.prepared)
        while rows < self.max_rows:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            rows += len(job.prepared)
        return jobs, False

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = self._take(first)
            self._score(jobs)
            if stop:
                return

    def _score(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        prepared = [p for job in jobs for p in job.prepared]
        try:
            results = self.scorer.score_prepared(
                prepared, include_features=any(j.include_features for j in jobs)
            )
        except BaseException as exc:  # handed to every waiting request
            for job in jobs:
                job.future.set_exception(exc)
            return
        self.passes += 1
        self.rows += len(prepared)
        offset, answers = 0, []
        for job in jobs:
            mine: list[ScoreResult] = results[offset : offset + len(job.prepared)]
            offset += len(job.prepared)
            queued = round((started - job.queued_at) * 1000.0, 3)
            for result in mine:
                result.timing_ms = {"queue": queued, **result.timing_ms, "pass_rows": len(prepared)}
            answers.append(mine)
        if self.record is not None:
            try:  # HttpDecisions.record logs its own failures; nothing may leave a caller waiting
                self.record(prepared, results)
            except Exception:
                log.exception("served log: the pass's %d decision(s) not recorded", len(results))
        for job, mine in zip(jobs, answers, strict=True):
            if not job.include_features:
                for result in mine:
                    result.features = {}
            job.future.set_result(mine)

    def stats(self) -> dict[str, Any]:
        return {"passes": self.passes, "rows": self.rows}

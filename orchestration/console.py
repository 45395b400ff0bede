"""What `make run` prints: one line per step with its duration and key figures, not the event log.

Dagster's console logger prints every event at DEBUG (about 700 lines for the main job), which
buries what a person running the job wants to see. :func:`step_console` replaces it for the run:
the step's own progress messages (the ``context.log.info`` lines long steps emit) as they come,
then one line when the step ends, with its duration and the figures its materializations carry
(rows, table version), and every failed check or step. The full event log stays in the Dagster UI
(and ``--verbose`` keeps Dagster's own console logger).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TextIO

import dagster as dg

# A long step's progress messages: the first, then at most one per this many seconds.
PROGRESS_EVERY_S = 5.0

# Metadata keys worth a place on a step's line, in the order shown (the rest stay in the UI).
FIGURES = (
    ("rows_written", "rows"),
    ("num_rows", "rows"),
    ("rows", "rows"),
    ("quarantined", "quarantined"),
    ("table_version", "v"),
)


def _figure(value: Any) -> str | None:
    raw = getattr(value, "value", value)
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int):
        return f"{raw:,}"
    if isinstance(raw, float):
        return f"{raw:,.4g}"
    return None


def materialization_figures(metadata: dict[str, Any]) -> str:
    """``rows 12,345 · v7`` from a materialization's metadata (empty when it has none of them)."""
    parts: list[str] = []
    seen: set[str] = set()
    for key, label in FIGURES:
        shown = _figure(metadata.get(key))
        if shown is None or label in seen:
            continue
        seen.add(label)
        parts.append(f"v{shown}" if label == "v" else f"{label} {shown}")
    return " · ".join(parts)


def _root_message(error: Any) -> str:
    """The first line of the innermost cause: the asset's own error, not Dagster's wrapper."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    lines = (getattr(error, "message", "") or "").strip().splitlines()
    return lines[0] if lines else "see the run in the UI"


class StepConsole(logging.Handler):
    """Turns a run's log records into one readable line per step (see the module docstring)."""

    def __init__(
        self,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        progress_every: float = PROGRESS_EVERY_S,
    ):
        super().__init__(level=logging.DEBUG)
        self.out = out or sys.stdout
        self.clock = clock
        self.progress_every = progress_every
        self.figures: dict[str, list[str]] = defaultdict(list)
        self.rows: dict[str, int] = defaultdict(int)
        self.last_progress: dict[str, float] = {}
        self.held: dict[str, tuple[int, str]] = {}
        self.started = clock()

    def _progress(self, step: str, message: str) -> None:
        """A step's progress: the first message, then at most one every ``progress_every`` s."""
        now = self.clock()
        last = self.last_progress.get(step)
        if last is None or now - last >= self.progress_every:
            skipped, _ = self.held.pop(step, (0, ""))
            more = f" (+{skipped} more)" if skipped else ""
            self._say(f"  {step}: {message}{more}")
            self.last_progress[step] = now
        else:
            skipped, _ = self.held.get(step, (0, ""))
            self.held[step] = (skipped + 1, message)

    def _flush_progress(self, step: str) -> None:
        skipped, message = self.held.pop(step, (0, ""))
        self.last_progress.pop(step, None)
        if skipped:
            earlier = f" (+{skipped - 1} more)" if skipped > 1 else ""
            self._say(f"  {step}: {message}{earlier}")

    def _say(self, line: str) -> None:
        elapsed = self.clock() - self.started
        print(f"[{elapsed:6.0f}s] {line}", file=self.out, flush=True)

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        step = meta.get("step_key") or ""
        if event is None:
            # A step's own message (context.log.info): its progress on a long step.
            message = meta.get("orig_message") or record.getMessage()
            if record.levelno >= logging.WARNING and step:
                self._flush_progress(step)
                self._say(f"  {step}: {message}")
            elif record.levelno >= logging.INFO and step:
                self._progress(step, message)
            elif record.levelno >= logging.WARNING:
                self._say(message)
            return
        kind = event.event_type_value
        data = event.event_specific_data
        if kind == "STEP_START":
            self._say(f"▸ {step}")
        elif kind == "ASSET_MATERIALIZATION":
            materialization = data.materialization
            figures = materialization_figures(dict(materialization.metadata))
            name = materialization.asset_key.to_user_string()
            if materialization.partition:
                name = f"{name}[{materialization.partition}]"
            self.figures[step].append(figures if name == step else f"{name} {figures}".strip())
            rows = _figure(materialization.metadata.get("rows_written"))
            if rows is not None:
                self.rows[step] += int(rows.replace(",", ""))
        elif kind == "ASSET_CHECK_EVALUATION" and not data.passed:
            self._say(
                f"  ✗ check {data.asset_key.to_user_string()}:{data.check_name}"
                f" ({data.severity.value.lower()}): {data.description or ''}".rstrip()
            )
        elif kind == "STEP_SUCCESS":
            self._flush_progress(step)
            seconds = (data.duration_ms or 0) / 1000
            shown = self.figures.pop(step, [])
            rows = self.rows.pop(step, 0)
            if len(shown) == 1:
                head = shown[0]
            elif shown:
                head = f"{len(shown)} partitions" + (f", rows {rows:,} in all" if rows else "")
            else:
                head = ""
            self._say(f"✓ {step} {seconds:.1f}s {head}".rstrip())
        elif kind == "STEP_FAILURE":
            self._flush_progress(step)
            self._say(f"✗ {step} failed: {_root_message(data.error)}")
        elif kind == "STEP_SKIPPED":
            self._say(f"- {step} skipped (an upstream step failed)")


@dg.logger(
    description="One readable line per step (duration, rows, version); see orchestration.console."
)
def step_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("slipway.console", level=logging.DEBUG)
    logger.addHandler(StepConsole())
    return logger


def execute_readable(
    job: dg.JobDefinition, run_config: dict[str, Any] | None = None, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    """Run ``job`` in process with :func:`step_console` in place of Dagster's console logger.

    The event log (what the UI shows) is unchanged: loggers only decide what reaches the terminal.
    """
    config = {**(run_config or {}), "loggers": {"console": {"config": {}}}}
    return job.with_logger_defs({"console": step_console}).execute_in_process(
        run_config=config, **kwargs
    )

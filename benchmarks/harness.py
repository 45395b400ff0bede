"""Shared helpers: timing medians, peak memory of a child process, machine description."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    """One line that says what the numbers were measured on."""
    mem = psutil.virtual_memory().total / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = cpu
    return f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB RAM, Python {platform.python_version()}, {platform.system()}"


def median_time(
    fn: Callable[[], Any], repeats: int = 5, warmup: int = 1
) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``repeats`` runs after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def run_child(
    code: str,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """Run Python ``code`` in a child process; returns its JSON stdout plus peak RSS (MiB).

    Peak memory is sampled from the child and its children every 50 ms (RSS sum), which is what
    a machine's memory limit sees.
    """
    # Output goes to files, not pipes: a chatty child (Dagster logs) would fill a pipe's buffer
    # and block forever, since the parent only reads after the child exits.
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *(argv or [])],
            stdout=out_file,
            stderr=err_file,
            env={**os.environ, **(env or {})},
            text=True,
        )
        peak = 0
        parent = psutil.Process(proc.pid)
        started = time.perf_counter()
        while proc.poll() is None:
            try:
                rss = parent.memory_info().rss + sum(
                    c.memory_info().rss for c in parent.children(recursive=True)
                )
                peak = max(peak, rss)
            except psutil.Error:
                pass
            if time.perf_counter() - started > timeout:
                proc.kill()
                raise TimeoutError(f"benchmark child exceeded {timeout}s")
            time.sleep(0.05)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}):\n{err[-4000:]}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    result["peak_rss_mib"] = round(peak / 2**20, 1)
    result["wall_s"] = round(time.perf_counter() - started, 2)
    return result


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    return path


def code_at(ref: str) -> str:
    """``slipway`` and ``feature_repo`` (found beside the package) as of git ``ref``, extracted
    into a temporary folder kept for the run: an earlier commit's code for a same-run baseline
    (put first on a child's ``sys.path``)."""
    folder = Path(tempfile.mkdtemp(prefix=f"slipway-{ref[:12]}-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "slipway", "feature_repo"],
        check=True,
        capture_output=True,
    ).stdout
    with tempfile.TemporaryFile() as tar:
        tar.write(archive)
        tar.seek(0)
        with tarfile.open(fileobj=tar) as bundle:
            bundle.extractall(folder, filter="data")
    return str(folder)

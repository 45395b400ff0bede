"""Run dbt inside this Python process (``dbtRunner``), reusing parsed manifests.

Why: a ``dbt build`` subprocess (what dagster-dbt's ``DbtCliResource.cli`` starts) spends most of
its ~8-10 s (15+ s under load) on this 2-core machine importing dbt-core and parsing the project,
before ~1 s of SQL; the daily job runs it twice per run. In-process, the import is paid once per
process and a parse only when no parsed manifest fits the invocation. Measured as Dagster step
wall time (``dg.materialize``, test fixtures, load 3-5 on 2 cores, median of 5), subprocess ->
in-process: one-day partitioned build 14.3 -> 4.3 s in a fresh process, 13.7 -> 2.2 s for a new
window later in the same process, 10.6 -> 1.0 s for a window seen before; full-refresh build
10.7 -> 4.2 s fresh, 9.6 -> 1.25 s later.

What "fits" means, and the traps that shaped this module (each one seen here):

* **vars are rendered at parse time.** ``dbt_project`` puts the run window into a model config
  (``replace_dates=slipway_window()``) and into a source's ``meta`` (``start_date``/``end_date``);
  dbt renders both when it parses. A manifest parsed without vars and handed to
  ``dbtRunner(manifest=...)`` with ``--vars`` builds the window's rows (the SQL is compiled at run
  time, with the new vars) but the plugin sees no window and *overwrites the whole Delta table*
  with them. So parsed manifests are cached per (cli vars, profile, target, project files,
  installed dbt versions): a new window is parsed once (~1 s warm), a repeated one and every
  full-refresh build are not parsed at all.
* **dbt mutates the manifest it runs with** (ephemeral models are compiled into it, CTE-injected
  flags and all): a second build with the same ``Manifest`` object fails with "Table with name
  __dbt__cte__stg_transactions_window does not exist". Every invocation gets a fresh copy.
* **``copy.deepcopy``/``pickle`` corrupt a dbt 1.11 ``Manifest``**: its ``__reduce_ex__`` leaves out
  the ``fixtures`` field, so every lookup after it shifts by one ("RefableLookup.find() missing 1
  required positional argument"). :func:`_fresh_copy` rebuilds it field by field instead.
* **process-global state:** flags, the adapter registry, the event manager and dbt-duckdb's DuckDB
  environment (a class attribute that outlives the invocation, holding every source table loaded
  into memory and the plugin instances with their per-invocation state). Every in-process dbt
  call holds :data:`slipway.gold.dbt_project.DBT_LOCK`, the DuckDB environment is dropped before
  and after each invocation (a fresh one per invocation, as a subprocess would have: no stale
  sources, no leaked memory, ``threads: 1`` as the profile requires), and the event callbacks are
  detached afterwards. ``dbtRunner`` turns any exception, ``KeyboardInterrupt`` and Dagster's
  run-termination interrupt included, into a failed result: interrupts are re-raised here.
* **environment:** dbt reads ``os.environ`` when an invocation starts (profiles.yml's
  ``env_var``) and the lakehouse plugin reads its receipts path from it, so the invocation's
  variables are set in ``os.environ`` for its duration, under the lock, and restored after.

The subprocess path stays available (``SLIPWAY_DBT_SUBPROCESS=1``, see :func:`use_subprocess`):
it isolates dbt completely (a crash, a leak or an adapter that is not safe to run twice in one
process cannot touch the caller), it runs a ``dbt`` other than this environment's, and it is
dagster-dbt's supported path, so it is the reference the in-process events are compared with in
the tests. No Dagster import here: ``assets/gold.py`` turns the events into Dagster events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pprint
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway.gold.dbt_project import (
    DBT_LOCK,
    DBT_PROFILES_DIR,
    DBT_PROJECT_DIR,
    PARTIAL_PARSE_FILE,
    environ,
    installed_versions,
    manifest_is_stale,
    source_fingerprint,
    target_dir,
)

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

SUBPROCESS_ENV = "SLIPWAY_DBT_SUBPROCESS"
# dbt's structured events that carry a node's result (what dagster-dbt turns into outputs/checks).
RESULT_EVENTS = frozenset({"LogModelResult", "LogTestResult", "LogSeedResult", "LogSnapshotResult"})
_CACHE_SIZE = 8  # a window's manifest is ~MBs; most are used once (a new day each run)


def use_subprocess() -> bool:
    """True when ``SLIPWAY_DBT_SUBPROCESS`` asks for a dbt subprocess per invocation."""
    return os.environ.get(SUBPROCESS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class DbtParseError(RuntimeError):
    """dbt could not parse the project (the message carries dbt's errors)."""


@dataclasses.dataclass
class DbtInvocation:
    """One in-process dbt invocation: its result events, shaped like dbt's JSON log lines."""

    args: list[str]
    success: bool
    events: list[dict[str, Any]]  # RESULT_EVENTS, as ``dbt --log-format json`` would print them
    errors: list[str]  # the messages of error-level events
    exception: BaseException | None
    target_path: Path
    manifest_from: str  # "memory" (cached), "partial parse file" or "parse"
    parse_seconds: float
    run_seconds: float
    # dbt's own result object (``dbtRunnerResult.result``): e.g. ``dbt show``'s table, or the
    # freshness results of ``dbt source freshness``, which have no result event above
    result: Any = None

    @property
    def command(self) -> str:
        return " ".join(["dbt", *self.args])

    def error_message(self) -> str:
        """What went wrong, in dbt's words (empty when nothing did)."""
        parts = list(dict.fromkeys(self.errors))
        if self.exception is not None and str(self.exception) not in "\n".join(parts):
            parts.append(f"{type(self.exception).__name__}: {self.exception}")
        return "\n\n".join(parts)


class _Collector:
    """dbtRunner callback: keeps result events (as dicts) and error messages; never raises."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.failure: Exception | None = None

    def __call__(self, msg: Any) -> None:
        try:
            info = msg.info
            if info.level == "error":
                self.errors.append(info.msg)
            if info.name in RESULT_EVENTS:
                from dbt_common.events.functions import msg_to_dict

                # the exact dict dbt's JSON logger prints, so dagster-dbt reads it unchanged
                self.events.append(msg_to_dict(msg))
        except Exception as e:  # an exception here would surface inside dbt, far from its cause
            self.failure = self.failure or e


# -- manifests ------------------------------------------------------------------------------------
_MANIFESTS: OrderedDict[tuple[Any, ...], Manifest] = OrderedDict()


def _cache_key(
    project_dir: Path, profiles_dir: Path, cli_vars: str, profile: str | None, target: str | None
) -> tuple[Any, ...]:
    profiles = profiles_dir / "profiles.yml"
    return (
        tuple(sorted(installed_versions().items())),
        os.fspath(project_dir),
        os.fspath(profiles_dir),
        source_fingerprint(project_dir),
        profiles.stat().st_mtime if profiles.exists() else None,
        cli_vars,
        profile,
        target,
    )


def _env_vars_unchanged(manifest: Manifest) -> bool:
    """dbt records the env vars a parse read (``env_var()`` in models, yml): all still equal?"""
    from dbt.constants import DEFAULT_ENV_PLACEHOLDER

    for name, value in manifest.env_vars.items():
        now = os.environ.get(name)
        if now != value and not (value == DEFAULT_ENV_PLACEHOLDER and now is None):
            return False
    return True


def _fresh_copy(manifest: Manifest) -> Manifest:
    """An independent copy for one invocation (dbt mutates the manifest it runs with).

    Field by field: ``copy.deepcopy`` goes through ``Manifest.__reduce_ex__``, which in dbt 1.11
    leaves out ``fixtures`` and shifts every later field (lookups then fail). Private fields are
    caches and a lock: the copy rebuilds them on first use.
    """
    import copy

    from dbt.contracts.graph.manifest import Manifest

    fields = {
        f.name: copy.deepcopy(getattr(manifest, f.name))
        for f in dataclasses.fields(manifest)
        if f.init and not f.name.startswith("_")
    }
    return Manifest(**fields)


def _vars_hash(cli_vars: Mapping[str, Any], profile: str | None, target: str | None) -> str:
    """dbt's ``state_check.vars_hash`` for these cli vars (``ManifestLoader.build_manifest_state_check``)."""
    from dbt.contracts.files import FileHash
    from dbt.version import __version__

    text = "\x00".join([pprint.pformat(dict(cli_vars)), profile or "", target or "", __version__])
    return FileHash.from_contents(text).checksum


def _load_partial_parse_file(
    project_dir: Path, cli_vars: Mapping[str, Any], profile: str | None, target: str | None
) -> Manifest | None:
    """The manifest ``ensure_manifest`` saved (``target/<usecase>/partial_parse.msgpack``), when
    it fits.

    It fits when the project's manifest is fresh (files and dbt versions, see
    ``manifest_is_stale``) and it was parsed with these cli vars, profile and target (a hand-run
    ``dbt build --vars ...`` in the project leaves one parsed with its vars). Loading takes
    ~0.1 s where a cold parse takes several.
    """
    from dbt.contracts.graph.manifest import Manifest

    usecase = cli_vars.get("usecase")  # each use case's manifest is under target/<usecase>/
    path = target_dir(project_dir, usecase) / PARTIAL_PARSE_FILE
    if not path.exists() or manifest_is_stale(project_dir, usecase):
        return None
    try:
        manifest = Manifest.from_msgpack(path.read_bytes())
    except Exception:  # half-written, or from another dbt: parse instead
        return None
    if manifest.state_check.vars_hash.checksum != _vars_hash(cli_vars, profile, target):
        return None
    if not _env_vars_unchanged(manifest):
        return None
    return manifest


def _parse(
    project_dir: Path,
    profiles_dir: Path,
    cli_vars: str,
    profile_args: Sequence[str],
) -> Manifest:
    """``dbt parse`` in-process (no artifacts kept) for exactly these vars."""
    from dbt.cli.main import dbtRunner

    tmp = Path(tempfile.mkdtemp(prefix="slipway-dbt-parse-"))
    collector = _Collector()
    try:
        args = [
            "parse",
            "--project-dir", os.fspath(project_dir),
            "--profiles-dir", os.fspath(profiles_dir),
            "--target-path", os.fspath(tmp),
            "--log-path", os.fspath(tmp),
            "--no-partial-parse",
            "--no-write-json",
            "--quiet",
            *profile_args,
            *(["--vars", cli_vars] if cli_vars else []),
        ]  # fmt: skip
        result = dbtRunner(callbacks=[collector]).invoke(args)
    finally:
        _detach_callbacks()
        shutil.rmtree(tmp, ignore_errors=True)
    _reraise_interrupt(result.exception)
    if not result.success or result.result is None:
        details = "\n".join(dict.fromkeys(collector.errors)) or str(result.exception)
        raise DbtParseError(f"dbt parse failed for {project_dir}: {details}")
    return result.result


def _manifest_for(
    project_dir: Path,
    profiles_dir: Path,
    vars: Mapping[str, Any],
    profile: str | None,
    target: str | None,
) -> tuple[Manifest, str]:
    """A pristine parsed manifest for these vars, and where it came from. Call under the lock."""
    cli_vars = json.dumps(dict(vars), sort_keys=True, default=str) if vars else ""
    key = _cache_key(project_dir, profiles_dir, cli_vars, profile, target)
    cached = _MANIFESTS.get(key)
    if cached is not None and _env_vars_unchanged(cached):
        _MANIFESTS.move_to_end(key)
        return cached, "memory"
    profile_args = [
        *(["--profile", profile] if profile else []),
        *(["--target", target] if target else []),
    ]
    manifest, origin = None, "partial parse file"
    if profiles_dir == project_dir:  # its staleness check covers profiles.yml only there
        # dbt hashes the *parsed* cli vars (YAML, a superset of JSON): json.loads matches them
        manifest = _load_partial_parse_file(
            project_dir, json.loads(cli_vars) if cli_vars else {}, profile, target
        )
    if manifest is None:
        manifest, origin = _parse(project_dir, profiles_dir, cli_vars, profile_args), "parse"
    _MANIFESTS[key] = manifest
    while len(_MANIFESTS) > _CACHE_SIZE:
        _MANIFESTS.popitem(last=False)
    return manifest, origin


def clear_manifest_cache() -> None:
    """Forget every parsed manifest (the next invocation parses or loads the saved one)."""
    with DBT_LOCK:
        _MANIFESTS.clear()


# -- process-global dbt state ---------------------------------------------------------------------
def _reset_duckdb_environment() -> None:
    """Drop dbt-duckdb's process-wide DuckDB environment (in-memory database and plugins).

    ``DuckDBConnectionManager._ENV`` survives the invocation that created it and is reused by the
    next one with equal credentials: its in-memory tables (every source loaded) and its plugin
    instances (with per-invocation state such as the versions read) would carry over.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another adapter: nothing of ours to reset
        return
    with DuckDBConnectionManager._LOCK:
        env, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
    if env is not None:
        with contextlib.suppress(Exception):  # closing is a courtesy: the next one is new anyway
            env.close()


def _detach_callbacks() -> None:
    """Remove this invocation's callbacks from dbt's global event manager."""
    from dbt_common.events.event_manager_client import get_event_manager

    get_event_manager().callbacks = []


def _reraise_interrupt(exception: BaseException | None) -> None:
    """dbtRunner returns even KeyboardInterrupt as a result: an interrupt must stop the caller."""
    if exception is not None and not isinstance(exception, Exception):
        raise exception


# -- invoking -------------------------------------------------------------------------------------
CONSOLE_LEVEL_ENV = "SLIPWAY_DBT_LOG_LEVEL"


def _console_log_level() -> str | None:
    """dbt's console log level for in-process runs (``SLIPWAY_DBT_LOG_LEVEL``), None: dbt's own."""
    level = os.environ.get(CONSOLE_LEVEL_ENV, "").strip().lower()
    if level and level not in ("debug", "info", "warn", "error", "none"):
        raise ValueError(f"{CONSOLE_LEVEL_ENV} must be debug, info, warn, error or none: {level!r}")
    return level or None


def invoke(
    args: Sequence[str],
    *,
    target_path: Path,
    vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    project_dir: Path = DBT_PROJECT_DIR,
    profiles_dir: Path = DBT_PROFILES_DIR,
    profile: str | None = None,
    target: str | None = None,
) -> DbtInvocation:
    """Run ``dbt <args>`` in this process with a parsed manifest that fits ``vars``.

    ``args`` is the command and its options (``["build", "--select", ...]``) without
    ``--vars``/``--project-dir``/``--profiles-dir``/``--target-path``: pass ``vars`` (the
    manifest is chosen by them) and the other keywords instead. ``env`` is set in ``os.environ``
    for the invocation. dbt's own log lines go to stdout as usual (at the console level
    ``SLIPWAY_DBT_LOG_LEVEL`` names, e.g. ``warn`` on ``make run``'s terminal; the log file under
    the target path keeps everything); the structured result events come back in
    :attr:`DbtInvocation.events` whatever the console shows. Raises :class:`DbtParseError` when the project does
    not parse, re-raises interrupts; any other dbt failure is ``success=False`` with its errors.
    """
    from dbt.cli.main import dbtRunner

    args = list(args)
    reserved = ("--vars", "--project-dir", "--profiles-dir", "--target-path", "--log-path")
    if clash := [a for a in args if a.split("=", 1)[0] in reserved]:
        raise ValueError(f"pass {clash} as keyword arguments of invoke(), not in args")
    project_dir, profiles_dir = Path(project_dir).absolute(), Path(profiles_dir).absolute()
    target_path = Path(target_path).absolute()
    cli_vars = json.dumps(dict(vars), sort_keys=True, default=str) if vars else ""
    full_args = [
        *args,
        "--project-dir", os.fspath(project_dir),
        "--profiles-dir", os.fspath(profiles_dir),
        "--target-path", os.fspath(target_path),
        "--log-path", os.fspath(target_path),
        "--no-use-colors",
        *(
            ["--log-level", console_level, "--log-level-file", "debug"]
            if (console_level := _console_log_level())
            else []
        ),
        *(["--profile", profile] if profile else []),
        *(["--target", target] if target else []),
        *(["--vars", cli_vars] if cli_vars else []),
    ]  # fmt: skip
    collector = _Collector()
    with DBT_LOCK, environ(dict(env or {})):
        started = time.perf_counter()
        manifest, origin = _manifest_for(project_dir, profiles_dir, vars or {}, profile, target)
        parsed = time.perf_counter()
        _reset_duckdb_environment()
        try:
            runner = dbtRunner(manifest=_fresh_copy(manifest), callbacks=[collector])
            result = runner.invoke(full_args)
        finally:
            _reset_duckdb_environment()
            _detach_callbacks()
        finished = time.perf_counter()
    _reraise_interrupt(result.exception)
    exception = result.exception or collector.failure
    return DbtInvocation(
        args=full_args,
        success=bool(result.success) and not collector.errors and collector.failure is None,
        events=collector.events,
        errors=collector.errors,
        exception=exception,
        target_path=target_path,
        manifest_from=origin,
        parse_seconds=parsed - started,
        run_seconds=finished - parsed,
        result=result.result,
    )

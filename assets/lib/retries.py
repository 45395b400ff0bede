"""One retry policy for the steps that talk to remote services, and which failures it retries.

Object storage, Spark Connect, Redis, the Feast registry and MLflow's Postgres fail now and then
for reasons that pass (a dropped connection, a timeout, a throttled request, a Delta commit that
lost a race). Those steps carry :data:`REMOTE_RETRY_POLICY`; a retry is safe because every
partitioned write replaces exactly its date range in one commit (``Lakehouse.write``), and the
unpartitioned ones overwrite or move an alias.

A failure that would fail again the same way (a broken contract, a missing champion, a bug) is
not retried: :func:`retry_transient_only` lets only errors that look transient reach the policy
and turns every other one into a ``Failure`` that forbids retries, so a data problem fails the
run at once with its own message.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import dagster as dg

# The numbers, in one place: 3 more attempts, 10 s, 20 s, 40 s apart (each +/- jitter).
REMOTE_MAX_RETRIES = 3
REMOTE_RETRY_DELAY_S = 10.0

REMOTE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=REMOTE_MAX_RETRIES,
    delay=REMOTE_RETRY_DELAY_S,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)

# OSErrors that name a local, lasting condition rather than a flaky remote.
_LASTING_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
# Exception class names (of the clients' own hierarchies, matched by name so this module imports
# none of them) that mean "try again": grpc/Spark Connect, redis, SQLAlchemy/psycopg, botocore,
# delta-rs commit conflicts and the lakehouse's own ConcurrentWriteError (a streamed write that
# lost a commit race: the step's retry replays it against the new version), HTTP clients.
_TRANSIENT_NAMES = (
    "timeout",
    "connection",
    "unavailable",
    "inactiverpc",
    "grpc",
    "operationalerror",
    "throttl",
    "commitfailed",
    "concurrentwrite",
    "serviceerror",
    "endpointconnection",
)


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it was raised from) looks like a passing remote failure."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and not isinstance(current, _LASTING_OS_ERRORS):
            return True
        name = type(current).__name__.lower()
        if any(part in name for part in _TRANSIENT_NAMES):
            return True
        current = current.__cause__ or current.__context__
    return False


F = TypeVar("F", bound=Callable[..., Any])


def _no_retry(err: Exception) -> dg.Failure:
    return dg.Failure(
        description=f"{type(err).__name__}: {err}",
        allow_retries=False,
        metadata={"not_retried": "the error is not transient"},
    )


@contextlib.contextmanager
def _only_transient_retried() -> Iterator[None]:
    """Let transient errors (and Dagster's own) through; turn any other into a no-retry Failure."""
    try:
        yield
    except (dg.Failure, dg.DagsterError):
        raise
    except Exception as err:
        if is_transient(err):
            raise
        raise _no_retry(err) from err


def retry_transient_only(fn: F) -> F:
    """Wrap an asset's compute function so only transient errors are retried by its policy.

    The signature (and so Dagster's view of the context, config and resources) is ``fn``'s;
    generator functions stay generators. ``dg.Failure`` and Dagster's own errors pass unchanged.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with _only_transient_retried():
                yield from fn(*args, **kwargs)

        return generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def function(*args: Any, **kwargs: Any) -> Any:
        with _only_transient_retried():
            return fn(*args, **kwargs)

    return function  # type: ignore[return-value]

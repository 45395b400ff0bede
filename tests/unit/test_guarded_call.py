"""The online-read guard: a thread-run call is abandoned at the deadline; an inline call (one
that bounds itself) runs on the caller's thread, and its failures and late answers trip the
cooldown the same way."""

from __future__ import annotations

import threading
import time

import pytest

from slipway.serving.features import GuardedCall, StoreUnavailable


def test_a_thread_run_call_is_abandoned_at_the_deadline() -> None:
    guard = GuardedCall(deadline_s=0.05, cooldown_s=60)
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="did not answer within 50 ms"):
        guard(lambda: release.wait(5))
    assert time.monotonic() - started < 1.0
    release.set()
    with pytest.raises(StoreUnavailable, match="skipping the store"):
        guard(lambda: 1)


def test_an_inline_call_runs_on_the_calling_thread() -> None:
    guard = GuardedCall(deadline_s=1.0)
    assert guard(threading.get_ident, inline=True) == threading.get_ident()
    assert guard._worker is None  # no helper thread was started
    assert guard(threading.get_ident) != threading.get_ident()  # the thread-run path


def test_an_inline_failure_trips_the_cooldown() -> None:
    guard = GuardedCall(deadline_s=1.0, cooldown_s=60)

    def refused() -> None:
        raise ConnectionRefusedError("nothing listens")

    with pytest.raises(StoreUnavailable, match="ConnectionRefusedError: nothing listens"):
        guard(refused, inline=True)
    assert "nothing listens" in (guard.down_reason or "")
    with pytest.raises(StoreUnavailable, match="skipping the store"):
        guard(lambda: 1, inline=True)
    guard.reset()
    assert guard(lambda: 2, inline=True) == 2


def test_a_late_inline_answer_is_returned_and_trips_the_cooldown() -> None:
    guard = GuardedCall(deadline_s=0.01, cooldown_s=60)
    assert guard(lambda: time.sleep(0.05) or "late", inline=True) == "late"
    assert "over the 10 ms deadline" in (guard.down_reason or "")
    fast = GuardedCall(deadline_s=1.0)
    assert fast(lambda: "on time", inline=True) == "on time" and fast.down_reason is None

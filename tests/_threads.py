"""Thread helpers shared by the threaded tests: start on a barrier, bound
every wait, re-raise worker exceptions in the test thread; check that a
held critical section holds a write back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

JOIN_TIMEOUT = 60.0


def run_threads(targets: list[Callable[[], Any]], timeout: float = JOIN_TIMEOUT) -> list[Any]:
    """Run each target in its own thread, all released by one barrier; return
    their results in order, re-raising the first exception."""
    barrier = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def wrap(i: int, fn: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout)
            results[i] = fn()
        except BaseException as e:  # re-raised below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=wrap, args=(i, fn)) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    if any(t.is_alive() for t in threads):
        raise TimeoutError("worker threads did not finish in time")
    if errors:
        raise errors[0]
    return results


def assert_held_back_until_released(
    write: Callable[[], Any], release: Callable[[], Any], what: str, timeout: float = JOIN_TIMEOUT
) -> None:
    """Run write() in a thread while a lock it needs is held: it must not
    finish within 0.3 s; then release() the lock and write() must finish."""
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            write()
        except BaseException as e:  # re-raised below
            errors.append(e)
        done.set()

    w = threading.Thread(target=run)
    w.start()
    time.sleep(0.3)
    assert not done.is_set(), f"{what} went ahead while the writer lock was held"
    release()
    assert done.wait(timeout), f"{what} did not finish after the lock was released"
    w.join(timeout)
    if errors:
        raise errors[0]

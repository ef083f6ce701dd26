"""Run a scenario on real threads and record what happened."""

from __future__ import annotations

import contextlib
import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from nogil_collections.testing._history import Call, History, exc_text, safe_repr
from nogil_collections.testing._ops import OpTable
from nogil_collections.testing._scenario import Scenario
from nogil_collections.testing._stamps import stamp as _default_stamp

__all__ = ["ExecutorError", "gil_enabled", "normalized", "run_scenario", "switch_interval"]


SPIN = 2_000
"""Bound on the start-alignment spin, in loop iterations (about 50 us).

Longer spins align starts better on an idle machine but burn the time slices
of an oversubscribed one (measured: 20k iterations made runs 8x slower at a
load average of 9 on 2 cores).
"""


class ExecutorError(RuntimeError):
    """The scenario could not be run: a thread hung, or the harness itself failed."""


def normalized(op: Any, name: str, result: Any) -> Any:
    """``op.norm(result)``; a failing ``normalize=`` is named (an error in the op table,
    not in the code under test), never an anonymous traceback from the harness."""
    try:
        return op.norm(result)
    except Exception as e:
        raise ExecutorError(
            f"the normalize= function of op {name!r} raised {type(e).__name__} on the result "
            f"{safe_repr(result)}: {exc_text(e)}") from e


class _Escaped(Exception):
    """Carries a BaseException (not an Exception) that an operation raised out of a worker."""

    def __init__(self, error: ExecutorError) -> None:
        super().__init__(error)
        self.error = error


def escaped(thread: int, name: str, args: tuple[Any, ...], e: BaseException) -> ExecutorError:
    """The report of an operation that raised a BaseException that is not an Exception
    (``SystemExit``, ``GeneratorExit``, ``KeyboardInterrupt``): not an outcome to compare."""
    call = f"{name}({', '.join(safe_repr(a) for a in args)})"
    err = ExecutorError(
        f"operation {call} in thread {thread} raised {type(e).__name__}"
        f"{': ' + exc_text(e) if exc_text(e) else ''}, a BaseException that is not an "
        "Exception: the race tester records only Exceptions as outcomes")
    err.__cause__ = e
    return err


def gil_enabled() -> bool:
    """True when the GIL is on (always on GIL builds; 3.13t can re-enable it)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


@contextlib.contextmanager
def switch_interval(seconds: float | None) -> Iterator[None]:
    """Temporarily shrink ``sys.setswitchinterval`` when the GIL is on; restore afterwards.

    With the GIL, threads only interleave at switch points: the default 5 ms
    interval lets a short scenario run start to finish in one thread.  Without
    the GIL the setting is irrelevant and is left alone.
    """
    if seconds is None or not gil_enabled():
        yield
        return
    old = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_scenario(
    scenario: Scenario,
    factory: Callable[[Any], Any],
    table: OpTable,
    *,
    repetitions: int = 1,
    timeout: float = 10.0,
    interval: float | None = 1e-6,
    stamp: Callable[[], int] = _default_stamp,
) -> list[History]:
    """Run ``scenario`` ``repetitions`` times, each on a fresh container, and return the histories.

    Each run builds ``factory(initial)`` from a private copy of the initial
    state, starts one thread per scenario thread, releases them together with
    a :class:`threading.Barrier`, and records every call's invocation and
    response stamp, result (normalized by the op) or exception type.  Results
    are normalized after the response stamp, so that work is not part of the
    operation's interval.

    Raises :class:`ExecutorError` if a thread does not finish within
    ``timeout`` seconds (a deadlock is a bug too) or the harness fails.
    """
    ops = {op.name: op for op in table.ops}
    steps = [[(ops[s.op], s.op, s.args) for s in thread] for thread in scenario.threads]
    with switch_interval(interval):
        return _run_pool(scenario, factory, steps, repetitions, timeout, stamp)


def _run_pool(
    scenario: Scenario,
    factory: Callable[[Any], Any],
    steps: list[list[tuple[Any, str, tuple[Any, ...]]]],
    repetitions: int,
    timeout: float,
    stamp: Callable[[], int],
) -> list[History]:
    """One worker thread per scenario thread, reused for every repetition.

    Per repetition the calling thread builds the container, then all meet at
    ``start`` (a barrier of n+1), run, and meet again at ``end``.  The barrier
    wakes threads one by one, tens of microseconds apart; a short spin on a
    shared arrival count then aligns their first operations to within a
    cache-line transfer when cores are free (bounded by ``SPIN`` iterations
    so an oversubscribed machine does not burn its time slices).  Random
    per-thread start delays on half of the runs vary which thread goes first.
    """
    n = len(steps)
    rng = random.Random()
    start = threading.Barrier(n + 1)
    end = threading.Barrier(n + 1)
    shared: dict[str, Any] = {}
    raw: list[list[tuple[Any, int, int, Any, BaseException | None]]] = [[] for _ in range(n)]
    harness_errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            while True:
                start.wait()
                if shared.get("stop"):
                    return
                obj = shared["obj"]
                arrived = shared["arrived"]
                delay = shared["delays"][t]
                out = raw[t]
                arrived.append(t)
                spins = 0
                while len(arrived) < n and spins < SPIN:
                    spins += 1
                for _ in range(delay):
                    pass
                for op, name, args in steps[t]:
                    run = op.runner
                    inv = stamp()
                    try:
                        result = run(obj, *args)
                        exc = None
                    except Exception as e:
                        result, exc = None, e
                    except BaseException as e:
                        raise _Escaped(escaped(t, name, args, e)) from None
                    resp = stamp()
                    out.append((op, inv, resp, result, exc))
                end.wait()
        except threading.BrokenBarrierError:
            return
        except BaseException as e:
            harness_errors.append(e)
            start.abort()
            end.abort()

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(n)]
    for th in threads:
        th.start()
    histories: list[History] = []
    try:
        for _ in range(repetitions):
            for r in raw:
                r.clear()
            shared["obj"] = factory(scenario.initial_copy())
            shared["arrived"] = []
            shared["delays"] = ([0] * n if rng.random() < 0.5
                                else [rng.randrange(0, 100) for _ in range(n)])
            try:
                start.wait(timeout)
                end.wait(timeout)
            except threading.BrokenBarrierError:
                if harness_errors:
                    first = harness_errors[0]
                    if isinstance(first, _Escaped):
                        raise first.error from first.error.__cause__
                    raise ExecutorError(
                        f"the executor failed: {first!r}"
                    ) from first
                done = [len(r) for r in raw]
                raise ExecutorError(
                    f"a thread did not finish within {timeout} s (deadlock or livelock?)\n"
                    f"completed ops per thread: {done}\nscenario:\n{scenario}"
                ) from None
            histories.append(_collect(scenario, steps, raw))
    finally:
        shared["stop"] = True
        if end.broken or start.broken or harness_errors:
            # A worker may be stuck for good: wake the others and leave the
            # stuck one behind (daemon thread) rather than wait for it.
            start.abort()
            for th in threads:
                th.join(0.1)
        else:
            try:
                start.wait(timeout)  # releases the workers, which see "stop"
            except threading.BrokenBarrierError:
                pass
            for th in threads:
                th.join(timeout)
    return histories


def _collect(
    scenario: Scenario,
    steps: list[list[tuple[Any, str, tuple[Any, ...]]]],
    raw: list[list[tuple[Any, int, int, Any, BaseException | None]]],
) -> History:
    calls = []
    for t, records in enumerate(raw):
        for (op, name, args), (_, inv, resp, result, exc) in zip(steps[t], records, strict=True):
            if exc is None:
                calls.append(Call(t, name, args, inv, resp, normalized(op, name, result)))
            else:
                calls.append(Call(t, name, args, inv, resp, None, type(exc), exc_text(exc)))
    calls.sort(key=lambda c: c.invoke)
    return History(scenario.initial_copy(), calls)

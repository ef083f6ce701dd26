"""What every threaded suite shares (scaling.py, realcode.py).

* :func:`run_on_barrier`: T threads build their own work, start together on
  a ``threading.Barrier`` and each times its own work; a repetition's
  throughput is all threads' operations over (last end - first start).
* :func:`calibrate` and :func:`per_thread`: the work of a repetition is
  calibrated at one thread to last about ``target_time``, then split over the
  threads as ``work x min(T, cpus) / T``, so that an oversubscribed run
  (8 threads on 2 cores) lasts about as long as a 2-thread run.
* :func:`interleaved`: repetition r of every variant at every thread count
  before repetition r + 1, so that a change in background load hits all
  variants alike instead of skewing their ratios.
* :func:`gc_paused`: the cyclic garbage collector is off while timing.
* :func:`thread_owned`: ``fn`` with the shared container bound as its first
  argument, as a callable the calling thread owns (``partial``; on 3.15+ a
  partial of a bound method object: see there).
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

_Variant = TypeVar("_Variant")


def _nothing() -> None:
    pass


#: How thread_owned binds, and what the tables call it.
BINDS_WITH_PARTIAL = sys.version_info < (3, 15)
THREAD_OWNED_LABEL = (
    "thread-owned partial" if BINDS_WITH_PARTIAL else "thread-owned partial of a bound method"
)


def thread_owned(fn: Callable[..., Any], container: Any) -> Callable[..., Any]:
    """``fn(container, *args)`` as a callable object that the calling thread
    owns and whose calls, from C (``map``) or from Python bytecode, write no
    shared reference count (for the shared builtins ``operator.getitem`` /
    ``setitem`` / ``delitem``).

    Through 3.14 that is ``functools.partial(fn, container)``: its vectorcall
    passes both ``fn`` and ``container`` on as borrowed references.  3.15's
    ``partial_vectorcall`` takes a new reference to its function on every
    call (``Py_NewRef(pto->fn)``, Modules/_functoolsmodule.c 3.15.0rc2:386;
    3.14.7 has none), so every thread's partial would write the count of the
    one shared ``operator.getitem`` (measured on 3.15.0rc2t: a tuple read that
    way scaled 0.48-0.93x at 2 threads while a thread-local loop scaled
    1.5-2.0x).  A bound method object alone (``types.MethodType(fn,
    container)``) is borrowed through by its vectorcall (``method_vectorcall``,
    Objects/classobject.c 3.15.0rc2:47-56), but a Python ``CALL`` unpacks a
    bound method into its function and ``self`` with new references (0.58x
    in a Python loop on 3.15t).  So on 3.15+ it is a partial of the thread's
    own bound method: the partial increfs only that thread-owned method
    object, which calls ``fn`` with borrowed arguments."""
    if BINDS_WITH_PARTIAL:
        return partial(fn, container)
    return partial(types.MethodType(fn, container))


@dataclass
class ThreadWork:
    """One thread's part of a repetition, built (and warmed up) in that thread
    so that the thread owns every object it uses except the shared ones."""

    timed: Callable[[], int]  # the measured work; returns how many operations it did
    cleanup: Callable[[], None] = _nothing  # runs after the thread's timing


def run_on_barrier(
    threads: int, prepare: Callable[[int], ThreadWork], name: str
) -> tuple[int, float]:
    """One repetition: ``prepare(tid)`` in each of ``threads`` threads, then the
    timed work of all of them from one barrier.  Returns (operations of all
    threads, seconds from the first start to the last end).  An exception in
    any thread aborts the barrier and is raised here."""
    barrier = threading.Barrier(threads)
    starts = [0.0] * threads
    ends = [0.0] * threads
    ops = [0] * threads
    errors: list[BaseException] = []

    def body(tid: int) -> None:
        try:
            work = prepare(tid)
            barrier.wait()
            starts[tid] = time.perf_counter()
            ops[tid] = work.timed()
            ends[tid] = time.perf_counter()
            work.cleanup()
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=body, args=(t,), name=f"{name}-{t}") for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return sum(ops), max(ends) - min(starts)


def calibrate(
    seconds_for: Callable[[int], float], target_time: float, *, min_fraction: float, limit: int
) -> int:
    """The amount of work (in the caller's unit) that one thread does in about
    ``target_time`` seconds.  ``seconds_for(n)`` times n units; n grows 4x until
    a run lasts ``min_fraction`` of the target (long enough to scale from) or
    reaches ``limit``, and the target is then reached by proportion."""
    n = 1
    while True:
        elapsed = seconds_for(n)
        if elapsed >= target_time * min_fraction or n >= limit:
            return max(1, round(n * target_time / elapsed))
        n *= 4


def per_thread(work: int, threads: int, cpus: int) -> int:
    """One thread's share of ``work`` (calibrated at one thread) at ``threads``
    threads: no more total work than ``cpus`` threads can do in the target time."""
    return max(1, round(work * min(threads, cpus) / threads))


def interleaved(
    variants: Sequence[_Variant],
    thread_counts: list[int],
    repeats: int,
    run: Callable[[_Variant, int], float],
    progress: Callable[[str], None] | None,
    label: str,
) -> dict[tuple[int, int], list[float]]:
    """``run(variant, threads)`` (a rate) for every variant and thread count,
    ``repeats`` times, interleaved; keyed by (variant index, threads)."""
    runs: dict[tuple[int, int], list[float]] = {}
    for rep in range(repeats):
        for threads in thread_counts:
            if progress is not None:
                progress(f"{label} x{threads} rep {rep + 1}")
            for i, variant in enumerate(variants):
                runs.setdefault((i, threads), []).append(run(variant, threads))
    return runs


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic GC collected once, then off until the block ends (and back on
    only if it was on)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

"""Scaling: T threads operate on one shared container; aggregate throughput.

Method (docs/performance.md explains the choices):

* The container holds ``size`` entries.  Threads start together on a
  ``threading.Barrier``; each thread times its own work, and the throughput
  of one repetition is ``total ops / (last end - first start)``.
* Every thread builds its own work *inside the thread, before the barrier*:
  its key lists, its callables and its consumer.  Objects created by a thread
  are owned by it, so on a free-threaded build only what the case says is
  shared (the container; plus keys or values in the "shared" variants) takes
  atomic reference-count traffic.
* The per-op loop is C code and the same for every implementation:
  ``deque(maxlen=0).extend(map(partial(operator.getitem, c), keys))``.
  ``partial`` passes ``c`` as a borrowed reference (``partial_vectorcall`` in
  CPython's ``Modules/_functoolsmodule.c``), so the loop itself does not
  touch the container's reference count (``c[k]`` in Python bytecode would:
  ``LOAD_FAST`` increfs the container on 3.13t).  On 3.15+, whose partial
  increfs its function on every call, the thread's callable is a partial of
  a bound method object instead (:func:`benchmarks.harness.thread_owned`).
  Reads, ``operator.setitem`` writes, key iteration and result disposal cost
  the same for every implementation; what differs is the container's own ``mp_subscript`` /
  ``sq_item`` / ``mp_ass_subscript``.
* Reads and writes are issued in runs of ``CHUNK`` operations of one kind; the
  write runs are spread evenly through a cycle of ``CYCLE`` runs, so 90/10
  means 10 write runs out of every 100.  Writes of the ``replace`` kind
  overwrite existing keys or indices, so the size never changes.  Writes of
  the ``churn`` kind (mappings only) delete a key and insert it again: each
  thread owns ``CHUNK`` extra keys, inserted before the barrier; a write run
  deletes them all, then re-inserts them all (``CHUNK`` delete + insert
  pairs, counted as ``CHUNK`` writes), so the size stays within ``CHUNK``
  per thread of ``size``.  Reads only ever look up the ``size`` stable keys,
  so no read fails; the churn still moves every reader's probe sequences
  through tombstones and triggers the periodic resizes that tombstones cause.
* The total work of a repetition is calibrated at 1 thread to last about
  ``target_time`` and then split over the threads as
  ``ops x min(T, cpus) / T`` per thread, so that an oversubscribed run
  (8 threads on 2 cores) lasts about as long as a 2-thread run.
* The cyclic garbage collector is disabled while timing.

The threads, the barrier, the calibration and the interleaving are
harness.py's, shared with the real-code suite.
"""

from __future__ import annotations

import math
import operator
import random
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks import harness
from benchmarks.harness import (
    ThreadWork,
    gc_paused,
    interleaved,
    per_thread,
    run_on_barrier,
    thread_owned,
)
from benchmarks.registry import MAP, SEQ, Impl

CHUNK = 32  # operations per run of one kind
CYCLE = 100  # runs per cycle: a mix of r% reads has (100 - r) write runs per cycle


@dataclass(frozen=True)
class Case:
    """One cell of the scaling matrix, without the implementation and thread count."""

    family: str  # MAP or SEQ
    mix: int  # percentage of reads: 100, 99, 90, 50
    keytype: str  # "str" or "int" (sequences: "int", the index)
    values: str  # "immortal" (small ints) or "mortal" (fresh objects)
    keys: str  # "local" (each thread has its own equal key objects) or "shared"
    write: str = "replace"  # "replace" (overwrite a present key) or "churn" (delete + insert)

    @property
    def label(self) -> str:
        fam = "dict" if self.family == MAP else "list"
        what = f"{self.keytype} keys" if self.family == MAP else "int indices"
        churn = ", churn writes" if self.write == "churn" else ""
        return f"{fam}-like, {what}, {self.values} values, {self.keys} keys{churn}"

    @property
    def mix_label(self) -> str:
        churn = " churn" if self.write == "churn" else ""
        return f"{self.mix}/{100 - self.mix}{churn}"

    @property
    def slug(self) -> str:
        fam = "map" if self.family == MAP else "seq"
        churn = "-churn" if self.write == "churn" else ""
        return f"{fam}-{self.keytype}-{self.values}-{self.keys}{churn}"


@dataclass
class Point:
    """The measured result of one (implementation, case, thread count)."""

    impl: str
    role: str
    case: Case
    threads: int
    ops_per_rep: int
    runs: list[float]  # ops/s, one per repetition

    @property
    def best(self) -> float:
        return max(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> float:
        """(max - min) / median: how much the repetitions disagree."""
        med = self.median
        return (max(self.runs) - min(self.runs)) / med if med else math.nan

    def to_json(self) -> dict[str, Any]:
        d = {"impl": self.impl, "role": self.role, **asdict(self.case)}
        d.update(
            threads=self.threads,
            ops_per_rep=self.ops_per_rep,
            runs_ops_per_s=[round(r, 1) for r in self.runs],
            best_ops_per_s=round(self.best, 1),
            median_ops_per_s=round(self.median, 1),
            spread=round(self.spread, 4),
        )
        return d


def applicable(impl: Impl, case: Case) -> bool:
    if impl.family != case.family or not impl.available:
        return False
    if case.mix < 100 and not impl.supports("setitem"):
        return False
    if case.write == "churn" and (case.family != MAP or not impl.supports("delitem")):
        return False
    return impl.supports("getitem")


# --------------------------------------------------------------------- data
def make_keys(case: Case, size: int) -> list[Any]:
    if case.family == SEQ:
        return list(range(size))
    if case.keytype == "str":
        return [f"key:{i:07d}" for i in range(size)]
    # Large enough to be mortal, heap-allocated ints (small ints are immortal).
    return [1_000_003 + 7919 * i for i in range(size)]


def make_values(case: Case, size: int) -> list[Any]:
    if case.values == "immortal":
        return [i % 256 for i in range(size)]  # small ints: immortal on 3.12+
    return [_Value(i) for i in range(size)]


class _Value:
    """A mortal value object (a plain class instance, like real application data)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


def _local_copy(obj: Any) -> Any:
    """An equal object that the calling thread owns (not the same object)."""
    if isinstance(obj, str):
        return obj[:1] + obj[1:]  # concatenation always builds a new string
    if isinstance(obj, int):
        return int(str(obj))  # a new object unless it is a cached small int
    return obj


def build_container(impl: Impl, case: Case, size: int) -> tuple[Any, list[Any], list[Any]]:
    keys = make_keys(case, size)
    values = make_values(case, size)
    if case.family == MAP:
        container = impl.make(list(zip(keys, values, strict=True)))
    else:
        container = impl.make(values)
    return container, keys, values


# --------------------------------------------------------------------- worker
def _schedule(case: Case, n_write_runs: int) -> list[bool]:
    """Which runs of a cycle are writes, spread evenly (Bresenham)."""
    sched = []
    acc = 0
    for _ in range(CYCLE):
        acc += n_write_runs
        if acc >= CYCLE:
            acc -= CYCLE
            sched.append(True)
        else:
            sched.append(False)
    return sched


def churn_keys(case: Case, tid: int) -> list[Any]:
    """The ``CHUNK`` keys thread ``tid`` deletes and re-inserts (never read)."""
    if case.keytype == "str":
        return [f"churn:{tid:03d}:{j:03d}" for j in range(CHUNK)]
    return [-(1_000_003 + 7919 * (tid * CHUNK + j)) for j in range(CHUNK)]


def _thread_work(
    container: Any, case: Case, keys: list[Any], values: list[Any], seed: int, tid: int = 0
) -> tuple[list[tuple[Callable[..., Any], tuple[list[Any], ...]]], Callable[[Any], None]]:
    """Build one thread's cycle.  Must run in that thread (ownership of objects).

    For ``churn`` writes this inserts the thread's churn keys into the
    container; :func:`_drop_churn_keys` removes them again."""
    rng = random.Random(seed)
    n = len(keys)
    reader = thread_owned(operator.getitem, container)
    writer = thread_owned(operator.setitem, container)
    own_keys = [_local_copy(k) for k in keys] if case.keys == "local" else list(keys)
    consume: Callable[[Any], None] = deque(maxlen=0).extend
    churn: list[tuple[Callable[..., Any], tuple[list[Any], ...]]] = []
    if case.write == "churn":
        ck = churn_keys(case, tid)
        cv = [values[j % n] for j in range(CHUNK)]
        consume(map(writer, ck, cv))
        churn = [(thread_owned(operator.delitem, container), (ck,)), (writer, (ck, cv))]
    work: list[tuple[Callable[..., Any], tuple[list[Any], ...]]] = []
    for is_write in _schedule(case, 100 - case.mix):
        if is_write and churn:
            work += churn
            continue
        idx = [rng.randrange(n) for _ in range(CHUNK)]
        ks = [own_keys[i] for i in idx]
        if is_write:
            work.append((writer, (ks, [values[i] for i in idx])))
        else:
            work.append((reader, (ks,)))
    return work, consume


def _drop_churn_keys(container: Any, case: Case, tid: int) -> None:
    if case.write == "churn":
        deque(map(thread_owned(operator.delitem, container), churn_keys(case, tid)), maxlen=0)


def _run_cycles(
    work: list[tuple[Callable[..., Any], tuple[list[Any], ...]]],
    consume: Callable[[Any], None],
    cycles: int,
) -> None:
    for _ in range(cycles):
        for fn, args in work:
            consume(map(fn, *args))


def run_threads(
    container: Any,
    case: Case,
    keys: list[Any],
    values: list[Any],
    threads: int,
    cycles_per_thread: int,
) -> float:
    """One repetition; returns aggregate ops/s."""

    def prepare(tid: int) -> ThreadWork:
        work, consume = _thread_work(container, case, keys, values, 1000 + tid, tid)
        _run_cycles(work, consume, 1)  # warm: first touch of everything

        def timed() -> int:
            _run_cycles(work, consume, cycles_per_thread)
            return cycles_per_thread * CYCLE * CHUNK

        return ThreadWork(timed, lambda: _drop_churn_keys(container, case, tid))

    ops, elapsed = run_on_barrier(threads, prepare, "bench")
    return ops / elapsed


def calibrate(
    container: Any, case: Case, keys: list[Any], values: list[Any], target_time: float
) -> int:
    """Cycles that one thread needs to run for about ``target_time`` seconds."""

    def seconds_for(cycles: int) -> float:
        return cycles * CYCLE * CHUNK / run_threads(container, case, keys, values, 1, cycles)

    return harness.calibrate(seconds_for, target_time, min_fraction=1 / 8, limit=1 << 20)


def measure(
    impls: list[Impl],
    case: Case,
    thread_counts: list[int],
    size: int,
    repeats: int,
    target_time: float,
    cpus: int,
    progress: Callable[[str], None] | None = None,
) -> list[Point]:
    """Every implementation and thread count of one case.

    Each implementation gets its own container and calibration; then the
    repetitions are interleaved (:func:`benchmarks.harness.interleaved`).
    """
    impls = [i for i in impls if applicable(i, case)]
    setups = [build_container(impl, case, size) for impl in impls]
    with gc_paused():
        cycles = [calibrate(c, case, k, v, target_time) for c, k, v in setups]

        def run(i: int, threads: int) -> float:
            container, keys, values = setups[i]
            share = per_thread(cycles[i], threads, cpus)
            return run_threads(container, case, keys, values, threads, share)

        label = f"{case.mix_label} {case.slug}"
        runs = interleaved(range(len(setups)), thread_counts, repeats, run, progress, label)
    points = []
    for i, impl in enumerate(impls):
        for threads in thread_counts:
            total = threads * per_thread(cycles[i], threads, cpus) * CYCLE * CHUNK
            points.append(Point(impl.name, impl.role, case, threads, total, runs[(i, threads)]))
    return points


def count_steps(
    impls: list[Impl], cases: list[Case], thread_counts: list[int], repeats: int
) -> int:
    """Progress steps :func:`measure` reports for these cases."""
    return sum(
        repeats * len(thread_counts) for case in cases if any(applicable(i, case) for i in impls)
    )

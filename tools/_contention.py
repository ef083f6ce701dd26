"""What tools/dict_write_contention.py and tools/list_write_contention.py share:
the scaling benchmark's workload shape (runs of CHUNK operations, the write
runs spread through a cycle of CYCLE runs, SIZE entries), the block layouts of
the ``disjoint`` / ``crossed`` variants, and one timed repetition with each
thread pinned to its own CPU."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

CHUNK, CYCLE, SIZE = 32, 100, 1024
Work = list[tuple[Callable[..., Any], tuple[Iterable[Any], ...]]]


def write_runs(mix: int) -> Iterator[bool]:
    """For each of the CYCLE runs: is it a write run?  (100 - mix) % of them
    are, spread evenly through the cycle."""
    acc = 0
    for _ in range(CYCLE):
        acc += 100 - mix
        is_write = acc >= CYCLE
        if is_write:
            acc -= CYCLE
        yield is_write


def in_blocks(idx: list[int], parity: int) -> list[int]:
    """idx moved into the 64-entry blocks of one parity (every other block):
    threads of different parity then touch no common slot or entry line."""
    return [((i // 64) * 2 + parity) % (SIZE // 64) * 64 + i % 64 for i in idx]


def place(variant: str, idx: list[int], tid: int, is_write: bool) -> list[int]:
    """The indices of a run for the ``disjoint`` (reads and writes in this
    thread's blocks) and ``crossed`` (writes in this thread's blocks, reads in
    the other thread's) variants; unchanged for the others."""
    if variant == "disjoint":
        return in_blocks(idx, tid % 2)
    if variant == "crossed":
        return in_blocks(idx, tid % 2 if is_write else 1 - tid % 2)
    return idx


def run(work_for: Callable[[int], Work], threads: int, cycles: int) -> tuple[float, float]:
    """One repetition: each thread builds its work (``work_for(tid)``), warms
    it up, then runs it ``cycles`` times from one barrier.  Returns (M ops/s
    over all threads, CPU ns per operation)."""
    barrier = threading.Barrier(threads)
    start = [0.0] * threads
    end = [0.0] * threads
    cpu = [0.0] * threads

    def body(tid: int) -> None:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {tid % (os.cpu_count() or 1)})
        work = work_for(tid)
        consume: Callable[[Any], None] = deque(maxlen=0).extend
        for fn, args in work:  # warm up: first touch of everything
            consume(map(fn, *args))
        barrier.wait()
        c0 = time.thread_time()
        start[tid] = time.perf_counter()
        for _ in range(cycles):
            for fn, args in work:
                consume(map(fn, *args))
        end[tid] = time.perf_counter()
        cpu[tid] = time.thread_time() - c0

    pool = [threading.Thread(target=body, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    ops = threads * cycles * CYCLE * CHUNK
    return ops / (max(end) - min(start)) / 1e6, sum(cpu) / ops * 1e9


def row(one: list[tuple[float, float]], two: list[tuple[float, float]]) -> str:
    """The medians of 1- and 2-thread repetitions: throughput, its ratio, CPU
    ns per operation and the CPU-time inflation (columns of HEADER)."""
    m1 = statistics.median(x[0] for x in one)
    m2 = statistics.median(x[0] for x in two)
    c1 = statistics.median(x[1] for x in one)
    c2 = statistics.median(x[1] for x in two)
    return f"{m1:8.2f} {m2:8.2f} {m2 / m1:6.2f} {c1:9.1f} {c2:9.1f} {c2 / c1:8.2f}"


HEADER = (
    f"{'1T Mops':>8} {'2T Mops':>8} {'2T/1T':>6} {'ns/op 1T':>9} {'ns/op 2T':>9} {'CPU infl':>8}"
)

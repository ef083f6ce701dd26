"""Where 2 threads lose time on a shared dict when some operations write.

Variants of the scaling benchmark's dict workload (str keys, immortal values,
thread-local key copies, 1024 entries, C loop through a thread-owned
``functools.partial``, runs of 32 operations, the write runs spread through a
cycle of 100 runs), each measured with 1 and 2 threads:

* ``replace``: the benchmark's value replacements of random present keys;
* ``churn``: the benchmark's churn (each write run deletes the thread's 32
  own keys, then inserts them again);
* ``disjoint``: replacements, but each thread reads and writes only its own
  64-key blocks (every other block): no entry line is touched by both
  threads, only the lock, the writer words and the read-only table are
  shared;
* ``crossed``: replacements, each thread writes its own blocks and reads only
  the other thread's: every read may find a line the other thread wrote;
* ``side``: the writes go to a second dict that both threads share: readers
  are never disturbed, writers share that dict's lock, words and entries;
* ``private``: the writes go to a dict of each thread's own: nothing is
  shared but the read-only dict (the no-contention reference).

Reported per variant: throughput (M ops/s, all threads), its 2T/1T ratio, the
CPU time per operation (``time.thread_time``) and the CPU-time inflation
2T/1T, which stays meaningful when the machine is loaded (scheduling gaps do
not count) as long as the two threads do run at the same time: each thread is
pinned to its own CPU (Linux).  On a loaded machine, run it with a raised
priority for its few seconds, else the two threads rarely overlap and the
inflation reads ~1.0.  docs/performance.md ("What bounds the dict's writes")
quotes its results.

Usage: python tools/dict_write_contention.py [--mix 90] [--impls cd,dict,cereggii]
                                            [--variants replace,churn,...]
"""

from __future__ import annotations

import argparse
import gc
import operator
import os
import random
from collections import deque
from functools import partial
from typing import Any

from _contention import CHUNK, HEADER, SIZE, Work, place, row, run, write_runs
from nogil_collections import ConcurrentDict


def make(impl: str, items: list[tuple[str, int]]) -> Any:
    if impl == "cd":
        return ConcurrentDict(items)
    if impl == "cereggii":
        import cereggii  # type: ignore[import-not-found]

        d = cereggii.AtomicDict()
        for k, v in items:
            d[k] = v
        return d
    return dict(items)


def items() -> list[tuple[str, int]]:
    return [(f"key:{i:07d}", i % 256) for i in range(SIZE)]


def thread_work(variant: str, impl: str, shared: Any, side: Any, tid: int, mix: int) -> Work:
    rng = random.Random(1000 + tid)
    own = [k[:1] + k[1:] for k, _ in items()]  # equal keys owned by this thread
    vals = [v for _, v in items()]
    target = shared
    if variant == "private":
        target = make(impl, items())
    elif variant == "side":
        target = side
    reader = partial(operator.getitem, shared)
    writer = partial(operator.setitem, target)
    ck = [f"churn:{tid:03d}:{j:03d}" for j in range(CHUNK)]
    cv = list(range(CHUNK))
    if variant == "churn":
        deque(map(writer, ck, cv), maxlen=0)
    work: Work = []
    for is_write in write_runs(mix):
        if is_write and variant == "churn":
            work.append((partial(operator.delitem, target), (ck,)))
            work.append((writer, (ck, cv)))
            continue
        idx = place(variant, [rng.randrange(SIZE) for _ in range(CHUNK)], tid, is_write)
        ks = [own[i] for i in idx]
        if is_write:
            work.append((writer, (ks, [vals[i] for i in idx])))
        else:
            work.append((reader, (ks,)))
    return work


def repetition(variant: str, impl: str, threads: int, cycles: int, mix: int) -> tuple[float, float]:
    """One repetition: (M ops/s over all threads, CPU ns per operation)."""
    shared = make(impl, items())
    side = make(impl, items())
    return run(lambda tid: thread_work(variant, impl, shared, side, tid, mix), threads, cycles)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mix", type=int, default=90, help="percentage of reads")
    ap.add_argument("--impls", default="cd,cereggii", help="cd, dict, cereggii")
    ap.add_argument("--variants", default="replace,churn,disjoint,crossed,side,private")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--cycles", type=int, default=300, help="cycles per thread at 2 threads")
    a = ap.parse_args()
    gc.disable()
    res: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    for _ in range(a.repeats):  # interleaved, so that load changes hit every cell alike
        for impl in a.impls.split(","):
            for v in a.variants.split(","):
                for t in (1, 2):
                    cycles = a.cycles * (2 if t == 1 else 1)
                    res.setdefault((impl, v, t), []).append(repetition(v, impl, t, cycles, a.mix))
    print(f"reads/writes {a.mix}/{100 - a.mix}, median of {a.repeats}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'impl':9} {'variant':9} {HEADER}")
    for impl in a.impls.split(","):
        for v in a.variants.split(","):
            print(f"{impl:9} {v:9} {row(res[(impl, v, 1)], res[(impl, v, 2)])}")


if __name__ == "__main__":
    main()

"""Where 2 threads lose time on a shared list when some operations write.

The list counterpart of tools/dict_write_contention.py: variants of the
scaling benchmark's list workload (1024 immortal small ints, thread-local
index objects, C loop through a thread-owned ``functools.partial``, runs of
32 operations, the write runs spread through a cycle of 100 runs), each
measured with 1 and 2 threads:

* ``replace``: the benchmark's ``lst[i] = values[i]`` at random indices (the
  value the slot already holds, as in benchmarks/scaling.py);
* ``newval``: the same indices, but the values come from an endless cycle
  over 33 small ints, so each execution of a write run stores, at each
  position, a different value from the previous execution (the work list
  repeats every cycle, so in ``replace`` a write usually finds the very
  object it stores, whatever value scheme is used): a check that nothing
  profits from the benchmark storing the object the slot already holds
  (hardware-wise a store costs the same either way);
* ``disjoint``: replacements, but each thread reads and writes only its own
  64-index blocks (every other block, eight slot lines each): no slot line
  is touched by both threads, only the writer lock and the counters are;
* ``crossed``: each thread writes its own blocks and reads only the other
  thread's: every read may find a line the other thread wrote;
* ``side``: the writes go to a second list that both threads share: readers
  are never disturbed, writers share that list's lock, counters and slots;
* ``private``: the writes go to a list of each thread's own: nothing is
  shared but the read-only list (the no-contention reference);
* ``readonly``: no writes at all (the write runs read too): the ceiling;
* ``shifted``: ``replace`` with the odd thread's cycle rotated by half the
  distance between write runs, so that the two threads' write runs do not
  start together (in the benchmark both threads run the same schedule).

Reported per variant: throughput (M ops/s, all threads), its 2T/1T ratio, the
CPU time per operation (``time.thread_time``) and the CPU-time inflation
2T/1T (see tools/dict_write_contention.py for why: it stays meaningful on a
loaded machine as long as the two threads run at the same time; each thread
is pinned to its own CPU, and on a loaded machine the run needs a raised
priority).  ``--builds`` compares builds of the package (A/B): each
directory holds one build's ``nogil_collections`` package, put first on
``PYTHONPATH`` of a child process per repetition, the builds alternating
round by round; ``--raw`` (what the children print) is one JSON line per
repetition.
docs/performance.md ("What bounds the list's writes") quotes its results.

Usage: python tools/list_write_contention.py [--mix 90] [--impls cl,list]
                                            [--variants replace,newval,...]
                                            [--builds DIR_A,DIR_B]
With a raised priority (Linux, as root):
    setsid sh -c 'echo -15 > /proc/self/autogroup; exec nice -n -15 "$@"' sh \
        .venv/bin/python tools/list_write_contention.py
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import operator
import os
import random
import subprocess
import sys
from functools import partial
from typing import Any

from _contention import CHUNK, CYCLE, HEADER, SIZE, Work, place, row, run, write_runs
from nogil_collections import ConcurrentList

VARIANTS = "replace,newval,disjoint,crossed,side,private,readonly,shifted"


def make(impl: str) -> Any:
    values = [i % 256 for i in range(SIZE)]  # small ints: immortal on 3.12+
    return ConcurrentList(values) if impl == "cl" else list(values)


def thread_work(variant: str, impl: str, shared: Any, side: Any, tid: int, mix: int) -> Work:
    rng = random.Random(1000 + tid)
    own = [int(str(i)) for i in range(SIZE)]  # index objects owned by this thread
    vals = [i % 256 for i in range(SIZE)]
    target = shared
    if variant == "private":
        target = make(impl)
    elif variant == "side":
        target = side
    reader = partial(operator.getitem, shared)
    writer = partial(operator.setitem, target)
    work: Work = []
    for is_write in write_runs(mix):
        idx = place(variant, [rng.randrange(SIZE) for _ in range(CHUNK)], tid, is_write)
        ks = [own[i] for i in idx]
        if is_write and variant == "newval":
            work.append((writer, (ks, itertools.cycle([(j * 7 + tid) % 256 for j in range(33)]))))
        elif is_write and variant != "readonly":
            work.append((writer, (ks, [vals[i] for i in idx])))
        else:
            work.append((reader, (ks,)))
    if variant == "shifted" and tid % 2 and mix < 100:
        half = CYCLE // (100 - mix) // 2
        work = work[half:] + work[:half]
    return work


def repetition(variant: str, impl: str, threads: int, cycles: int, mix: int) -> tuple[float, float]:
    """One repetition: (M ops/s over all threads, CPU ns per operation)."""
    shared = make(impl)
    side = make(impl)
    return run(lambda tid: thread_work(variant, impl, shared, side, tid, mix), threads, cycles)


Results = dict[tuple[str, str, str, int], list[tuple[float, float]]]


def measure_here(a: argparse.Namespace, res: Results) -> None:
    """a.repeats interleaved repetitions of every cell, in this process."""
    for _ in range(a.repeats):  # interleaved, so that load changes hit every cell alike
        for impl in a.impls.split(","):
            for v in a.variants.split(","):
                for t in (1, 2):
                    cycles = a.cycles * (2 if t == 1 else 1)
                    r = repetition(v, impl, t, cycles, a.mix)
                    res.setdefault(("", impl, v, t), []).append(r)
                    if a.raw:
                        print(json.dumps({"impl": impl, "variant": v, "threads": t,
                                          "mops": r[0], "ns_per_op": r[1]}), flush=True)


def measure_builds(a: argparse.Namespace, res: Results) -> None:
    """One repetition per build per round, each in a child process that finds
    that build's package first on PYTHONPATH; the builds alternate round by
    round, so that load changes hit them alike."""
    builds = a.builds.split(",")
    for _ in range(a.repeats):
        for b in builds:
            cmd = [sys.executable, __file__, "--raw", "--repeats", "1", "--mix", str(a.mix),
                   "--impls", a.impls, "--variants", a.variants, "--cycles", str(a.cycles)]
            env = dict(os.environ, PYTHONPATH=b)
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            for line in out.stdout.splitlines():
                d = json.loads(line)
                res.setdefault((b, d["impl"], d["variant"], d["threads"]), []).append(
                    (d["mops"], d["ns_per_op"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mix", type=int, default=90, help="percentage of reads")
    ap.add_argument("--impls", default="cl,list", help="cl, list")
    ap.add_argument("--variants", default=VARIANTS)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--cycles", type=int, default=300, help="cycles per thread at 2 threads")
    ap.add_argument("--raw", action="store_true", help="one JSON line per repetition")
    ap.add_argument("--builds", default="",
                    help="comma-separated directories, each holding a built nogil_collections "
                         "package: compare them (A/B), one child process per repetition")
    a = ap.parse_args()
    gc.disable()
    res: Results = {}
    if a.builds:
        measure_builds(a, res)
    else:
        measure_here(a, res)
    if a.raw:
        return
    print(f"reads/writes {a.mix}/{100 - a.mix}, median of {a.repeats}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'impl':5} {'variant':9} {HEADER}  build")
    for impl in a.impls.split(","):
        for v in a.variants.split(","):
            for b in a.builds.split(",") if a.builds else [""]:
                print(f"{impl:5} {v:9} {row(res[(b, impl, v, 1)], res[(b, impl, v, 2)])}  {b}")


if __name__ == "__main__":
    main()

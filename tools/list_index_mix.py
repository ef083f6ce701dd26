"""How the index objects of a Python read loop change its scaling (issue 12, list handle).

The real-code suite reads a list with 1000 random draws from ``range(1024)``: about a
quarter are the interpreter's immortal small ints (< 256), the rest ints owned by the
reading thread, and every ``LOAD_FAST`` of an index branches on which kind it is.  This
script runs the suite's loop shape (``for _ in range(reps): for k in ks: x = h[k]``, a
per-thread ``handle()`` of one shared ``ConcurrentList``) with different index
populations, and the same loop without a container (``x = k``), at 1 and 2 threads.
Per-thread rates are summed; median of ``--repeats`` repetitions of ``--seconds`` each.

    .venv/bin/python tools/list_index_mix.py [--repeats 5] [--seconds 0.3]

Run it on a quiet machine: only ratios inside one run mean anything.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import threading
import time
from collections.abc import Callable

from nogil_collections import ConcurrentList

SIZE = 1024
DRAWS = 1000


def mixed(tid: int) -> list[int]:
    rng = random.Random(1000 + tid)
    keys = list(range(SIZE))
    return [keys[rng.randrange(SIZE)] for _ in range(DRAWS)]


def owned(tid: int) -> list[int]:
    rng = random.Random(1000 + tid)
    keys = list(range(SIZE))
    return [keys[rng.randrange(256, SIZE)] for _ in range(DRAWS)]


def immortal(tid: int) -> list[int]:
    rng = random.Random(1000 + tid)
    return [rng.randrange(256) for _ in range(DRAWS)]


def sequential(tid: int) -> list[int]:
    return [int(str(i)) for i in range(SIZE)]


POPULATIONS: dict[str, Callable[[int], list[int]]] = {
    "the benchmark's mix (random, range(1024))": mixed,
    "random, all >= 256 (thread-owned)": owned,
    "random, all < 256 (immortal)": immortal,
    "sequential 0..1023": sequential,
}


def handle_loop(h: object, ks: list[int], reps: int) -> None:
    for _ in range(reps):
        for k in ks:
            x = h[k]  # type: ignore[index]  # noqa: F841


def bare_loop(h: object, ks: list[int], reps: int) -> None:
    for _ in range(reps):
        for k in ks:
            x = k  # noqa: F841


def rate(
    shared: ConcurrentList[int],
    make: Callable[[int], list[int]],
    loop: Callable[..., None],
    threads: int,
    reps: int,
) -> float:
    """M reads/s summed over threads for one repetition."""
    barrier = threading.Barrier(threads)
    rates = [0.0] * threads

    def body(tid: int) -> None:
        h = shared.handle()
        ks = make(tid)
        loop(h, ks, 1)
        barrier.wait()
        t0 = time.perf_counter()
        loop(h, ks, reps)
        rates[tid] = len(ks) * reps / (time.perf_counter() - t0)

    pool = [threading.Thread(target=body, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(rates) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.3)
    args = ap.parse_args()
    shared = ConcurrentList([i % 256 for i in range(SIZE)])
    gc.disable()
    for loop_name, loop in (("handle h[k]", handle_loop), ("no container, x = k", bare_loop)):
        for name, make in POPULATIONS.items():
            reps = max(1, int(args.seconds * rate(shared, make, loop, 1, 20) * 1e6 / SIZE))
            runs: dict[int, list[float]] = {1: [], 2: []}
            for _ in range(args.repeats):
                for threads in (1, 2):
                    runs[threads].append(rate(shared, make, loop, threads, reps))
            one, two = statistics.median(runs[1]), statistics.median(runs[2])
            print(
                f"{loop_name:20s} {name:42s} 1T {one:7.2f}  2T {two:7.2f}  {two / one:.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()

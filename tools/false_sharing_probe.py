"""False-sharing probe for ConcurrentDict's hot fields (docs/design.md, memory layout).

One thread reads a dict through a thread-owned partial (no traffic on the dict's own
header) while another thread increfs and decrefs (non-owner: atomic) either the dict's
memory neighbour -- the object in the next mimalloc block -- or a far object.  Both
conditions have one busy hammer thread, so the ratio isolates a shared cache line between
the dict's hot fields and the neighbour's header: about 1.0x when none is shared.

    .venv/bin/python tools/false_sharing_probe.py
"""

from __future__ import annotations

import functools
import gc
import operator
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from nogil_collections import ConcurrentDict

KEYS = [f"key:{i:07d}" for i in range(1024)]
POOL_SIZE = 600  # dicts allocated to find one at a cache-line start with a neighbour
READ_PASSES = 300  # passes over KEYS per reader measurement
ROUNDS = 8  # (neighbour, far) measurement pairs; the medians are compared


def _block_size(basicsize: int) -> int:
    # The mimalloc size class the dict's object lands in (208 B objects are
    # served from 224 B blocks); other sizes are assumed to be exact classes.
    return {208: 224}.get(basicsize, basicsize)


def _find_neighbours(
    pool: list[ConcurrentDict[Any, Any]], block: int
) -> tuple[ConcurrentDict[Any, Any], ConcurrentDict[Any, Any]]:
    """A dict that starts a 64-byte cache line, and the dict in the next block."""
    by_address = {id(d): d for d in pool}
    for d in pool:
        if id(d) % 64 == 0 and id(d) + block in by_address:
            return d, by_address[id(d) + block]
    raise SystemExit("no dict at a cache-line start with an allocated neighbour; run again")


def _hammer(obj: object, stop: threading.Event) -> None:
    # Each assignment increfs obj (and decrefs the previous value): atomic
    # reference-count traffic on obj's header from a thread that does not own it.
    x = obj
    while not stop.is_set():
        for _ in range(1000):
            _ = x
            _ = x
            _ = x
            _ = x


def _read_rate(target: ConcurrentDict[str, int]) -> float:
    """Millions of lookups per second of one reader (keys owned by this thread)."""
    keys = [k[:1] + k[1:] for k in KEYS]
    lookup = functools.partial(operator.getitem, target)
    sink: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend
    t0 = time.perf_counter()
    for _ in range(READ_PASSES):
        sink(map(lookup, keys))
    return READ_PASSES * len(keys) / (time.perf_counter() - t0) / 1e6


def _read_while_hammered(target: ConcurrentDict[str, int], hammered: object) -> float:
    stop = threading.Event()
    hammer = threading.Thread(target=_hammer, args=(hammered, stop))
    hammer.start()
    rates: list[float] = []
    reader = threading.Thread(target=lambda: rates.append(_read_rate(target)))
    reader.start()
    reader.join()
    stop.set()
    hammer.join()
    return rates[0]


def main() -> None:
    gc.disable()
    basicsize = ConcurrentDict.__basicsize__
    block = _block_size(basicsize)
    pool: list[ConcurrentDict[Any, Any]] = [ConcurrentDict() for _ in range(POOL_SIZE)]
    target, neighbour = _find_neighbours(pool, block)
    far = pool[-1] if pool[-1] is not neighbour and pool[-1] is not target else pool[-2]
    target.update((k, i % 256) for i, k in enumerate(KEYS))
    rates: dict[str, list[float]] = {"neighbour": [], "far": []}
    for _ in range(ROUNDS):
        rates["neighbour"].append(_read_while_hammered(target, neighbour))
        rates["far"].append(_read_while_hammered(target, far))
    near_rate = statistics.median(rates["neighbour"])
    far_rate = statistics.median(rates["far"])
    print(
        f"basicsize {basicsize} (block {block}), dict at {id(target) % 64} mod 64, "
        f"neighbour +{id(neighbour) - id(target)}: reader median M/s: neighbour hammered "
        f"{near_rate:.2f}, far object hammered {far_rate:.2f} -> {near_rate / far_rate:.2f}x"
    )


if __name__ == "__main__":
    main()

"""Single-thread cost of each operation, in nanoseconds, against the builtin.

Each operation runs ``n`` times in a C-level loop (``map`` over a precomputed
argument list, consumed by ``deque(maxlen=0)``), so the loop overhead is small
and the same for every implementation.  The figure is the best of
``repeats`` timings divided by ``n``: the best, because on a machine shared
with other work, noise only ever adds time.

Operations (str keys, small-int values, ``size`` entries):

=========  =========================================  ==============================
op         mapping                                    sequence
=========  =========================================  ==============================
getitem    ``operator.getitem(c, k)``                 ``operator.getitem(c, i)``
get        ``c.get(k)`` (a bound-method call)         --
setitem    ``operator.setitem(c, k, v)`` (existing)   ``operator.setitem(c, i, v)``
contains   ``operator.contains(c, k)``                ``v in c``: a linear scan, 1/n
iter       per element of ``for x in c``               per element of ``for x in c``
len        ``len(c)``                                 ``len(c)``
append     --                                         ``c.append(v)`` from empty
pop        ``c.pop(k)`` until empty                   ``c.pop()`` until empty
=========  =========================================  ==============================
"""

from __future__ import annotations

import gc
import operator
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import partial
from itertools import repeat, starmap
from typing import Any

from benchmarks.registry import MAP, Impl

_consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend


@dataclass
class Cost:
    impl: str
    role: str
    family: str
    op: str
    ns_per_op: float
    n: int

    def to_json(self) -> dict[str, Any]:
        # The fields are the record; only the figure is rounded.
        return {**asdict(self), "ns_per_op": round(self.ns_per_op, 2)}


# Each builder gets (impl, keys, values) and returns (setup, run, n): ``setup()``
# builds fresh state outside the timing, ``run(state)`` does the n operations.
Builder = Callable[
    [Impl, list[Any], list[Any], int], tuple[Callable[[], Any], Callable[[Any], None], int]
]


def _on_one_container(
    c: Any, fn: Callable[..., Any], *arg_lists: list[Any]
) -> tuple[Callable[[], Any], Callable[[Any], None], int]:
    """A builder's result for ``fn(c, *args)`` over the argument lists, all on
    one container built beforehand: ``partial`` binds the container (a borrowed
    reference, as in scaling.py) and ``map`` is the C-level loop."""
    return (lambda: c), (lambda c: _consume(map(partial(fn, c), *arg_lists))), len(arg_lists[0])


def _map_builders() -> dict[str, Builder]:
    def filled(impl: Impl, keys: list[Any], values: list[Any]) -> Any:
        return impl.make(list(zip(keys, values, strict=True)))

    def getitem(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        return _on_one_container(filled(impl, keys, values), operator.getitem, _sample(keys, n))

    def get(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        # A bound-method call (``c.get(k)``), not partial: how get is called.
        c = filled(impl, keys, values)
        args = _sample(keys, n)
        return (lambda: c), (lambda c: _consume(map(c.get, args))), n

    def setitem(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        c = filled(impl, keys, values)
        return _on_one_container(c, operator.setitem, _sample(keys, n), _sample(values, n))

    def contains(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        return _on_one_container(filled(impl, keys, values), operator.contains, _sample(keys, n))

    def iterate(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        c = filled(impl, keys, values)
        passes = max(1, n // len(keys))
        return (lambda: c), (lambda c: _iterate(c, passes)), passes * len(keys)

    def length(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        c = filled(impl, keys, values)
        return (lambda: c), (lambda c: _consume(map(len, repeat(c, n)))), n

    def pop(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        items = list(zip(keys, values, strict=True))
        order = _sample(keys, len(keys), unique=True)
        return (lambda: impl.make(items)), (lambda c: _consume(map(c.pop, order))), len(keys)

    return {
        "getitem": getitem,
        "get": get,
        "setitem": setitem,
        "contains": contains,
        "iter": iterate,
        "len": length,
        "pop": pop,
    }


def _seq_builders() -> dict[str, Builder]:
    def getitem(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        indices = _sample(list(range(len(values))), n)
        return _on_one_container(impl.make(values), operator.getitem, indices)

    def setitem(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        indices = _sample(list(range(len(values))), n)
        return _on_one_container(
            impl.make(values), operator.setitem, indices, _sample(values, n)
        )

    def contains(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        # A linear scan: n is cut so the timing stays short; reported per lookup.
        m = max(10, n // 64)
        return _on_one_container(impl.make(values), operator.contains, _sample(values, m))

    def iterate(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        c = impl.make(values)
        passes = max(1, n // len(values))
        return (lambda: c), (lambda c: _iterate(c, passes)), passes * len(values)

    def length(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        c = impl.make(values)
        return (lambda: c), (lambda c: _consume(map(len, repeat(c, n)))), n

    def append(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        vals = _sample(values, n)
        return (lambda: impl.make([])), (lambda c: _consume(map(c.append, vals))), n

    def pop(impl: Impl, keys: list[Any], values: list[Any], n: int) -> Any:
        vals = _sample(values, n)
        return (lambda: impl.make(vals)), (lambda c: _consume(starmap(c.pop, repeat((), n)))), n

    return {
        "getitem": getitem,
        "setitem": setitem,
        "contains": contains,
        "iter": iterate,
        "len": length,
        "append": append,
        "pop": pop,
    }


def _iterate(c: Any, passes: int) -> None:
    for _ in range(passes):
        _consume(c)


def _sample(pool: list[Any], n: int, unique: bool = False) -> list[Any]:
    rng = random.Random(12345)
    if unique:
        out = list(pool)
        rng.shuffle(out)
        return out[:n]
    return [pool[rng.randrange(len(pool))] for _ in range(n)]


def time_once(setup: Callable[[], Any], run: Callable[[Any], None]) -> float:
    state = setup()
    t0 = time.perf_counter_ns()
    run(state)
    return float(time.perf_counter_ns() - t0)


def best_times(
    prepared: list[tuple[Callable[[], Any], Callable[[Any], None]]], repeats: int
) -> list[float]:
    """Best of ``repeats`` timings (ns) of each (setup, run), interleaved, with the
    cyclic GC off; repetition 0 warms up (and lets the interpreter specialise)."""
    best = [float("inf")] * len(prepared)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for rep in range(repeats + 1):
            for j, (setup, run) in enumerate(prepared):
                t = time_once(setup, run)
                if rep:
                    best[j] = min(best[j], t)
    finally:
        if was_enabled:
            gc.enable()
    return best


def measure(
    impls: list[Impl],
    size: int,
    n: int,
    repeats: int,
    progress: Callable[[str], None] | None = None,
) -> list[Cost]:
    """Best-of-``repeats`` ns/op for every (implementation, operation).

    The implementations are interleaved: repetition r of an operation runs
    for every implementation before repetition r + 1, so that background load
    that comes and goes does not skew the ratios to the builtin.
    """
    keys = [f"key:{i:07d}" for i in range(size)]
    values = [i % 256 for i in range(size)]
    out: list[Cost] = []
    builders = {MAP: _map_builders(), "seq": _seq_builders()}
    for family, ops in builders.items():
        members = [i for i in impls if i.available and i.family == family]
        for op, build in ops.items():
            todo = [i for i in members if i.supports(op)]
            if not todo:
                continue
            if progress is not None:
                progress(f"{family} {op}")
            prepared = [build(impl, keys, values, n) for impl in todo]
            best = best_times([(setup, run) for setup, run, _count in prepared], repeats)
            for impl, (_s, _r, count), t in zip(todo, prepared, best, strict=True):
                out.append(Cost(impl.name, impl.role, impl.family, op, t / count, count))
    return out


def count_steps(impls: list[Impl]) -> int:
    """Progress steps :func:`measure` reports."""
    builders = {MAP: _map_builders(), "seq": _seq_builders()}
    return sum(
        1
        for family, ops in builders.items()
        for op in ops
        if any(i.available and i.family == family and i.supports(op) for i in impls)
    )

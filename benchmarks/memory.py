"""Memory per element, against the builtin.

Two different numbers, because neither tells the whole story:

``traced``
    ``tracemalloc``: bytes the container allocated *and still holds* through
    Python's allocators (object, mem and raw domains; the package's backing
    arrays use ``PyMem_RawMalloc``, which is traced) while it was filled one
    element at a time, divided by the element count.  The items themselves are
    created before tracing starts, so they are not counted.  It counts
    requested bytes, not allocator rounding or pages kept by the allocator, and
    it includes anything not yet reclaimed (for example an old backing array
    still waiting for its grace period).

``sizeof``
    ``sys.getsizeof(c) / n``: what the type's ``__sizeof__`` reports (plus the
    GC header).  A type may leave out memory it owns, so this is the
    type's own claim, not a measurement.

Filling is one ``c[k] = v`` (mappings) or ``c.append(v)`` (sequences) at a
time, so the figure includes the over-allocation growth leaves behind;
``tuple``, which cannot grow, is built in one go.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.registry import MAP, Impl


@dataclass
class Footprint:
    impl: str
    role: str
    family: str
    n: int
    traced_bytes_per_item: float
    sizeof_bytes_per_item: float

    def to_json(self) -> dict[str, Any]:
        # The fields are the record; only the figures are rounded.
        return {
            **asdict(self),
            "traced_bytes_per_item": round(self.traced_bytes_per_item, 2),
            "sizeof_bytes_per_item": round(self.sizeof_bytes_per_item, 2),
        }


def _fill(impl: Impl, keys: list[Any], values: list[Any]) -> Any:
    if impl.family == MAP:
        c = impl.make([])
        for k, v in zip(keys, values, strict=True):
            c[k] = v
        return c
    if impl.supports("append"):
        c = impl.make([])
        for v in values:
            c.append(v)
        return c
    return impl.make(values)


def measure(
    impls: list[Impl], n: int, progress: Callable[[str], None] | None = None
) -> list[Footprint]:
    keys = [f"key:{i:07d}" for i in range(n)]
    values = [i % 256 for i in range(n)]
    out = []
    for impl in impls:
        if not impl.available:
            continue
        if progress is not None:
            progress(f"{impl.name} memory")
        gc.collect()
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            c = _fill(impl, keys, values)
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        size = sys.getsizeof(c)
        out.append(Footprint(impl.name, impl.role, impl.family, n, (after - before) / n, size / n))
        del c
    return out

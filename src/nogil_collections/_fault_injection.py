"""Control of the fault-injection build (private; for the test suite).

Built with ``NOGIL_COLLECTIONS_FAULT_INJECTION=1`` (``make fault-injection``),
every suspension point in the compiled modules (docs/design.md, "Suspension
points") detaches the thread for a moment, which on 3.13t-3.15t suspends the
critical section exactly as a contended ``PyMutex`` would, or calls a hook
that a test installed.  In a normal build :data:`ENABLED` is False and the
functions below do nothing (``hits()`` is empty).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from nogil_collections import _dict, _list

_MODULES: tuple[ModuleType, ...] = (_dict, _list)

#: True if the extension modules were built with fault injection.
ENABLED: bool = all(m._FAULT_INJECTION for m in _MODULES)


def set_hook(hook: Callable[[str], object] | None) -> None:
    """Call ``hook(point_name)`` at every suspension point, instead of the
    brief detach (None restores the detach).  The hook runs in the thread that
    reached the point, inside that thread's critical section; blocking in it
    (e.g. waiting for another thread) suspends that section.  Points reached
    while the hook runs are counted but do not call it again."""
    for m in _MODULES:
        m._fi_set_hook(hook)


def set_suspend(on: bool) -> None:
    """Detach at points without a hook (True, the default) or only count."""
    for m in _MODULES:
        m._fi_set_suspend(on)


def fail_allocation(name: str, nth: int = 1) -> None:
    """Make the ``nth`` next allocation at point ``name`` (``dict.table_alloc``,
    ``list.array_alloc``) fail with MemoryError."""
    module = _dict if name.startswith("dict.") else _list
    module._fi_arm_alloc_failure(name, nth)


def hits() -> dict[str, int]:
    """{point name: times reached} over all modules since the process started."""
    out: dict[str, int] = {}
    for m in _MODULES:
        for name, n in m._fi_hits().items():
            out[name] = out.get(name, 0) + n
    return out


def detach_stats() -> tuple[int, int]:
    """(detaches at suspension points that held an active critical section,
    of which the section was suspended while detached) over all modules.
    The two are equal where detaching suspends critical sections, as it does
    on 3.13t-3.15t; (0, 0) in a normal build."""
    active = suspended = 0
    for m in _MODULES:
        a, s = m._fi_detach_stats()
        active += a
        suspended += s
    return active, suspended


@contextmanager
def hook(fn: Callable[[str], object]) -> Iterator[None]:
    """``with hook(fn): ...`` installs fn for the block."""
    set_hook(fn)
    try:
        yield
    finally:
        set_hook(None)

"""The global stamp counter that orders invocations and responses.

A history is only as good as its stamps.  The checker relies on one fact:
if operation A's response stamp is smaller than operation B's invocation
stamp, then A really finished before B started.  That holds for any counter
whose increments are atomic and totally ordered (one modification order,
sequentially consistent): A's op completes, then A increments; B increments,
then B's op starts; and the counter orders the two increments.

Sources, in order of preference (``NOGIL_RACE_STAMPS`` overrides the choice):

``atomics``
    The ``atomics`` package (a seq_cst ``fetch_inc`` on a 64-bit cell).  It
    loads on GIL builds and on 3.14t and 3.15t.  Its public ``fetch_inc`` costs about
    6 us per call (pure-Python dispatch around a ctypes call), so the
    counter calls the library's resolved C function for ``fetch_inc``
    directly, with a per-thread result cell (about 0.6 us); if the library's
    internals ever change shape it falls back to the public method.
``count``
    ``itertools.count().__next__``.  On a free-threaded 3.13 build
    ``count_next`` (Modules/itertoolsmodule.c) is a compare-exchange loop on
    the counter (``_Py_atomic_compare_exchange_ssize``, seq_cst) while the
    value is below ``PY_SSIZE_T_MAX``, so every call returns a distinct,
    increasing value; on a GIL build the call runs entirely under the GIL.
    This is the fallback on 3.13t, where ``atomics`` cannot load (its cffi
    dependency refuses free-threaded 3.13).  About 35 ns per call.
``lock``
    A ``threading.Lock`` around an integer.  Always correct, slowest, and it
    adds a synchronisation point to every operation; use it only to rule out
    the counter when investigating a surprising result.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
from collections.abc import Callable

__all__ = ["STAMP_COUNTER_KIND", "make_stamp_counter", "stamp"]


def _atomics_counter() -> Callable[[], int]:
    import atomics  # type: ignore[import-untyped,unused-ignore]

    cell = atomics.atomic(width=8, atype=atomics.INT)
    # Release the buffer before interpreter teardown: atomics' __del__ calls
    # into cffi, which may already be torn down at exit.
    atexit.register(cell._core.release)
    try:
        import ctypes

        from atomics._impl.enums import (  # type: ignore[import-untyped,unused-ignore]
            MemoryOrder,
            OpType,
        )

        fp = cell._core.get_op_func(OpType.FETCH_INC)
        address = cell._core.address
        order = MemoryOrder.SEQ_CST.value
        if fp is None:
            raise LookupError("fetch_inc unsupported")
        local = threading.local()

        def fast() -> int:
            try:
                out = local.out
            except AttributeError:
                out = local.out = ctypes.c_int64(0)
                local.addr = ctypes.addressof(out)
            fp(address, order, local.addr)
            return int(out.value)

        # Self-test against the public API before trusting the shortcut.
        first = fast()
        second = cell.fetch_inc()
        third = fast()
        if not (first < second < third):
            raise ValueError("fetch_inc shortcut disagrees with the public API")
        fast.__keepalive__ = cell  # type: ignore[attr-defined]
        return fast
    except Exception:
        return cell.fetch_inc  # type: ignore[no-any-return]


def _lock_counter() -> Callable[[], int]:
    lock = threading.Lock()
    value = 0

    def locked() -> int:
        nonlocal value
        with lock:
            value += 1
            return value

    return locked


def make_stamp_counter(kind: str | None = None) -> tuple[str, Callable[[], int]]:
    """Return ``(kind, next_stamp)`` for a fresh, strictly increasing counter.

    ``kind`` is ``"atomics"``, ``"count"``, ``"lock"`` or None (best available:
    ``atomics`` if it imports, else ``count``).
    """
    if kind is None:
        kind = os.environ.get("NOGIL_RACE_STAMPS") or None
    if kind in (None, "atomics"):
        try:
            return "atomics", _atomics_counter()
        except Exception:
            if kind == "atomics":
                raise
            kind = "count"
    if kind == "count":
        return "count", itertools.count(1).__next__
    if kind == "lock":
        return "lock", _lock_counter()
    raise ValueError(f"unknown stamp counter kind {kind!r}: use 'atomics', 'count' or 'lock'")


STAMP_COUNTER_KIND, stamp = make_stamp_counter()
"""The process-wide counter used by the executor, and which source it uses."""

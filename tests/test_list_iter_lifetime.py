"""Lifetime of the list iterators' state (issue 21, defects 2 and 7).

Defect 2: the forward iterator dropped a stale read-ahead batch in the
middle of next(); an item's __del__ run by that drop could call next() on
the same iterator and exhaust it, which (GIL builds) released the list, and
the outer call then read through the dangling state pointer: it returned an
item of an unrelated list that had reused the memory, or crashed.

Defect 7: the GC's tp_clear reset the iterator's list reference while the
iterator's state still pointed into the list.  CPython's collector cannot be
made to call tp_clear on an object that a finalizer can still reach, so the
tests call the type's tp_clear slot directly (what the collector would do),
then keep using the iterator.

Each case runs in a subprocess: the broken code reads freed memory.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_NESTED_EXHAUST = """
    from nogil_collections import ConcurrentList

    state = {}

    class D:
        def __del__(self):
            it = state.pop("it", None)
            if it is None:
                return
            lst = state.pop("lst")
            lst.clear()
            del lst
            for _ in it:   # exhausts the iterator, which then drops the list
                pass
            # Reuse the freed list's memory for lists of a sentinel.
            state["other"] = [ConcurrentList(["SENTINEL"] * 64) for _ in range(50)]

    lst = ConcurrentList([0, D()] + list(range(2, 64)))
    it = iter(lst)
    assert next(it) == 0          # reads ahead: the buffer holds D
    lst[1] = "x"                  # stale batch; the buffer holds D's last reference
    state["lst"] = lst
    state["it"] = it
    del lst
    r = next(it, "STOP")          # drops the stale batch: D.__del__ exhausts `it`
    # The item at index 1 when it was read ("x"), or the end; never an item of
    # another list.
    print(repr(r))
    print(repr(next(it, "STOP")))
"""


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(script), *args],
        capture_output=True, text=True, timeout=120,
    )


def test_del_exhausting_the_iterator_while_a_stale_batch_is_dropped() -> None:
    r = _run(_NESTED_EXHAUST)
    assert r.returncode == 0, r.stderr[-3000:]
    first, second = r.stdout.split()
    assert first in ("'x'", "'STOP'"), r.stdout
    assert second == "'STOP'", r.stdout


_FORCED_CLEAR = """
    import ctypes, gc, sys
    from nogil_collections import ConcurrentList

    get_slot = ctypes.pythonapi.PyType_GetSlot
    get_slot.restype = ctypes.c_void_p
    get_slot.argtypes = [ctypes.py_object, ctypes.c_int]
    Py_tp_clear = 51   # Include/typeslots.h

    kind = sys.argv[1]
    lst = ConcurrentList(range(100))
    it = iter(lst) if kind == "forward" else reversed(lst)
    first = next(it)
    clear = get_slot(type(it), Py_tp_clear)
    if clear:
        # What the collector does to an object of a garbage cycle.
        assert ctypes.CFUNCTYPE(ctypes.c_int, ctypes.py_object)(clear)(it) == 0
    del lst
    gc.collect()
    junk = [ConcurrentList(["SENTINEL"] * 100) for _ in range(50)]
    print(first, list(it))
"""


@pytest.mark.parametrize("kind", ["forward", "reverse"])
def test_iterator_survives_its_tp_clear(kind: str) -> None:
    r = _run(_FORCED_CLEAR, kind)
    assert r.returncode == 0, r.stderr[-3000:]
    expect = (0, list(range(1, 100))) if kind == "forward" else (99, list(range(98, -1, -1)))
    assert r.stdout.strip() == f"{expect[0]} {expect[1]}"


def test_iterator_cycle_through_its_read_ahead_is_collected() -> None:
    # no_gc_clear keeps the list reference; the patched tp_clear still drops
    # the read-ahead buffer, which is what breaks a cycle through an item.
    import gc
    import weakref

    from nogil_collections import ConcurrentList

    class Node:
        it: object = None

    n = Node()
    ref = weakref.ref(n)
    lst = ConcurrentList([0, n, 2])
    it = iter(lst)
    n.it = it
    assert next(it) == 0       # the buffer now holds n, and n holds it
    lst.clear()
    del n, it, lst
    gc.collect()
    assert ref() is None

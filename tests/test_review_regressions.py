"""Regressions found in the review of the issue-11 read paths and the
handle module (each test failed before its fix).

- A writer that copies the list under its lock (``lst[:] = lst``,
  ``sort``) read the size, then allocated the copy.  On GIL builds before
  3.12 that allocation may run the garbage collector inline, and a
  finalizer may change the list meanwhile (there the critical section is
  no lock at all): the copy then read a cleared or shrunk array (a NULL
  dereference, a segfault on 3.11).
- ``len(d)`` read ``used`` alone, while an insert publishes its key (and a
  delete hides it) before updating ``used``: a thread that saw ``k in d``
  and then read ``len(d)`` could get the count from before k's insert.
- The forward list iterator refilled its buffer over references that a
  re-entrant ``next()`` (from a ``__del__`` run while it dropped a stale
  batch) had just put there: they leaked.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from typing import Any

import pytest

from _threads import run_threads
from nogil_collections import ConcurrentDict, ConcurrentList
from nogil_collections import _dict as _dict_module

_GC_DURING_LOCKED_COPY = """
import gc, sys
from nogil_collections import ConcurrentList

class Bomb:
    # A cyclic object whose finalizer clears the list: it runs when the GC
    # runs, which on 3.11 is inside whichever allocation crosses the
    # generation-0 threshold.
    def __init__(self, lst):
        self.lst = lst
        self.me = self
    def __del__(self):
        self.lst.clear()

for op in ("slice", "sort"):
    # Move the threshold so that the collection lands on each allocation of
    # the operation in turn (one of them is the copy's PyList_New).
    for k in range(40):
        lst = ConcurrentList(range(100, 0, -1))
        gc.collect()
        gc.disable()
        Bomb(lst)
        gc.set_threshold(gc.get_count()[0] + k)
        gc.enable()
        try:
            if op == "slice":
                lst[:] = lst
            else:
                lst.sort()
        except ValueError as e:
            assert "modified during sort" in str(e), e
        finally:
            gc.set_threshold(700)
        gc.collect()
        lst._check()
        assert list(lst) in ([], list(range(100, 0, -1)), list(range(1, 101))), list(lst)
print("ok")
"""


def test_gc_finalizer_during_a_locked_copy_does_not_crash() -> None:
    proc = subprocess.run([sys.executable, "-c", _GC_DURING_LOCKED_COPY],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (
        proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])


@pytest.mark.free_threaded_only  # the window is C code: the GIL hides it
def test_len_agrees_with_lookups_while_a_key_is_inserted() -> None:
    # Keys 0..N-1 are inserted in order and never deleted, so once k is seen
    # present, len(d) >= k + 1 at every later instant.  The test switch
    # widens the window between the key's publication and the count update
    # (preemption opens the same window, rarely).
    n_keys = 120
    d: ConcurrentDict[int, int] = ConcurrentDict()
    bad: list[tuple[int, int]] = []

    def writer() -> None:
        for k in range(n_keys):
            d[k] = k

    def reader() -> None:
        k = 0
        while k < n_keys:
            if k in d:
                n = len(d)
                if n < k + 1:
                    bad.append((k, n))
                k += 1

    _dict_module._set_mutant(2)
    try:
        run_threads([writer, reader])
    finally:
        _dict_module._set_mutant(0)
    assert not bad, f"k in d, then len(d) without k: {bad[:5]} ({len(bad)} times)"
    assert len(d) == n_keys
    d._check()


def test_reentrant_next_while_the_iterator_drops_its_batch_leaks_nothing() -> None:
    # The forward iterator buffers references to a run of items.  When the
    # run goes stale it drops them; a __del__ run by that drop calls next()
    # on the same iterator, which reads a new run into the buffer.  Before
    # the fix the outer call then read its own run over it: 31 leaked
    # references (the new items never died).
    state: dict[str, Any] = {"it": None, "armed": False, "fired": False}

    class Dropper:
        def __del__(self) -> None:
            if state["armed"] and not state["fired"]:
                state["fired"] = True
                next(state["it"])

    class Item:
        pass

    lst = ConcurrentList([Dropper() for _ in range(40)])
    it = iter(lst)
    state["it"] = it
    next(it)                          # a run of Droppers is buffered
    items = [Item() for _ in range(40)]
    refs = [weakref.ref(x) for x in items]
    lst[:] = items                    # the run is stale; the Droppers live only in it
    del items
    state["armed"] = True
    next(it)                          # drops the run -> Dropper.__del__ -> nested next()
    assert state["fired"]
    lst._check()
    del it, lst
    state.clear()
    gc.collect()
    leaked = sum(r() is not None for r in refs)
    assert leaked == 0, f"{leaked} items kept alive by leaked references"

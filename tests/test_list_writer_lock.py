"""ConcurrentList's writers lock a separate object, never the list itself.

docs/design.md, "The writer lock": the mutex of a critical section lives in
the locked object's header, on the cache line from which every call on the
object loads ``ob_type``.  So every writer (and every reader's locked
fallback) holds the critical section of the list's ``_WriterLock`` instead.
These tests hold one mutex or the other from a thread that spins without
detaching (so its section is never suspended: ``_selftest.hold_section``)
and check which operations wait for it.
"""

from __future__ import annotations

import sysconfig
import threading
import time
from collections.abc import Callable

import pytest

from _threads import run_threads
from nogil_collections import ConcurrentList, _list
from nogil_collections._core import _selftest as st

FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
needs_ft = pytest.mark.skipif(
    not FREE_THREADED_BUILD, reason="critical sections are no-ops on GIL builds"
)
HOLD_SECONDS = 10.0  # a waiting test gives up after this (as the held fixture: conftest.py)


def test_each_list_has_its_own_writer_lock() -> None:
    a, b = ConcurrentList([1]), ConcurrentList()
    la, lb = _list._writer_lock_of(a), _list._writer_lock_of(b)
    assert la is not a and la is not b and la is not lb
    assert _list._writer_lock_of(a[:]) is not la  # copies get their own
    assert type(la).__basicsize__ % 64 == 0 or not FREE_THREADED_BUILD


@needs_ft
def test_writer_locks_are_alone_on_their_cache_line() -> None:
    # 128-byte objects: a mimalloc size class whose blocks are 64-byte
    # aligned, so the mutex's line holds nothing another thread writes.
    locks = [_list._writer_lock_of(ConcurrentList()) for _ in range(256)]
    assert all(id(lk) % 64 == 0 for lk in locks)


@needs_ft
def test_writes_do_not_take_the_lists_own_header_mutex(held: Callable[[object], None]) -> None:
    lst = ConcurrentList(range(10))
    other = ConcurrentList(range(5))
    held(lst)  # the mutex in lst's own header: no writer of lst may need it
    lst[0] = 100
    lst.append(11)
    lst.extend([12, 13])
    lst.extend(other)
    lst.insert(0, -1)
    del lst[0]
    lst.pop()
    lst.remove(12)
    lst[2:4] = [7, 8, 9]
    lst.sort()
    lst.reverse()
    assert lst.compare_and_set(0, lst[0], 42)
    lst.update(1, lambda v: v + 1)
    lst.heapify()
    lst.heappush(0)
    lst.heappop()
    assert lst.append_if_absent(1000)
    assert (lst == other) is False  # both writer locks at once
    lst *= 1
    lst.clear()
    # Every operation above finished while the holder still held the mutex.
    assert st.section_held()


@needs_ft
def test_writer_lock_holds_back_writers_not_readers(held: Callable[[object], None]) -> None:
    lst = ConcurrentList(range(10))
    held(_list._writer_lock_of(lst))
    # Lock-free reads go on while a writer holds the lock.
    assert lst[3] == 3 and len(lst) == 10 and 5 in lst
    assert list(lst) == list(range(10)) and lst[2:4] == [2, 3]
    assert lst.snapshot() == list(range(10)) and lst == list(range(10))
    assert st.section_held()
    started, done = threading.Event(), threading.Event()

    def writer() -> None:
        started.set()
        lst.append(10)
        done.set()

    w = threading.Thread(target=writer)
    w.start()
    assert started.wait(HOLD_SECONDS)
    time.sleep(0.3)
    assert not done.is_set(), "a write went ahead while its writer lock was held"
    st.release_section()
    assert done.wait(HOLD_SECONDS)
    w.join(HOLD_SECONDS)
    assert lst[-1] == 10


@needs_ft
def test_two_list_operations_in_opposite_orders_do_not_deadlock() -> None:
    # a == b, a + b, a.extend(b) and a[:] = b hold both lists' writer locks
    # (or read one and lock the other); two threads doing them in opposite
    # orders must never deadlock (critical sections lock two mutexes in
    # address order).
    a = ConcurrentList(range(50))
    b = ConcurrentList(range(50, 100))
    stop = time.monotonic() + 1.0

    def work(x: ConcurrentList[int], y: ConcurrentList[int]) -> int:
        n = 0
        while time.monotonic() < stop or n == 0:  # one round even if started late
            x[:] = y
            _ = x == y
            _ = x < y
            _ = x + y
            x.extend(y)
            del x[50:]
            x[:] = list(range(50))
            n += 1
        return n

    done = run_threads([lambda: work(a, b), lambda: work(b, a)], timeout=30.0)
    assert all(n > 0 for n in done)
    a._check()
    b._check()

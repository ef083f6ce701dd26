"""ConcurrentList.append and pop() without a critical section (ncc_cs_try_lock).

When the writer lock's mutex is free and the write cannot block (append into
an array with room, pop() of the last item without a shrink), the writer takes
the mutex with one compare-exchange and no critical section, as CPython's own
interpreter does for ``lst.append(x)`` (docs/design.md, "The writer lock").
That is sound only if:

- a held critical section (not suspended) still holds these writes back;
- a *suspended* critical section (its thread blocked inside it, so its mutex
  is released) lets them through, and its owner re-validates what it read
  when it resumes, exactly as it does after a write that took the section;
- a write that finds no room, or an empty list, falls back to the critical
  section without having changed anything.

The suspension here is real: ``update``'s function blocks on an Event inside
the list's critical section.  Room in the array is checked through
``__sizeof__`` (it counts the backing array's capacity).
"""

from __future__ import annotations

import sysconfig
import threading
import time
from collections.abc import Callable

import pytest

from _threads import assert_held_back_until_released, run_threads
from nogil_collections import ConcurrentList, _list
from nogil_collections._core import _selftest as st

FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
needs_ft = pytest.mark.skipif(
    not FREE_THREADED_BUILD, reason="critical sections are no-ops on GIL builds"
)
WAIT = 10.0


def _has_room(lst: ConcurrentList[int]) -> bool:
    """Whether one more append fits without growing the array (checked by
    doing it, and undoing it)."""
    size = lst.__sizeof__()
    lst.append(0)
    grew = lst.__sizeof__() != size
    lst.pop()
    return not grew


def _list_with_room(n: int) -> ConcurrentList[int]:
    """range(n), built by appends, with room for at least one more item."""
    lst: ConcurrentList[int] = ConcurrentList()
    for i in range(n):
        lst.append(i)
    assert _has_room(lst), "pick another n: this one fills the array"
    return lst


@needs_ft
@pytest.mark.parametrize("op", ["append", "pop"])
def test_a_held_writer_lock_holds_back_the_fast_path(
    op: str, held: Callable[[object], None]
) -> None:
    lst = _list_with_room(12)
    held(_list._writer_lock_of(lst))
    assert_held_back_until_released(
        (lambda: lst.append(99)) if op == "append" else lst.pop, st.release_section, op, WAIT
    )
    expected = [*range(12), 99] if op == "append" else list(range(11))
    assert list(lst) == expected
    lst._check()


def _suspended_update(lst: ConcurrentList[int], index: int) -> tuple[
    threading.Thread, threading.Event, list[object], list[int]
]:
    """A thread runs lst.update(index, fn) whose first fn call blocks on an
    Event inside the list's critical section (suspending it)."""
    inside, go = threading.Event(), threading.Event()
    seen: list[int] = []
    out: list[object] = []

    def fn(v: int) -> int:
        seen.append(v)
        if len(seen) == 1:
            inside.set()
            assert go.wait(WAIT)
        return v * 1000

    def run() -> None:
        try:
            out.append(lst.update(index, fn))
        except BaseException as e:  # reported by the test
            out.append(e)

    t = threading.Thread(target=run)
    t.start()
    assert inside.wait(WAIT)
    return t, go, out, seen


@needs_ft
def test_fast_append_and_pop_run_while_a_section_is_suspended_and_it_revalidates() -> None:
    lst = _list_with_room(12)
    t, go, out, seen = _suspended_update(lst, -1)
    # The updater is blocked inside its critical section: suspended, so the
    # mutex is free and these writes go ahead (the fast path when there is
    # room, else the section).
    assert _has_room(lst)
    lst.append(100)          # index -1 now names another item
    assert lst.pop() == 100  # and the old one again, but the version moved
    lst.append(200)
    assert t.is_alive(), "the updater finished while it was blocked"
    go.set()
    t.join(WAIT)
    # fn ran on 11 first; that result was discarded because the list changed
    # structurally meanwhile, and fn ran again on the current last item.
    assert seen == [11, 200]
    assert out == [200_000]
    assert list(lst) == [*range(12), 200_000]
    lst._check()


@needs_ft
def test_fast_pop_of_the_item_a_suspended_update_read() -> None:
    lst = _list_with_room(12)
    t, go, out, seen = _suspended_update(lst, 11)
    assert lst.pop() == 11   # index 11 is now out of range
    go.set()
    t.join(WAIT)
    assert seen == [11]
    assert len(out) == 1 and isinstance(out[0], IndexError)
    assert list(lst) == list(range(11))
    lst._check()


def test_pop_falls_back_without_changing_anything() -> None:
    # Empty: the fast path declines and the section raises list's error.
    lst: ConcurrentList[int] = ConcurrentList()
    with pytest.raises(IndexError, match=r"^pop from empty list$"):
        lst.pop()
    # A pop that shrinks the array goes through the section: the items
    # come out in order all the way down, with every shrink on the way.
    lst.extend(range(1000))
    big = lst.__sizeof__()
    assert [lst.pop() for _ in range(1000)] == list(range(999, -1, -1))
    assert lst.__sizeof__() < big
    lst._check()
    with pytest.raises(IndexError, match=r"^pop from empty list$"):
        lst.pop()


def test_append_falls_back_to_grow() -> None:
    # Every append of a growing list: the ones with room take the fast path,
    # the others grow under the section; the order is kept across both.
    lst: ConcurrentList[int] = ConcurrentList()
    sizes = set()
    for i in range(5000):
        lst.append(i)
        sizes.add(lst.__sizeof__())
    assert len(sizes) > 5  # it grew several times
    assert list(lst) == list(range(5000))
    lst._check()


def test_append_and_pop_from_inside_the_lists_own_update() -> None:
    # fn runs inside the list's critical section, on the same thread: the
    # fast path finds the mutex held (by this very thread) and falls back to
    # the section, which re-enters (3.14+) or suspends the outer one (3.13):
    # either way no deadlock, and update sees the list moved.
    lst = _list_with_room(12)
    calls: list[int] = []

    def fn(v: int) -> int:
        calls.append(v)
        if len(calls) == 1:
            lst.append(50)
            assert lst.pop() == 50
        return -v

    assert lst.update(-1, fn) == -11
    assert calls == [11, 11]
    assert list(lst) == [*range(11), -11]
    lst._check()


@needs_ft
def test_appenders_and_poppers_against_suspending_writers() -> None:
    # Fast appends and pops of several threads, while another thread keeps
    # a critical section suspended (update's fn sleeps): nothing lost,
    # nothing duplicated.
    lst: ConcurrentList[int] = ConcurrentList(range(64))
    stop = time.monotonic() + 1.0
    popped: list[list[int]] = [[], []]

    def appender(base: int) -> int:
        n = 0
        while time.monotonic() < stop:
            lst.append(base + n)
            n += 1
        return n

    def popper(k: int) -> int:
        while time.monotonic() < stop:
            try:
                popped[k].append(lst.pop())
            except IndexError:
                pass
        return 0

    def suspender() -> int:
        n = 0
        while time.monotonic() < stop:
            try:
                lst.update(0, lambda v: (time.sleep(0.0005), v)[1])
            except (IndexError, RuntimeError):
                pass
            n += 1
        return n

    a, b = 1 << 40, 2 << 40  # far apart: one appender can do millions
    counts = run_threads(
        [lambda: appender(a), lambda: appender(b),
         lambda: popper(0), lambda: popper(1), suspender],
        timeout=60.0,
    )
    lst._check()
    appended = {a + i for i in range(counts[0])} | {b + i for i in range(counts[1])}
    everything = sorted([*range(64), *appended])
    out = [*popped[0], *popped[1], *lst]
    assert sorted(out) == everything

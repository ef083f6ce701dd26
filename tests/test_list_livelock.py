"""ConcurrentList: no livelock when an __eq__ writes to the list on every call
(issue 21, defect 3 and "Livelocks, by mechanism").

Every path that restarts a lookup or a comparison after a concurrent write is
bounded (docs/design.md, "Restarts after a concurrent write: the bounds").
Each test below drives one such path with an __eq__ that writes to the
container on EVERY call, and compares the outcome with the builtin's.  The
hostile __eq__ raises after LIMIT calls, and the call runs in a thread joined
with a timeout, so a livelock fails the test instead of hanging it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from _livelock import Eq, Hostile, at_point_in_another_thread, bounded, fi, needs_fi
from nogil_collections import ConcurrentList

CL = ConcurrentList


# --------------------------------------------------------------------------
# ConcurrentList: an item whose __eq__ writes to the list on every call (it
# appends an item and removes it again: every call moves the version).


def _list_writer(lst: Any) -> Callable[[], None]:
    def write() -> None:
        lst.append("tmp")
        lst.pop()

    return write


def _run_list(cls: type, op: Callable[[Any, Callable[[int], Hostile]], Any]):
    calls = [0]
    lst = cls()
    write = _list_writer(lst)

    def item(v: int) -> Hostile:
        return Hostile(v, write, calls)

    lst.extend(item(i) for i in range(12))
    calls[0] = 0
    result = bounded(lambda: op(lst, item))
    return (result, [x.v if isinstance(x, Hostile) else x for x in list(lst)]), calls[0], lst


@pytest.mark.parametrize("via_handle", [False, True], ids=["list", "handle"])
@pytest.mark.parametrize(
    "operation", ["remove", "index", "count", "in", "eq", "append_if_absent", "append_if_new"]
)
def test_list_scans_with_items_whose_eq_writes_on_every_call(
    operation: str, via_handle: bool
) -> None:
    def op(lst: Any, item: Callable[[int], Hostile]) -> Any:
        target = lst.handle() if via_handle and isinstance(lst, CL) else lst
        probe = Hostile(10, lambda: None, [0])
        if operation == "remove":
            target.remove(probe)
            return None
        if operation == "index":
            return target.index(probe)
        if operation == "count":
            return target.count(probe)
        if operation == "in":
            return probe in target
        if operation in ("append_if_absent", "append_if_new"):
            if operation == "append_if_new":
                probe = Hostile(50, lambda: None, [0])
            if isinstance(lst, list):
                if probe in lst:
                    return False
                lst.append(probe)
                return True
            return target.append_if_absent(probe)
        return target == [Hostile(i, lambda: None, [0]) for i in range(12)]

    (want, want_calls, _), (got, got_calls, lst) = (_run_list(list, op), _run_list(CL, op))
    assert got == want
    # remove rescans from the start after a write, at most NCL_FIND_RESTARTS
    # (8) times, then goes on as list does.
    assert got_calls <= want_calls + 8 * 11
    lst._check()


@pytest.mark.parametrize("equal", [True, False], ids=["equal", "unequal"])
@pytest.mark.parametrize("via_handle", [False, True], ids=["list", "handle"])
def test_list_compare_and_set_with_an_item_whose_eq_writes(via_handle: bool, equal: bool) -> None:
    # The comparison restarts when the list changed during __eq__; an answer
    # for the same item object still in the slot is reused, so the result is
    # the definition's (self[i] == expected), not identity's.
    for_each = []
    for cls in (list, CL):
        calls = [0]
        lst = cls()
        write = _list_writer(lst)
        lst.extend([0, Hostile(1, write, calls), 2])
        expected = Hostile(1 if equal else 5, lambda: None, [0])
        calls[0] = 0
        if cls is list:
            ok = lst[1] is expected or lst[1] == expected
            if ok:
                lst[1] = "new"
        else:
            target = lst.handle() if via_handle else lst
            ok = bounded(lambda t=target, e=expected: t.compare_and_set(1, e, "new"))
        for_each.append((ok, [x if not isinstance(x, Hostile) else ("H", x.v) for x in lst],
                         calls[0]))
    (want_ok, want_items, want_calls), (got_ok, got_items, got_calls) = for_each
    assert (got_ok, got_items) == (want_ok, want_items)
    assert got_calls <= want_calls + 1


@needs_fi
@pytest.mark.timeout(60)
@pytest.mark.parametrize("replacement", ["unequal", "equal", "other_index"])
def test_fault_list_compare_and_set_sees_a_write_during_the_item_eq(replacement: str) -> None:
    stored = Eq(1)
    lst: ConcurrentList[Any] = ConcurrentList([0, stored, 2])
    new_item = {"unequal": Eq(2), "equal": Eq(1), "other_index": None}[replacement]

    def write() -> None:
        if replacement == "other_index":
            lst.insert(0, "front")   # moves the items: index 1 now holds 0
        else:
            lst[1] = new_item

    hook, fired = at_point_in_another_thread("list.eq", write)
    with fi.hook(hook):
        ok = lst.compare_and_set(1, Eq(1), "new")
    assert fired
    lst._check()
    if replacement == "equal":
        assert ok and list(lst) == [0, "new", 2]
    elif replacement == "unequal":
        assert not ok and lst[1] is new_item
    else:
        # index 1 now holds 0, which is not equal to Eq(1).
        assert not ok and list(lst) == ["front", 0, stored, 2]
    assert stored.calls == 1


"""No livelock when an __eq__ writes to the container on every call (issue 21,
defect 3 and "Livelocks, by mechanism").

Every path that restarts a lookup or a comparison after a concurrent write is
bounded (docs/design.md, "Restarts after a concurrent write: the bounds").
Each test below drives one such path with an __eq__ that writes to the
container on EVERY call, and compares the outcome with the builtin's.  The
hostile __eq__ raises after LIMIT calls, and the call runs in a thread joined
with a timeout, so a livelock fails the test instead of hanging it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from nogil_collections import ABSENT, ConcurrentDict, ConcurrentList

CD = ConcurrentDict
CL = ConcurrentList
LIMIT = 400


class Livelock(RuntimeError):
    pass


def bounded(fn: Callable[[], Any], timeout: float = 60.0) -> Any:
    """fn() in a thread: its result, or its exception re-raised; a call that
    does not end within timeout fails the test."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(("ok", fn()))
        except BaseException as e:
            out.append(("raised", e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail(f"no result after {timeout} s: a livelock")
    kind, value = out[0]
    if kind == "raised":
        raise value
    return value


class Hostile:
    """A key or value whose __eq__ writes to its container on every call
    (through `write`), counting the calls in the shared `calls` box."""

    def __init__(self, v: Any, write: Callable[[], None], calls: list[int], h: int = 7):
        self.v = v
        self.write = write
        self.calls = calls
        self.h = h

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        self.calls[0] += 1
        if self.calls[0] > LIMIT:
            raise Livelock(f"__eq__ called {self.calls[0]} times")
        self.write()
        return isinstance(other, Hostile) and other.v == self.v

    def __repr__(self) -> str:
        return f"Hostile({self.v!r})"


def _counter_writer(d: Any) -> Callable[[], None]:
    def write() -> None:
        d["eq calls"] = d.get("eq calls", 0) + 1

    return write


def _hostile_items(d: Any) -> list[Any]:
    return sorted(
        ((k.v, v if not isinstance(v, Hostile) else ("H", v.v)) for k, v in d.items()
         if isinstance(k, Hostile)),
        key=repr,
    )


# --------------------------------------------------------------------------
# ConcurrentDict: keys whose __eq__ writes to the dict on every call.


def _run_dict_keys(
    cls: type, nstored: int, op: Callable[[Any, Callable[[int], Hostile]], Any]
) -> Any:
    calls = [0]
    d = cls()
    write = _counter_writer(d)

    def key(v: int) -> Hostile:
        return Hostile(v, write, calls)

    for i in range(nstored):
        d[key(i)] = i
    calls[0] = 0
    result = bounded(lambda: op(d, key))
    return (result, _hostile_items(d)), calls[0], d


def _handle_or_self(d: Any, via_handle: bool) -> Any:
    return d.handle() if via_handle and isinstance(d, CD) else d


@pytest.mark.parametrize("via_handle", [False, True], ids=["dict", "handle"])
@pytest.mark.parametrize("how", ["update", "ior", "update_kv_pairs"])
def test_update_with_keys_whose_eq_writes_on_every_call(how: str, via_handle: bool) -> None:
    # Before the fix _apply_batch redid every lookup, with no memo, whenever
    # `version` moved: each pass called __eq__ again and moved it again.
    def op(d: Any, key: Callable[[int], Hostile]) -> Any:
        target = _handle_or_self(d, via_handle)
        new = {key(1): "a", key(3): "b", key(9): "c"}
        if how == "update":
            target.update(new)
        elif how == "ior":
            target |= new
        else:
            target.update(list(new.items()))
        return None

    (want, want_calls, _), (got, got_calls, d) = (
        _run_dict_keys(dict, 4, op), _run_dict_keys(CD, 4, op))
    assert got == want
    assert got_calls <= want_calls + 2 * 4
    d._check()


@pytest.mark.parametrize("via_handle", [False, True], ids=["dict", "handle"])
@pytest.mark.parametrize(
    "operation",
    ["set_new", "set_existing", "del", "pop", "pop_default", "setdefault", "in", "get"],
)
def test_more_colliding_keys_than_the_memo_holds(operation: str, via_handle: bool) -> None:
    # 12 stored keys needing __eq__ on one probe sequence: each restart used
    # to memoize one answer in a ring of 8, forgetting the oldest, so a lookup
    # past the 9th such key restarted forever.
    def op(d: Any, key: Callable[[int], Hostile]) -> Any:
        target = _handle_or_self(d, via_handle)
        if operation == "set_new":
            target[key(99)] = "new"
        elif operation == "set_existing":
            target[key(11)] = "new"
        elif operation == "del":
            del target[key(11)]
        elif operation == "pop":
            return target.pop(key(11))
        elif operation == "pop_default":
            return target.pop(key(99), "dflt")
        elif operation == "setdefault":
            return target.setdefault(key(99), "dflt")
        elif operation == "in":
            return key(11) in target
        else:
            return target.get(key(99), "fallback")
        return None

    (want, want_calls, _), (got, got_calls, d) = (
        _run_dict_keys(dict, 12, op), _run_dict_keys(CD, 12, op))
    assert got == want
    assert got_calls <= want_calls + 2 * 12
    d._check()


# --------------------------------------------------------------------------
# ConcurrentDict: a stored VALUE whose __eq__ writes to the dict on every call.


def _cas_reference(d: dict, key: Any, expected: Any, new: Any) -> bool:
    """compare_and_set's definition, on a builtin dict."""
    cur = d.get(key, ABSENT)
    if expected is ABSENT:
        ok = cur is ABSENT
    else:
        ok = cur is not ABSENT and (cur is expected or cur == expected)
    if ok:
        if new is ABSENT:
            d.pop(key, None)
        else:
            d[key] = new
    return ok


def _run_dict_values(cls: type, operation: str, via_handle: bool, equal: bool):
    calls = [0]
    d = cls()
    write = _counter_writer(d)
    d["k"] = Hostile(1, write, calls)
    d["other"] = 0
    expected = Hostile(1 if equal else 2, lambda: None, [0])
    target = _handle_or_self(d, via_handle)
    calls[0] = 0

    def op() -> Any:
        if operation == "compare_and_set":
            if cls is dict:
                return _cas_reference(d, "k", expected, "new")
            return target.compare_and_set("k", expected, "new")
        if operation == "pop_if":
            if cls is dict:
                return _cas_reference(d, "k", expected, ABSENT)
            return target.pop_if("k", expected)
        # update_item: fn puts an equal (or unequal) but distinct value in
        # place of the one it was given, so the compare-and-set that follows
        # compares the stored value with the one fn saw.
        seen = []

        def fn(v: Any) -> Any:
            seen.append(v)
            if len(seen) == 1:
                d["k"] = Hostile(1 if equal else 3, write, calls)
            return ("new", len(seen))

        if cls is dict:
            v = d["k"]
            new = fn(v)
            cur = d["k"]
            if not (cur is v or cur == v):
                new = fn(cur)
            d["k"] = new
            return new
        return target.update_item("k", fn)

    result = bounded(op)
    rest = {k: (("H", v.v) if isinstance(v, Hostile) else v) for k, v in d.items()
            if k != "eq calls"}
    return (result, rest), calls[0], d


@pytest.mark.parametrize("equal", [True, False], ids=["equal", "unequal"])
@pytest.mark.parametrize("via_handle", [False, True], ids=["dict", "handle"])
@pytest.mark.parametrize("operation", ["compare_and_set", "pop_if", "update_item"])
def test_value_whose_eq_writes_on_every_call(operation: str, via_handle: bool, equal: bool) -> None:
    # Before the fix compare_and_set re-did the lookup AND the comparison
    # whenever `version` moved during the value's __eq__: forever, here.
    (want, want_calls, _), (got, got_calls, d) = (
        _run_dict_values(dict, operation, via_handle, equal),
        _run_dict_values(CD, operation, via_handle, equal))
    assert got == want
    assert got_calls <= want_calls + 2
    d._check()


@pytest.mark.parametrize("cls", [dict, CD])
def test_items_view_and_equality_with_a_value_whose_eq_writes(cls: type) -> None:
    calls = [0]
    d = cls()
    d["k"] = Hostile(1, _counter_writer(d), calls)
    probe = Hostile(1, lambda: None, [0])
    assert bounded(lambda: ("k", probe) in d.items())
    other = {"k": probe, "eq calls": d["eq calls"]}
    # dict compares the live dict (and sees the "eq calls" its own comparison
    # wrote), ConcurrentDict one snapshot: either answer, one __eq__ call.
    assert bounded(lambda: d == other) in (True, False)
    assert calls[0] == 2


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
@pytest.mark.parametrize("operation", ["remove", "index", "count", "in", "eq"])
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

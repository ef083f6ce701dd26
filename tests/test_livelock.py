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


# --------------------------------------------------------------------------
# The kept answers under a real suspension (fault-injection build): a write
# by another thread while __eq__ runs must still be seen.

try:
    from nogil_collections import _fault_injection as fi

    _FI = bool(fi.ENABLED)
except ImportError:  # pragma: no cover - the module ships with the package
    _FI = False

needs_fi = pytest.mark.skipif(not _FI, reason="needs the fault-injection build "
                              "(make fault-injection)")


def _at_point_in_another_thread(point: str, action: Callable[[], object]) -> Any:
    """A hook: the first time this thread reaches `point`, run `action` in
    another thread and wait for it (our critical section is suspended)."""
    me = threading.get_ident()
    fired: list[str] = []

    def hook(reached: str) -> None:
        if reached == point and threading.get_ident() == me and not fired:
            fired.append(reached)
            t = threading.Thread(target=action)
            t.start()
            t.join(10)

    return hook, fired


class _Eq:
    """Equal to every _Eq with the same v; counts its __eq__ calls."""

    def __init__(self, v: int) -> None:
        self.v = v
        self.calls = 0

    def __eq__(self, other: object) -> bool:
        self.calls += 1
        return isinstance(other, _Eq) and other.v == self.v

    __hash__ = None  # type: ignore[assignment]


@needs_fi
@pytest.mark.timeout(60)
@pytest.mark.parametrize("replacement", ["unequal", "equal", "same", "other_key"])
def test_fault_dict_compare_and_set_sees_a_write_during_the_value_eq(replacement: str) -> None:
    stored = _Eq(1)
    d: ConcurrentDict[str, Any] = ConcurrentDict(k=stored, other=0)
    new_value = {"unequal": _Eq(2), "equal": _Eq(1), "same": stored, "other_key": None}[replacement]

    def write() -> None:
        if replacement == "other_key":
            d["other"] = 1
        else:
            d["k"] = new_value

    hook, fired = _at_point_in_another_thread("dict.value_eq", write)
    with fi.hook(hook):
        ok = d.compare_and_set("k", _Eq(1), "new")
    assert fired
    d._check()
    if replacement == "unequal":
        # Linearized after the replacement: the new value is not equal.
        assert not ok and d["k"] is new_value
    else:
        assert ok and d["k"] == "new"
    # The value compared equal is asked once more only if it was replaced.
    assert stored.calls == 1


@needs_fi
@pytest.mark.timeout(60)
def test_fault_update_batch_sees_a_colliding_key_inserted_during_eq() -> None:
    # The batch keeps its __eq__ answers across passes; a key equal to one of
    # the batch's, inserted by another thread while an __eq__ of the batch
    # ran, is a new entry (another entry number): asked, found, replaced --
    # never a duplicate.
    calls = [0]
    a, b = Hostile(0, lambda: None, calls), Hostile(1, lambda: None, calls)
    d: ConcurrentDict[Any, Any] = ConcurrentDict([(a, 0), (b, 1)])
    twin = Hostile(5, lambda: None, calls)
    hook, fired = _at_point_in_another_thread("dict.eq", lambda: d.__setitem__(twin, "twin"))
    with fi.hook(hook):
        d.update({Hostile(5, lambda: None, calls): "batch", Hostile(1, lambda: None, calls): "b"})
    assert fired
    d._check()
    assert len(d) == 3 and d[twin] == "batch" and d[b] == "b"


@needs_fi
@pytest.mark.timeout(60)
@pytest.mark.parametrize("replacement", ["unequal", "equal", "other_index"])
def test_fault_list_compare_and_set_sees_a_write_during_the_item_eq(replacement: str) -> None:
    stored = _Eq(1)
    lst: ConcurrentList[Any] = ConcurrentList([0, stored, 2])
    new_item = {"unequal": _Eq(2), "equal": _Eq(1), "other_index": None}[replacement]

    def write() -> None:
        if replacement == "other_index":
            lst.insert(0, "front")   # moves the items: index 1 now holds 0
        else:
            lst[1] = new_item

    hook, fired = _at_point_in_another_thread("list.eq", write)
    with fi.hook(hook):
        ok = lst.compare_and_set(1, _Eq(1), "new")
    assert fired
    lst._check()
    if replacement == "equal":
        assert ok and list(lst) == [0, "new", 2]
    elif replacement == "unequal":
        assert not ok and lst[1] is new_item
    else:
        # index 1 now holds 0, which is not equal to _Eq(1).
        assert not ok and list(lst) == ["front", 0, stored, 2]
    assert stored.calls == 1

"""ConcurrentDict: no livelock when an __eq__ writes to the dict on every call
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
from nogil_collections import ABSENT, ConcurrentDict

CD = ConcurrentDict


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


@needs_fi
@pytest.mark.timeout(60)
@pytest.mark.parametrize("replacement", ["unequal", "equal", "same", "other_key"])
def test_fault_dict_compare_and_set_sees_a_write_during_the_value_eq(replacement: str) -> None:
    stored = Eq(1)
    d: ConcurrentDict[str, Any] = ConcurrentDict(k=stored, other=0)
    new_value = {"unequal": Eq(2), "equal": Eq(1), "same": stored, "other_key": None}[replacement]

    def write() -> None:
        if replacement == "other_key":
            d["other"] = 1
        else:
            d["k"] = new_value

    hook, fired = at_point_in_another_thread("dict.value_eq", write)
    with fi.hook(hook):
        ok = d.compare_and_set("k", Eq(1), "new")
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
    hook, fired = at_point_in_another_thread("dict.eq", lambda: d.__setitem__(twin, "twin"))
    with fi.hook(hook):
        d.update({Hostile(5, lambda: None, calls): "batch", Hostile(1, lambda: None, calls): "b"})
    assert fired
    d._check()
    assert len(d) == 3 and d[twin] == "batch" and d[b] == "b"




class _Replacer:
    """A value whose __eq__ stores a new, equal _Replacer under the same key
    on every call (and says equal): each re-lookup finds another object."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, d: Any, calls: list[int]) -> None:
        self.d, self.calls = d, calls

    def __eq__(self, other: object) -> bool:
        self.calls[0] += 1
        if self.calls[0] > 10_000:
            raise RuntimeError("unbounded: __eq__ called 10000 times")
        self.d["k"] = _Replacer(self.d, self.calls)
        return True


@pytest.mark.parametrize("via_handle", [False, True], ids=["dict", "handle"])
@pytest.mark.parametrize("operation", ["compare_and_set", "pop_if"])
def test_value_whose_eq_replaces_the_value_on_every_call(operation: str, via_handle: bool) -> None:
    # Before the fix each restart met a new value object (not the one kept as
    # equal) and compared it again: unbounded (the guard above raised after
    # 10000 calls; without it, a livelock whose `compared` list grew forever).
    # The builtin `if d[k] == expected: d[k] = new` calls __eq__ once.  Now,
    # as the list's compare_and_set: identity only after 8 restarts.
    calls = [0]
    d = CD()
    d["k"] = _Replacer(d, calls)
    target = _handle_or_self(d, via_handle)
    if operation == "compare_and_set":
        result = bounded(lambda: target.compare_and_set("k", "x", "new"))
    else:
        result = bounded(lambda: target.pop_if("k", "x"))
    assert result in (True, False)
    assert calls[0] <= 9
    d._check()


class _Collider:
    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Collider) and other.i == self.i


def test_batch_memo_keeps_no_answer_without_a_write() -> None:
    # update() of n keys that collide with m stored keys asks n*m questions,
    # none of which writes.  Before the fix the batch's memo kept every
    # answer (PyMem_RawMalloc: 600 x 600 -> about 12 MiB, traced peak 16+
    # MiB; 3000 x 3000 -> 512 MiB of RSS); the builtin needs no extra memory.
    import tracemalloc

    n = 600
    d = CD((_Collider(i), i) for i in range(n))
    batch = {_Collider(-1 - i): i for i in range(n)}
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        d.update(batch)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert len(d) == 2 * n
    assert peak < 2 * 1024 * 1024, f"update's peak extra memory: {peak} bytes"
    d._check()

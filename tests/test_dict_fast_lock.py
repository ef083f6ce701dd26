"""ConcurrentDict single-key writes without a critical section (ncc_cs_try_lock).

``d[k] = v``, ``del d[k]`` and ``d.pop(k)`` of an exact str or int key, in a
table of only such keys (a pinned table) with room for an insert, take the
writer lock's mutex with one compare-exchange and no critical section
(docs/design.md, "The writer lock"), as ConcurrentList.append does.  There the
probe compares every candidate key inline (no ``__eq__``) and the write stores
and counts, so nothing between the lock and the unlock can block.  That is
sound only if:

- a held writer lock still holds these writes back;
- a *suspended* critical section (its thread blocked inside it, its mutex
  released) lets them through, and its owner re-validates when it resumes,
  exactly as after a write that took the section;
- every write the fast path declines (a generic table, a full one, a key of
  another type) is done by the general path, with nothing changed before;
- the references the write drops (a replaced value, a deleted key and value)
  are released after the mutex: their ``__del__`` may write to the same dict.

The suspension here is real: ``compare_and_set`` compares the stored value
with ``expected`` inside the dict's critical section, and that value's
``__eq__`` blocks on an Event.
"""

from __future__ import annotations

import sysconfig
import threading
from collections.abc import Callable
from typing import Any

import pytest

from _livelock import bounded
from _threads import assert_held_back_until_released
from nogil_collections import ConcurrentDict, _dict
from nogil_collections._core import _selftest as st

FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
needs_ft = pytest.mark.skipif(
    not FREE_THREADED_BUILD, reason="critical sections are no-ops on GIL builds"
)
WAIT = 10.0


def _pinned_with_room(n: int) -> ConcurrentDict[str, int]:
    """{"k0": 0, ...} with n str keys, in a pinned table with room for one more."""
    d: ConcurrentDict[str, int] = ConcurrentDict()
    for i in range(n):
        d[f"k{i}"] = i
    info = d._table_info()
    assert info["pinned"], "str keys only: the table must be pinned"
    assert info["nentries"] < info["capacity"], "pick another n: this one fills the table"
    return d


@needs_ft
@pytest.mark.parametrize("op", ["insert", "replace", "del", "pop"])
def test_a_held_writer_lock_holds_back_the_fast_path(
    op: str, held: Callable[[object], threading.Thread]
) -> None:
    d = _pinned_with_room(6)
    held(_dict._writer_lock_of(d))

    def writer() -> None:
        if op == "insert":
            d["new"] = 99
        elif op == "replace":
            d["k1"] = 99
        elif op == "del":
            del d["k1"]
        else:
            assert d.pop("k1") == 1

    assert_held_back_until_released(writer, st.release_section, op, WAIT)
    expected = {f"k{i}": i for i in range(6)}
    if op == "insert":
        expected["new"] = 99
    elif op == "replace":
        expected["k1"] = 99
    else:
        del expected["k1"]
    assert dict(d) == expected
    d._check()


class BlockingEq:
    """A value whose first __eq__ blocks on `go` after setting `inside`: it
    suspends the critical section of the compare_and_set that compares it."""

    def __init__(self, v: int) -> None:
        self.v = v
        self.inside, self.go = threading.Event(), threading.Event()
        self.calls = 0

    def __eq__(self, other: object) -> bool:
        self.calls += 1
        if self.calls == 1:
            self.inside.set()
            assert self.go.wait(WAIT)
        return isinstance(other, BlockingEq | int) and self.v == (
            other.v if isinstance(other, BlockingEq) else other
        )

    __hash__ = None  # type: ignore[assignment]


class SuspendedCas:
    """_pinned_with_room(6) plus d["cas"] = BlockingEq(7), and a thread running
    d.compare_and_set("cas", 7, "set by cas") whose comparison blocks inside
    the dict's critical section (suspending it) until resume()."""

    def __init__(self) -> None:
        self.d: ConcurrentDict[str, Any] = _pinned_with_room(6)  # type: ignore[assignment]
        self.blocker = BlockingEq(7)
        self.d["cas"] = self.blocker
        self.out: list[object] = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        assert self.blocker.inside.wait(WAIT)

    def _run(self) -> None:
        try:
            self.out.append(self.d.compare_and_set("cas", 7, "set by cas"))
        except BaseException as e:  # reported by the test
            self.out.append(e)

    def resume(self) -> list[object]:
        """Let the comparison return; the CAS's result (or exception)."""
        assert self.thread.is_alive(), "compare_and_set finished while it was blocked"
        self.blocker.go.set()
        self.thread.join(WAIT)
        return self.out


@needs_ft
def test_fast_writes_run_while_a_section_is_suspended_and_it_revalidates() -> None:
    cas = SuspendedCas()
    d = cas.d
    # The CAS thread is blocked in __eq__ inside its critical section:
    # suspended, so the mutex is free and these writes go ahead.
    d["new"] = 1           # an insert
    d["k0"] = 100          # a replacement
    del d["k1"]            # a delete
    assert d.pop("k2") == 2
    d["cas"] = 8           # the CAS's key: now a value that is not == 7
    # __eq__ says True for the old value, but the dict changed meanwhile: the
    # CAS looks again, finds 8 (!= 7) and does not set.
    assert cas.resume() == [False]
    assert dict(d) == {"k0": 100, "k3": 3, "k4": 4, "k5": 5, "cas": 8, "new": 1}
    d._check()


@needs_ft
def test_a_fast_replacement_with_an_equal_value_lets_the_resumed_cas_set() -> None:
    cas = SuspendedCas()
    cas.d["cas"] = 7       # replaced by an equal value
    assert cas.resume() == [True]
    assert cas.d["cas"] == "set by cas"
    cas.d._check()


@needs_ft
def test_a_fast_delete_of_the_suspended_cas_key() -> None:
    cas = SuspendedCas()
    assert cas.d.pop("cas") is cas.blocker
    assert cas.resume() == [False]   # the key is absent when the CAS looks again
    assert "cas" not in cas.d
    cas.d._check()


def test_every_declined_write_is_done_by_the_general_path() -> None:
    # A table that fills: the inserts with room take the fast path, the
    # others grow the table first; every key is there, in order.
    d: ConcurrentDict[Any, int] = ConcurrentDict()
    capacities = set()
    for i in range(3000):
        d[f"s{i}"] = i
        capacities.add(d._table_info()["capacity"])
    assert len(capacities) > 5
    assert list(d) == [f"s{i}" for i in range(3000)]
    # Int keys in the same pinned table, then deleted and put back.
    for i in range(500):
        d[i] = -i
    assert d._table_info()["pinned"]
    for i in range(0, 500, 2):
        del d[i]
    for i in range(1, 500, 2):
        assert d.pop(i) == -i
    for i in range(500):
        d[i] = i
    assert [d[i] for i in range(500)] == list(range(500))
    # A key of another type makes the table generic: from then on every
    # str key goes through the general path, with the same results.
    d[(1, 2)] = 12
    assert not d._table_info()["pinned"]
    d["s0"] = -1
    del d["s1"]
    assert d.pop("s2") == 2
    assert d.pop("absent", None) is None
    with pytest.raises(KeyError):
        del d["absent"]
    assert d["s0"] == -1 and "s1" not in d and "s2" not in d and d[(1, 2)] == 12
    assert len(d) == 3000 - 2 + 500 + 1
    d._check()


class NeverEqualStr(str):
    """A str subclass that equals nothing, hashed as its str value."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True


def test_a_str_subclass_key_is_not_compared_as_a_str() -> None:
    # Only an exact str or int is compared inline: a subclass's own __eq__
    # decides, so k1 below is a new key, as in the builtin dict (an inline
    # str comparison would replace "k1" and delete "k2").
    d = _pinned_with_room(6)
    ref = dict(d)
    for c in (d, ref):
        c[NeverEqualStr("k1")] = 99
        with pytest.raises(KeyError):
            del c[NeverEqualStr("k2")]
        assert c.pop(NeverEqualStr("k3"), "dflt") == "dflt"
    def shown(c: dict[str, int] | ConcurrentDict[str, int]) -> list[tuple[type, str, int]]:
        return [(type(k), str(k), v) for k, v in c.items()]

    assert shown(d) == shown(ref)
    assert d["k1"] == 1 and len(d) == len(ref) == 7
    d._check()


def test_absent_keys_on_the_fast_path() -> None:
    d = _pinned_with_room(6)
    with pytest.raises(KeyError) as e:
        del d["absent"]
    assert e.value.args == ("absent",)
    with pytest.raises(KeyError):
        d.pop("absent")
    assert d.pop("absent", "dflt") == "dflt"
    assert d.pop(12345, "dflt") == "dflt"  # an int key in a str table
    assert dict(d) == {f"k{i}": i for i in range(6)}
    d._check()


class WritesOnDel:
    """A value whose __del__ writes to the dict that held it: it must run
    after the writer's mutex is released (else it would wait for itself)."""

    def __init__(self, d: ConcurrentDict[str, Any], tag: str) -> None:
        self.d, self.tag = d, tag

    def __del__(self) -> None:
        self.d[f"del:{self.tag}"] = 1
        self.d.pop("k0", None)


@pytest.mark.parametrize("op", ["replace", "del", "pop"])
def test_dropped_references_are_released_after_the_mutex(op: str) -> None:
    d: ConcurrentDict[str, Any] = _pinned_with_room(6)  # type: ignore[assignment]

    def drop() -> None:
        # Made and dropped by one thread: its last reference is then a local
        # one, and __del__ runs at the decref (another thread's decref would
        # queue the object to its owner thread).
        d["victim"] = WritesOnDel(d, op)
        if op == "replace":
            d["victim"] = 0
        elif op == "del":
            del d["victim"]
        else:
            d.pop("victim")  # the returned value is dropped at once

    # Bounded: a __del__ run under the mutex waits for itself in C, where
    # no pytest timeout can interrupt it.
    bounded(drop, WAIT)
    assert d[f"del:{op}"] == 1
    assert "k0" not in d
    d._check()


def test_fast_writes_from_inside_the_dicts_own_section() -> None:
    # A value's __eq__ runs inside compare_and_set's critical section on the
    # same thread and writes to the dict: the fast path finds the mutex held
    # (by this very thread) and takes the section, which re-enters (3.14+)
    # or suspends the outer one (3.13): no deadlock, and the CAS sees the
    # dict moved.
    d: ConcurrentDict[str, Any] = _pinned_with_room(6)  # type: ignore[assignment]

    class WritesOnEq:
        def __eq__(self, other: object) -> bool:
            d["from-eq"] = 1
            d.pop("k0", None)
            return other == 5

        __hash__ = None  # type: ignore[assignment]

    d["cas"] = WritesOnEq()
    assert d.compare_and_set("cas", 5, "set")
    assert d["cas"] == "set" and d["from-eq"] == 1 and "k0" not in d
    d._check()

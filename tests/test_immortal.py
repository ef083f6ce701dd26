"""Immortal containers: ConcurrentDict.immortal() and ConcurrentList.immortal().

What is proved here:
- on free-threaded builds the container is immortal (its reference count is
  pinned at the immortal value, also after many increfs and decrefs from two
  threads) and untracked by the cyclic GC; it is never freed, while an item
  removed from it (or dropped when its ``__init__`` fails) is;
- it behaves exactly like an ordinary container (a slice of the API,
  equality, repr, iteration, views, ``_check()``), subclasses and their
  ``__init__`` arguments included; copy(), pickling and operators give mortal
  containers;
- threads reading and writing it through a local name, a module global and a
  closure variable get correct results, and linearizability campaigns pass;
- on GIL builds it is an ordinary container (small refcount, freed on del).
"""

from __future__ import annotations

import copy
import gc
import pickle
import sys
import weakref
from typing import Any

import pytest
from hypothesis import strategies as st

from _threads import run_threads
from conftest import FREE_THREADED_BUILD
from nogil_collections import ConcurrentDict, ConcurrentList
from nogil_collections.testing import DICT_OPS, LIST_OPS, RaceReport, race_test

KINDS = [ConcurrentDict, ConcurrentList]


class Item:
    """A mortal object that weakrefs can watch."""


def immortal_of(kind: type, items: list[Any]) -> Any:
    return kind.immortal(dict(enumerate(items)) if kind is ConcurrentDict else items)


def is_immortal(obj: Any) -> bool:
    # 3.14+: the interpreter's own test (sys._is_immortal, _Py_IsImmortal).
    # 3.13t reports _Py_IMMORTAL_REFCNT_LOCAL itself; anything this large
    # cannot be a real count of references from this test.
    big = sys.getrefcount(obj) > 1 << 28
    if hasattr(sys, "_is_immortal"):
        assert sys._is_immortal(obj) == big
    return big


# ---------------------------------------------------------------- immortality
@pytest.mark.parametrize("kind", KINDS)
def test_immortal_on_free_threaded_builds_ordinary_on_gil_builds(kind: type) -> None:
    c = immortal_of(kind, [1, 2])
    assert type(c) is kind
    if FREE_THREADED_BUILD:
        assert is_immortal(c), sys.getrefcount(c)
        assert not gc.is_tracked(c)
    else:
        assert sys.getrefcount(c) < 10
        assert gc.is_tracked(c)


@pytest.mark.skipif(not FREE_THREADED_BUILD, reason="free-threaded object header only")
@pytest.mark.parametrize("kind", KINDS)
def test_immortal_header_is_cpythons_own(kind: type) -> None:
    # What _Py_SetImmortalUntracked writes (Objects/object.c 3.14.7:2681,
    # 3.15.0rc2:2774; 3.15 calls it through PyUnstable_SetImmortal): ob_tid
    # 0 (no owner), ob_ref_local _Py_IMMORTAL_REFCNT_LOCAL, ob_ref_shared 0
    # -- and Py_INCREF / Py_DECREF test only ob_ref_local, so a reference
    # taken and dropped by another thread leaves all three unchanged.
    from nogil_collections._core import _selftest

    c = immortal_of(kind, [1, 2])
    fields = _selftest.ref_fields(c)
    assert fields == (False, _selftest.IMMORTAL_LOCAL, 0)
    held: list[Any] = []
    run_threads([lambda: held.append(c)])
    held.clear()
    assert _selftest.ref_fields(c) == fields


@pytest.mark.parametrize("kind", KINDS)
def test_still_immortal_after_increfs_and_decrefs_from_two_threads(kind: type) -> None:
    c = immortal_of(kind, [1, 2])
    before = sys.getrefcount(c)

    def churn() -> int:
        held = []
        for _ in range(20_000):
            held.append(c)  # incref (a new strong reference)
            if len(held) > 16:
                held.clear()  # decrefs
        return len(held)

    run_threads([churn, churn])
    assert sys.getrefcount(c) == before
    if FREE_THREADED_BUILD:
        assert is_immortal(c)


@pytest.mark.parametrize("kind", KINDS)
def test_the_container_is_never_freed_but_a_removed_item_is(kind: type) -> None:
    item = Item()
    item_ref = weakref.ref(item)
    c = immortal_of(kind, [item, 0])
    c_ref = weakref.ref(c)
    del item
    del c[0]  # removes the item (dict: key 0; list: index 0)
    gc.collect()
    assert item_ref() is None, "an item removed from an immortal container must be freed"
    del c
    gc.collect()
    if FREE_THREADED_BUILD:
        survivor = c_ref()
        assert survivor is not None, "an immortal container must never be freed"
        assert list(survivor.values() if kind is ConcurrentDict else survivor) == [0]
    else:
        assert c_ref() is None


@pytest.mark.parametrize("kind", KINDS)
def test_clear_releases_every_item(kind: type) -> None:
    items = [Item() for _ in range(5)]
    refs = [weakref.ref(i) for i in items]
    c = immortal_of(kind, items)
    del items
    c.clear()
    gc.collect()
    assert all(r() is None for r in refs)
    assert len(c) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_failing_init_releases_what_it_inserted(kind: type) -> None:
    class Failing(kind):  # type: ignore[valid-type,misc]
        def __init__(self, item: Any, attribute: Any) -> None:
            super().__init__([(0, item)] if kind is ConcurrentDict else [item])
            self.attribute = attribute  # the subclass's __dict__ holds it
            raise ValueError("boom")

    item, attribute = Item(), Item()
    refs = [weakref.ref(item), weakref.ref(attribute)]
    with pytest.raises(ValueError, match="boom"):
        Failing.immortal(item, attribute)
    del item, attribute
    gc.collect()
    assert [r() for r in refs] == [None, None], "the immortal shell must not keep them"


@pytest.mark.skipif(not FREE_THREADED_BUILD, reason="GIL builds return an ordinary container")
@pytest.mark.parametrize("kind", KINDS)
def test_an_object_kept_by_new_is_refused(kind: type) -> None:
    kept = []

    class Keeps(kind):  # type: ignore[valid-type,misc]
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            obj = super().__new__(cls)
            kept.append(obj)
            return obj

    with pytest.raises(RuntimeError, match=r"Keeps\.immortal\(\): the new object is already"):
        Keeps.immortal()
    assert not is_immortal(kept[0])


@pytest.mark.skipif(not FREE_THREADED_BUILD, reason="GIL builds return an ordinary container")
@pytest.mark.parametrize("kind", KINDS)
def test_an_object_weakly_referenced_by_new_is_refused(kind: type) -> None:
    # A weak reference flags ob_ref_shared (3.13t's _PyObject_SetMaybeWeakref)
    # for good, even once it is gone: ncc_make_immortal's check refuses it.
    class WeaklyKept(kind):  # type: ignore[valid-type,misc]
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            obj = super().__new__(cls)
            weakref.ref(obj)
            return obj

    with pytest.raises(RuntimeError, match=r"kept or weakly referenced by WeaklyKept\.__new__"):
        WeaklyKept.immortal()


# ---------------------------------------------------------------- behaviour
def test_dict_behaves_like_an_ordinary_dict() -> None:
    d = ConcurrentDict.immortal({"a": 1}, b=2)
    ref = {"a": 1, "b": 2}
    assert d == ref and d == ConcurrentDict(ref) and repr(d) == repr(ref)
    d["c"] = 3
    ref["c"] = 3
    assert d.pop("a") == ref.pop("a")
    assert d.setdefault("d", 4) == ref.setdefault("d", 4)
    assert d.get_or_insert("e", lambda: 5) == 5
    ref["e"] = 5
    d.update_item("b", lambda v: v * 10)
    ref["b"] *= 10
    assert list(d) == list(ref) and list(d.keys()) == list(ref.keys())
    assert list(d.values()) == list(ref.values()) and list(d.items()) == list(ref.items())
    assert "c" in d and "a" not in d and len(d) == len(ref)
    with pytest.raises(KeyError, match="'zz'"):
        d["zz"]
    d._check()
    h = d.handle()
    assert h["b"] == 20 and dict(h.items()) == ref
    via_handle = h.immortal(z=1)
    assert type(via_handle) is ConcurrentDict and via_handle == {"z": 1}
    assert is_immortal(via_handle) is FREE_THREADED_BUILD


def test_list_behaves_like_an_ordinary_list() -> None:
    lst = ConcurrentList.immortal([3, 1, 2])
    ref = [3, 1, 2]
    for op in (
        lambda x: x.append(7),
        lambda x: x.extend(range(50)),  # grows the array (reallocation)
        lambda x: x.insert(0, 9),
        lambda x: x.sort(),
        lambda x: x.reverse(),
        lambda x: x.__setitem__(slice(2, 5), [0]),
        lambda x: x.remove(7),
    ):
        op(lst)
        op(ref)
        assert lst == ref
        lst._check()
    assert lst.pop() == ref.pop() and lst[3] == ref[3] and lst[-2:] == ref[-2:]
    assert repr(lst) == repr(ref) and list(lst) == ref and list(reversed(lst)) == ref[::-1]
    with pytest.raises(IndexError, match="list index out of range"):
        lst[1000]
    assert lst.handle()[0] == ref[0]


def test_subclass_with_init_arguments_and_dict_kwargs() -> None:
    class Registry(ConcurrentDict):  # type: ignore[misc]
        def __init__(self, name: str, /, **entries: Any) -> None:
            super().__init__(**entries)
            self.name = name

    r = Registry.immortal("plugins", a=1, b=2)
    assert type(r) is Registry and r.name == "plugins" and r == {"a": 1, "b": 2}

    class Stack(ConcurrentList):  # type: ignore[misc]
        def __init__(self, items: Any = (), *, limit: int) -> None:
            super().__init__(items)
            self.limit = limit

    s = Stack.immortal([1], limit=3)
    assert type(s) is Stack and s.limit == 3 and s == [1]
    if FREE_THREADED_BUILD:
        assert is_immortal(r) and is_immortal(s)


def test_bad_arguments_raise_like_the_constructor() -> None:
    for call in (lambda k: k(1, 2), lambda k: k(x=1), lambda k: k(5)):
        with pytest.raises(TypeError) as expected:
            call(ConcurrentList)
        with pytest.raises(TypeError) as got:
            call(ConcurrentList.immortal)
        assert str(got.value) == str(expected.value)
    with pytest.raises(TypeError) as expected:
        ConcurrentDict([1])
    with pytest.raises(TypeError) as got:
        ConcurrentDict.immortal([1])
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("kind", KINDS)
def test_copies_and_pickles_are_mortal(kind: type) -> None:
    c = immortal_of(kind, [Item(), 1])
    others = [c.copy(), copy.copy(c), copy.deepcopy(c), pickle.loads(pickle.dumps(c))]
    if kind is ConcurrentDict:
        others += [c | {5: 5}, {5: 5} | c, dict(c)]
    else:
        others += [c + [5], c * 2, list(c)]  # noqa: RUF005 (the operator is the point)
    while others:
        o = others.pop()
        assert sys.getrefcount(o) < 10, type(o)
        w = weakref.ref(o) if not isinstance(o, (dict, list)) else None
        del o
        gc.collect()
        assert w is None or w() is None


# ---------------------------------------------------------------- threads
N_KEYS = 200
SHARED_DICT = ConcurrentDict.immortal((f"k{i}", i) for i in range(N_KEYS))
SHARED_LIST = ConcurrentList.immortal(range(N_KEYS))


def _readers_and_writers(access: str, d: Any, lst: Any) -> None:
    """Two readers check every value they see (a value is i or -i for key
    k{i}, index i); two writers flip signs and append/pop their own tail
    items.  The container is reached the way ``access`` says."""
    rounds = 30
    R, K = range(rounds), range(N_KEYS)

    # Each reader counts the values that look right (every one must); the
    # comprehensions are inlined (PEP 709), so the names load as written.
    def reader_local() -> int:
        dd, ll = d, lst
        return sum(abs(dd[f"k{i}"]) == i == abs(ll[i]) for _ in R for i in K)

    def reader_closure() -> int:
        return sum(abs(d[f"k{i}"]) == i == abs(lst[i]) for _ in R for i in K)

    def reader_global() -> int:
        return sum(abs(SHARED_DICT[f"k{i}"]) == i == abs(SHARED_LIST[i]) for _ in R for i in K)

    def writer(tid: int) -> Any:
        def run() -> int:
            for r in range(rounds):
                for i in range(tid, N_KEYS, 2):
                    d[f"k{i}"] = -d[f"k{i}"]
                    lst[i] = -lst[i]
                d[f"w{tid}:{r}"] = r
                lst.append((tid, r))
            return 0
        return run

    reader = {"local": reader_local, "global": reader_global, "closure": reader_closure}[access]
    seen = run_threads([reader, reader, writer(0), writer(1)])
    assert seen[:2] == [rounds * N_KEYS] * 2
    # Each writer flipped its own keys `rounds` times (an even number).
    assert [d[f"k{i}"] for i in range(N_KEYS)] == list(range(N_KEYS))
    assert list(lst[:N_KEYS]) == list(range(N_KEYS))
    assert sorted(x for x in lst[N_KEYS:]) == sorted((t, r) for t in (0, 1) for r in range(30))
    assert {k: v for k, v in d.items() if k.startswith("w")} == {
        f"w{t}:{r}": r for t in (0, 1) for r in range(30)
    }
    d._check()
    lst._check()


@pytest.mark.parametrize("access", ["local", "global", "closure"])
def test_threads_through_a_name_get_correct_results(access: str) -> None:
    if access == "global":
        d, lst = SHARED_DICT, SHARED_LIST
    else:
        d = ConcurrentDict.immortal((f"k{i}", i) for i in range(N_KEYS))
        lst = ConcurrentList.immortal(range(N_KEYS))
    _readers_and_writers(access, d, lst)
    # Leave the module globals as they were for another run of this test.
    for k in [k for k in d if k.startswith("w")]:
        del d[k]
    del lst[N_KEYS:]


IMMORTAL_DICT_OPS = DICT_OPS.only(
    "__setitem__", "__getitem__", "get", "__contains__", "__delitem__", "pop", "setdefault",
    "compare_and_set", "get_or_insert", "update_item", "len", "clear",
).with_domain(keys=st.sampled_from("ab"), values=st.integers(0, 1))

IMMORTAL_LIST_OPS = LIST_OPS.only(
    "append", "pop", "__getitem__", "__setitem__", "insert", "compare_and_set", "len",
).with_domain(values=st.integers(0, 1), indices=st.integers(-2, 1), max_initial=3)


# Each scenario builds one small immortal container that is never freed (a
# few hundred of them per campaign: bounded, and the price of the feature).
@pytest.mark.free_threaded_only
@race_test(factory=ConcurrentDict.immortal, model=dict, ops=IMMORTAL_DICT_OPS, threads=(2, 3),
           ops_per_thread=(1, 3), examples=30, repetitions=8)
def test_race_immortal_dict(report: RaceReport) -> None:
    assert not report.ops_skipped and report.runs >= 30 * 8, report


@pytest.mark.free_threaded_only
@race_test(factory=ConcurrentList.immortal, model=list, ops=IMMORTAL_LIST_OPS, threads=(2, 3),
           ops_per_thread=(1, 3), examples=30, repetitions=8)
def test_race_immortal_list(report: RaceReport) -> None:
    assert not report.ops_skipped and report.runs >= 30 * 8, report

"""ConcurrentDict behaves like dict: single-threaded behaviour, errors, protocols."""

from __future__ import annotations

import collections.abc
import copy
import gc
import json
import pickle
import sys
import unittest
import weakref

import pytest

from nogil_collections import ConcurrentDict
from nogil_collections._dict import ABSENT

CD = ConcurrentDict

mapping_tests = pytest.importorskip("test.mapping_tests")


# --------------------------------------------------------------------------
# CPython's own mapping test-suite (Lib/test/mapping_tests.py).


class TestCPythonMappingProtocol(mapping_tests.TestHashMappingProtocol):
    type2test = ConcurrentDict


class _SubCD(ConcurrentDict):
    pass


# Like CPython's test_dict.SubclassMappingTests: copy() returns the base type,
# as dict.copy() does for dict subclasses, so only the basic protocol applies.
class TestCPythonMappingProtocolSubclass(mapping_tests.BasicTestMappingProtocol):
    type2test = _SubCD


# unittest.TestCase classes are collected by pytest; keep the names visible.
assert issubclass(TestCPythonMappingProtocol, unittest.TestCase)


# --------------------------------------------------------------------------
# Construction


def test_construction_forms() -> None:
    assert CD() == {}
    assert CD({"a": 1, "b": 2}) == {"a": 1, "b": 2}
    assert CD([("a", 1), ("b", 2)]) == {"a": 1, "b": 2}
    assert CD(a=1, b=2) == {"a": 1, "b": 2}
    assert CD({"a": 1}, b=2, a=3) == {"a": 3, "b": 2}
    assert CD(CD(x=1)) == {"x": 1}
    assert CD.fromkeys("abc") == dict.fromkeys("abc")
    assert CD.fromkeys([1, 2, 1], 0) == {1: 0, 2: 0}
    assert list(CD([(3, 0), (1, 0), (2, 0)])) == [3, 1, 2]


def test_construction_errors_match_dict() -> None:
    for bad in ([1], [(1, 2, 3)], 5, [[1]]):
        with pytest.raises(Exception) as ours:
            CD(bad)
        with pytest.raises(Exception) as theirs:
            dict(bad)
        assert type(ours.value) is type(theirs.value)
        assert str(ours.value) == str(theirs.value)


def test_fromkeys_subclass_uses_setitem() -> None:
    calls = []

    class Sub(CD):
        def __setitem__(self, k, v):
            calls.append(k)
            super().__setitem__(k, v)

    d = Sub.fromkeys("ab", 1)
    assert type(d) is Sub and d == {"a": 1, "b": 1} and calls == ["a", "b"]


# --------------------------------------------------------------------------
# Basic operations and errors


def test_getitem_setitem_delitem() -> None:
    d = CD()
    d["a"] = 1
    d[2] = "two"
    d[(1, 2)] = None
    assert d["a"] == 1 and d[2] == "two" and d[(1, 2)] is None
    d["a"] = 5
    assert list(d.items()) == [("a", 5), (2, "two"), ((1, 2), None)]
    del d[2]
    assert d == {"a": 5, (1, 2): None}
    with pytest.raises(KeyError) as ei:
        del d[2]
    assert ei.value.args == (2,)
    with pytest.raises(KeyError) as ei:
        d[(3, 4)]
    assert ei.value.args == ((3, 4),)
    d._check()


def test_equal_keys_of_different_types() -> None:
    d = CD()
    d[1] = "int"
    d[1.0] = "float"
    d[True] = "bool"
    assert d == {1: "bool"} and type(next(iter(d))) is int
    d["x"] = 1
    d[1 << 100] = 2
    assert d[1 << 100] == 2 and d[(1 << 100) + 0] == 2
    d._check()


class _HashRaisesTypeErrorSub:
    def __hash__(self) -> int:
        raise _TypeErrorSub("no hash today")


class _TypeErrorSub(TypeError):
    pass


class _HashRaisesValueError:
    def __hash__(self) -> int:
        raise ValueError("no hash either")


def _outcome(op: collections.abc.Callable[[], object]) -> tuple[object, ...]:
    try:
        res = op()
    except Exception as e:
        return "raise", type(e), str(e)
    return "ok", res if type(res) in (bool, int, type(None)) else type(res)


@pytest.mark.parametrize(
    "key",
    [[], {}, CD(), _HashRaisesTypeErrorSub(), _HashRaisesValueError()],
    ids=["list", "dict", "ConcurrentDict", "TypeError-subclass", "ValueError"],
)
def test_unhashable_key(key: object) -> None:
    # Same exception type and message as the builtin dict on THIS Python:
    # 3.13 and older give hash()'s "unhashable type: 'list'", 3.14+ "cannot
    # use 'list' as a dict key (unhashable type: 'list')" (only for an exact
    # TypeError; a subclass or another exception passes unchanged).
    Op = collections.abc.Callable[[], object]

    def ops(d: dict[object, object] | CD[object, object]) -> list[Op]:
        return [
            lambda: d[key],
            lambda: d.__setitem__(key, 1),
            lambda: d.__delitem__(key),
            lambda: key in d,
            lambda: d.get(key),
            lambda: d.get(key, 2),
            lambda: d.pop(key),
            lambda: d.pop(key, 2),
            lambda: d.setdefault(key),
            lambda: d.update([(key, 1)]),
            lambda: d.update({1: 2}, x=1) or d.__setitem__(key, 3),
            lambda: type(d).fromkeys([key]),
            lambda: key in d.keys(),
            lambda: (key, 1) in d.items(),
        ]

    # Empty and not: dict.pop on an empty dict returns before hashing.
    for items in ({}, {1: 2}):
        for want_op, got_op in zip(ops(dict(items)), ops(CD(items)), strict=True):
            assert _outcome(got_op) == _outcome(want_op)
    if sys.version_info >= (3, 14) and type(key) is list:
        # The point of the comparison: 3.14 really did change the text.
        assert _outcome(lambda: CD()[key])[2] == (
            "cannot use 'list' as a dict key (unhashable type: 'list')"
        )
    with pytest.raises(TypeError, match="unhashable type"):
        hash(CD())


def test_get_setdefault_pop_popitem() -> None:
    d = CD(a=1)
    assert d.get("a") == 1 and d.get("b") is None and d.get("b", 7) == 7
    assert d.setdefault("a", 9) == 1 and d.setdefault("b") is None and d.setdefault("c", 3) == 3
    assert d.pop("a") == 1 and d.pop("a", "dflt") == "dflt"
    with pytest.raises(KeyError) as ei:
        d.pop("a")
    assert ei.value.args == ("a",)
    d.update(x=1, y=2)
    assert d.popitem() == ("y", 2) and d.popitem() == ("x", 1)
    assert d.popitem() == ("c", 3) and d.popitem() == ("b", None)
    with pytest.raises(KeyError) as ei:
        d.popitem()
    assert ei.value.args == ("popitem(): dictionary is empty",)
    d._check()


def test_popitem_lifo_after_deletes_and_reinserts() -> None:
    d, ref = CD(), {}
    for i in range(50):
        d[i] = ref[i] = i
    for i in range(0, 50, 3):
        del d[i], ref[i]
    d[0] = ref[0] = "again"
    while ref:
        assert d.popitem() == ref.popitem()
        d._check()
    assert not d


def test_update_forms_and_clear_copy() -> None:
    d = CD()
    d.update({"a": 1})
    d.update([("b", 2)])
    d.update(c=3)
    d.update(CD(d=4), e=5)
    d.update({"f": 6}.items())
    assert d == dict(a=1, b=2, c=3, d=4, e=5, f=6)
    c = d.copy()
    assert type(c) is CD and c == d and c is not d
    d.clear()
    assert d == {} and len(d) == 0 and c["a"] == 1
    d.clear()
    d._check()
    c._check()


def test_update_with_non_dict_mapping() -> None:
    class M(collections.abc.Mapping):
        def __init__(self, data):
            self._d = data

        def __getitem__(self, k):
            return self._d[k]

        def __iter__(self):
            return iter(self._d)

        def __len__(self):
            return len(self._d)

    d = CD(M({"a": 1}))
    assert d == {"a": 1} and d == M({"a": 1}) and M({"a": 1}) == d
    assert d != M({"a": 2})


def test_update_is_all_or_nothing_on_hash_error() -> None:
    class BadHash:
        def __hash__(self):
            raise ZeroDivisionError

    d = CD(a=1)
    with pytest.raises(ZeroDivisionError):
        d.update([("b", 2), (BadHash(), 3)])
    assert d == {"a": 1}


def test_views() -> None:
    d = CD(a=1, b=2)
    k, v, it = d.keys(), d.values(), d.items()
    assert isinstance(k, collections.abc.KeysView)
    assert isinstance(v, collections.abc.ValuesView)
    assert isinstance(it, collections.abc.ItemsView)
    d["c"] = 3
    assert len(k) == len(v) == len(it) == 3
    assert list(k) == ["a", "b", "c"] and list(v) == [1, 2, 3]
    assert list(reversed(k)) == ["c", "b", "a"] and list(reversed(v)) == [3, 2, 1]
    assert list(reversed(it)) == [("c", 3), ("b", 2), ("a", 1)]
    assert "a" in k and "z" not in k and 2 in v and 9 not in v
    assert ("a", 1) in it and ("a", 2) not in it and "a" not in it and ("a", 1, 2) not in it
    assert k & {"a", "z"} == {"a"} and k | {"z"} == {"a", "b", "c", "z"}
    assert k - {"a"} == {"b", "c"} and k ^ {"a", "z"} == {"b", "c", "z"}
    assert {"a", "z"} & k == {"a"} and {"a", "z"} - k == {"z"}
    assert it & {("a", 1)} == {("a", 1)} and it - {("a", 1)} == {("b", 2), ("c", 3)}
    assert k == {"a", "b", "c"} and k == dict.fromkeys("abc").keys()
    assert dict.fromkeys("abc").keys() == k and k.isdisjoint({"x"})
    assert it == {("a", 1), ("b", 2), ("c", 3)}
    assert k.mapping["a"] == 1
    with pytest.raises(TypeError):
        [] in k  # noqa: B015
    with pytest.raises(TypeError):
        ([], 1) in it  # noqa: B015
    assert repr(k) == "ConcurrentDictKeys(['a', 'b', 'c'])"


def test_iteration_and_mutation_by_iterating_thread() -> None:
    # Iteration works on a snapshot: mutating while iterating neither raises
    # nor yields keys added meanwhile (mapping_tests.test_mutatingiteration).
    d = CD.fromkeys(range(5), 0)
    seen = []
    for k in d:
        seen.append(k)
        d[k + 100] = 1
        d.pop(k + 1, None)
    assert seen == [0, 1, 2, 3, 4]
    d._check()
    assert list(reversed(CD.fromkeys("xyz"))) == ["z", "y", "x"]


def test_comparisons() -> None:
    a, b = CD(x=1, y=[2]), CD(y=[2], x=1)
    assert a == b and not (a != b)
    assert a == {"x": 1, "y": [2]} and {"x": 1, "y": [2]} == a
    assert a != {"x": 1} and {"x": 1} != a and a != CD(x=1)
    assert a != [("x", 1)] and not (a == 1)
    with pytest.raises(TypeError):
        a < b  # noqa: B015


def test_or_operators() -> None:
    a = CD(x=1, y=2)
    r = a | {"y": 3, "z": 4}
    assert type(r) is CD and r == {"x": 1, "y": 3, "z": 4} and a == {"x": 1, "y": 2}
    r = {"y": 3, "w": 0} | a
    assert r == {"y": 2, "w": 0, "x": 1} and list(r) == ["y", "w", "x"]
    a |= [("q", 5)]
    assert a == {"x": 1, "y": 2, "q": 5}
    with pytest.raises(TypeError):
        a | [("q", 5)]


def test_repr_and_recursion() -> None:
    d = CD()
    assert repr(d) == "{}"
    d[1] = "a"
    d["k"] = (1, 2)
    assert repr(d) == repr({1: "a", "k": (1, 2)})
    d["self"] = d
    assert repr(d) == "{1: 'a', 'k': (1, 2), 'self': {...}}"
    inner = CD(x=1)
    assert repr(CD(a=inner, b=inner)) == "{'a': {'x': 1}, 'b': {'x': 1}}"


def test_missing_in_subclass() -> None:
    class D(CD):
        def __missing__(self, key):
            return ("missing", key)

    d = D(a=1)
    assert d["a"] == 1 and d["b"] == ("missing", "b") and "b" not in d
    assert d.get("b") is None
    with pytest.raises(KeyError):
        CD()["b"]


def test_class_getitem_and_abc() -> None:
    alias = CD[str, int]
    assert alias.__origin__ is CD and alias.__args__ == (str, int)
    assert isinstance(CD(), collections.abc.MutableMapping)


def test_pickle_copy_deepcopy() -> None:
    d = CD(a=[1], b={"x": 2})
    d[3] = 4
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        r = pickle.loads(pickle.dumps(d, proto))
        assert type(r) is CD and r == d and list(r) == list(d)
    c = copy.copy(d)
    assert c == d and c["a"] is d["a"]
    dc = copy.deepcopy(d)
    assert dc == d and dc["a"] is not d["a"]
    s = Sub(a=1)
    s.attr = "kept"
    for r in (pickle.loads(pickle.dumps(s)), copy.copy(s), copy.deepcopy(s)):
        assert type(r) is Sub and r == {"a": 1} and r.attr == "kept"
    assert pickle.loads(pickle.dumps(ABSENT)) is ABSENT


class Sub(CD):
    pass


def test_sizeof_grows() -> None:
    d = CD()
    small = sys.getsizeof(d)
    assert small > 0
    d.update((i, i) for i in range(1000))
    assert sys.getsizeof(d) > small + 1000 * 24


def test_weakref_and_subclass_attributes() -> None:
    d = Sub()
    d.extra = 1
    w = weakref.ref(d)
    assert w() is d
    del d
    gc.collect()
    assert w() is None
    w2 = weakref.ref(CD())
    gc.collect()
    assert w2() is None


def test_interoperability() -> None:
    d = CD(a=1, b=2)
    assert dict(d) == {"a": 1, "b": 2}
    assert {**d} == {"a": 1, "b": 2}

    def f(**kw):
        return kw

    assert f(**d) == {"a": 1, "b": 2}
    assert json.loads(json.dumps(d.snapshot())) == {"a": 1, "b": 2}
    snap = d.snapshot()
    assert type(snap) is dict and list(snap) == ["a", "b"]


def test_bool_len_contains() -> None:
    d = CD()
    assert not d and len(d) == 0 and "x" not in d
    d["x"] = 0
    assert d and len(d) == 1 and "x" in d


# --------------------------------------------------------------------------
# Beyond dict: atomic compound operations (single-threaded semantics)


def test_compare_and_set() -> None:
    d = CD()
    assert d.compare_and_set("k", ABSENT, 1) and d["k"] == 1
    assert not d.compare_and_set("k", ABSENT, 2) and d["k"] == 1
    assert not d.compare_and_set("k", 5, 2) and d["k"] == 1
    assert d.compare_and_set("k", 1, 2) and d["k"] == 2
    big = 10**30
    d["b"] = big
    assert d.compare_and_set("b", int(str(big)), 0)  # equal, not identical
    assert d.compare_and_set("k", 2, ABSENT) and "k" not in d
    assert d.compare_and_set("missing", ABSENT, ABSENT)
    assert not d.compare_and_set("missing", 1, ABSENT)
    assert CD.ABSENT is ABSENT and repr(ABSENT) == "ConcurrentDict.ABSENT"
    d._check()


def test_pop_if_get_or_insert_update_item() -> None:
    d = CD(a=1)
    assert not d.pop_if("a", 2) and d.pop_if("a", 1) and "a" not in d
    assert not d.pop_if("a", 1)
    calls = []

    def factory():
        calls.append(1)
        return []

    v = d.get_or_insert("l", factory)
    assert d.get_or_insert("l", factory) is v and calls == [1]
    assert d.update_item("n", lambda x: x + 1, 0) == 1
    assert d.update_item("n", lambda x: x + 1) == 2 and d["n"] == 2
    with pytest.raises(KeyError):
        d.update_item("nope", lambda x: x)
    with pytest.raises(ZeroDivisionError):
        d.update_item("n", lambda x: 1 / 0)
    assert d["n"] == 2


# --------------------------------------------------------------------------
# Internal invariants and layout


def test_growth_shrink_and_check() -> None:
    d = CD()
    for i in range(2000):
        d[f"k{i}"] = i
        if i % 7 == 0:
            del d[f"k{i // 2}"]
    d._check()
    for i in range(2000):
        d.pop(f"k{i}", None)
    d._check()
    assert len(d) == 0
    for i in range(100):
        d[i] = i
        d.popitem()
    d._check()


def test_generic_table_conversion() -> None:
    d = CD()
    d.update((f"s{i}", i) for i in range(20))
    d[(1, 2)] = "tuple"  # forces the pinned str table to become generic
    d[3.5] = "float"
    assert d["s5"] == 5 and d[(1, 2)] == "tuple" and d[3.5] == "float"
    del d["s5"]
    d._check()
    d.clear()
    d["x"] = 1
    d._check()


def test_compound_operations_propagate_errors_and_leave_dict_unchanged() -> None:
    class BadValueEq:
        def __eq__(self, other):
            raise ArithmeticError("value eq")

        __hash__ = None

    d = CD(a=BadValueEq())
    before = d.snapshot()
    with pytest.raises(ArithmeticError):
        d.compare_and_set("a", 1, 2)
    with pytest.raises(ArithmeticError):
        d.pop_if("a", 1)

    def factory():
        raise LookupError("factory")

    with pytest.raises(LookupError):
        d.get_or_insert("new", factory)
    assert d.snapshot() == before and "new" not in d
    d._check()


def test_reinit_updates_like_dict() -> None:
    d = CD(a=1)
    d.__init__([("b", 2)], c=3)
    assert d == {"a": 1, "b": 2, "c": 3}
    assert CD(other=1) == {"other": 1}
    with pytest.raises(TypeError):
        CD({}, {})


def test_views_over_foreign_mappings_do_not_crash() -> None:
    from nogil_collections._dict import ConcurrentDictItems, ConcurrentDictValues

    with pytest.raises(TypeError):
        list(ConcurrentDictValues({"a": 1}))
    with pytest.raises(TypeError):
        list(ConcurrentDictItems({"a": 1}))

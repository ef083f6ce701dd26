"""ConcurrentList behaves like list: results, exceptions and messages.

Every check runs the same operation on a builtin list and on a ConcurrentList
built from the same items, and compares the outcome (value or exception type
and message) and the final contents, so message differences between CPython
versions are followed automatically.
"""

from __future__ import annotations

import collections.abc
import copy
import gc
import pickle
import sys
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from nogil_collections import ConcurrentList


def outcome(fn: Callable[[Any], Any], target: Any) -> tuple[str, Any]:
    try:
        res = fn(target)
    except Exception as e:
        # The only permitted difference: the type's name in a message.
        msg = str(e).replace("nogil_collections._list.ConcurrentList", "list")
        return ("raise", (type(e), msg))
    if isinstance(res, ConcurrentList):
        res = ("CL", list(res))
    elif type(res) is list:
        res = ("CL", res)  # list results of slicing/copy map to ConcurrentList ones
    elif res is target:
        res = "self"
    return ("ok", res)


def same(fn: Callable[[Any], Any], items: list[Any] | None = None) -> ConcurrentList:
    """Apply fn to a list and a ConcurrentList; assert identical behaviour."""
    base = [3, 1, 4, 1, 5, 9, 2, 6] if items is None else items
    ref = list(base)
    cl = ConcurrentList(base)
    want = outcome(fn, ref)
    got = outcome(fn, cl)
    assert got == want
    assert list(cl) == ref
    cl._check()
    return cl


# ---------------------------------------------------------------- construction


def test_construction() -> None:
    assert list(ConcurrentList()) == []
    assert list(ConcurrentList(range(5))) == [0, 1, 2, 3, 4]
    assert list(ConcurrentList(x for x in "abc")) == ["a", "b", "c"]
    assert list(ConcurrentList(ConcurrentList([1, 2]))) == [1, 2]
    assert list(ConcurrentList((1, 2))) == [1, 2]
    with pytest.raises(TypeError):
        ConcurrentList(1)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        ConcurrentList([1], [2])  # type: ignore[call-overload]
    cl = ConcurrentList([1, 2])
    cl.__init__([3])  # type: ignore[misc]
    assert cl == [3]


def test_abc_weakref_hash_generic() -> None:
    cl: ConcurrentList[int] = ConcurrentList([1])
    assert isinstance(cl, collections.abc.MutableSequence)
    assert weakref.ref(cl)() is cl
    with pytest.raises(TypeError, match="unhashable"):
        hash(cl)
    assert ConcurrentList[int].__origin__ is ConcurrentList  # type: ignore[attr-defined]
    assert ConcurrentList.__hash__ is None


# ---------------------------------------------------------------- indexing

INDEXES: list[Any] = [0, 3, -1, -8, 7, 8, -9, 2**70, -(2**70), True, "x", 1.0, None]


@pytest.mark.parametrize("i", INDEXES)
def test_getitem_index(i: Any) -> None:
    same(lambda s: s[i])


@pytest.mark.parametrize("i", INDEXES)
def test_setitem_index(i: Any) -> None:
    def op(s: Any) -> None:
        s[i] = "new"

    same(op)


@pytest.mark.parametrize("i", INDEXES)
def test_delitem_index(i: Any) -> None:
    def op(s: Any) -> None:
        del s[i]

    same(op)


SLICES = [
    slice(None),
    slice(2, 5),
    slice(5, 2),
    slice(-3, None),
    slice(None, None, -1),
    slice(1, 7, 2),
    slice(7, 1, -2),
    slice(None, None, 3),
    slice(-100, 100),
    slice(2**70, None),
    slice(None, None, -3),
    slice(0, 0),
    slice(3, 3, -1),
]


@pytest.mark.parametrize("sl", SLICES, ids=str)
def test_get_slice(sl: slice) -> None:
    same(lambda s: s[sl])


@pytest.mark.parametrize("sl", SLICES, ids=str)
def test_del_slice(sl: slice) -> None:
    def op(s: Any) -> None:
        del s[sl]

    same(op)


@pytest.mark.parametrize("sl", SLICES, ids=str)
@pytest.mark.parametrize("value", [[], ["a"], ["a", "b", "c"], ("x", "y"), "pq", 5, None])
def test_set_slice(sl: slice, value: Any) -> None:
    def op(s: Any) -> None:
        s[sl] = value

    same(op)


def test_set_slice_from_self_and_concurrent_list() -> None:
    def op(s: Any) -> None:
        s[::-1] = s

    same(op)

    def op2(s: Any) -> None:
        s[2:4] = s

    same(op2)
    cl = ConcurrentList([1, 2, 3])
    cl[1:2] = ConcurrentList([7, 8])
    assert cl == [1, 7, 8, 3]


def test_slice_with_index_objects() -> None:
    class Idx:
        def __init__(self, v: int) -> None:
            self.v = v

        def __index__(self) -> int:
            return self.v

    same(lambda s: s[Idx(1) : Idx(6) : Idx(2)])
    same(lambda s: s[Idx(-2)])


# ---------------------------------------------------------------- methods


@pytest.mark.parametrize("x", [1, 7, "a"])
def test_search_methods(x: Any) -> None:
    same(lambda s: s.index(x))
    same(lambda s: s.count(x))
    same(lambda s: x in s)
    same(lambda s: s.remove(x))


@pytest.mark.parametrize(
    "args", [(1, 2), (1, -3), (1, 0, 3), (1, 2**70), (1, -(2**70)), (1, None), (1, "a"), (6, 1, -1)]
)
def test_index_bounds(args: tuple[Any, ...]) -> None:
    same(lambda s: s.index(*args))


@pytest.mark.parametrize("i", [0, 3, -1, -100, 100, 2**70])
def test_insert(i: int) -> None:
    same(lambda s: s.insert(i, "z"))


@pytest.mark.parametrize("args", [(), (0,), (-1,), (3,), (8,), (-9,), (2**70,), ("a",)])
def test_pop(args: tuple[Any, ...]) -> None:
    same(lambda s: s.pop(*args))
    same(lambda s: s.pop(*args), items=[])


def test_misc_methods() -> None:
    same(lambda s: s.append(10))
    same(lambda s: s.extend([7, 8]))
    same(lambda s: s.extend(range(3)))
    same(lambda s: s.extend(x for x in "ab"))
    same(lambda s: s.extend(s))
    same(lambda s: s.extend(1))
    same(lambda s: s.clear())
    same(lambda s: s.reverse())
    same(lambda s: s.copy())
    same(lambda s: len(s))
    same(lambda s: bool(s))
    same(lambda s: bool(s), items=[])
    same(lambda s: list(iter(s)))
    same(lambda s: list(reversed(s)))
    same(lambda s: s.__length_hint__() if hasattr(s, "__length_hint__") else len(s))


def test_extend_partial_on_iterator_error() -> None:
    def gen() -> Any:
        yield 1
        yield 2
        raise KeyError("boom")

    same(lambda s: s.extend(gen()))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"reverse": True}, {"key": lambda x: -x}, {"key": str, "reverse": True}, {"key": None}],
)
def test_sort(kwargs: dict[str, Any]) -> None:
    same(lambda s: s.sort(**kwargs))


def test_sort_is_stable() -> None:
    data = [(i % 3, i) for i in range(60)]
    same(lambda s: s.sort(key=lambda t: t[0]), items=data)
    same(lambda s: s.sort(key=lambda t: t[0], reverse=True), items=data)


def test_sort_errors_leave_list_as_list_does() -> None:
    same(lambda s: s.sort(), items=[3, "a", 1, 2, None, 0])
    same(lambda s: s.sort(key=lambda x: 1 / x), items=[3, 2, 0, 1])
    same(lambda s: s.sort(1))  # positional argument
    same(lambda s: s.sort(cmp=None))


# ---------------------------------------------------------------- operators


@pytest.mark.parametrize("other", [[1, 2], (1, 2), 5, "ab", None])
def test_add(other: Any) -> None:
    same(lambda s: s + other)
    same(lambda s: s.__iadd__(other) if not isinstance(other, int | type(None)) else s + other)


def test_add_types() -> None:
    a = ConcurrentList([1])
    b = ConcurrentList([2])
    for r in (a + b, a + [2], [0] + a):  # noqa: RUF005 - the operators under test
        assert type(r) is ConcurrentList
    assert [0] + a == [0, 1]  # noqa: RUF005
    with pytest.raises(TypeError, match=r'can only concatenate list \(not "int"\) to list'):
        a + 1  # type: ignore[operator]
    a += b
    a += a
    assert a == [1, 2, 1, 2]

    class R:
        def __radd__(self, other: Any) -> str:
            return "radd"

    assert a + R() == "radd"  # type: ignore[operator]


@pytest.mark.parametrize("n", [0, 1, 3, -2, True, 2**70, 2.0, "a"])
def test_mul(n: Any) -> None:
    same(lambda s: s * n)
    same(lambda s: n * s)

    def imul(s: Any) -> Any:
        s *= n
        return None

    same(imul)


def test_mul_memory_error() -> None:
    same(lambda s: s * (sys.maxsize // 2))


OTHERS = [
    [],
    [3, 1, 4],
    [3, 1, 4, 1, 5, 9, 2, 6],
    [3, 1, 4, 1, 5, 9, 2, 7],
    [4],
    [3, 1, 4, 1, 5, 9, 2, 6, 0],
]


@pytest.mark.parametrize("other", OTHERS)
@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_compare(other: list[Any], op: str) -> None:
    base = [3, 1, 4, 1, 5, 9, 2, 6]
    f = eval(f"lambda a, b: a {op} b")
    want = f(base, other)
    assert f(ConcurrentList(base), other) == want
    assert f(base, ConcurrentList(other)) == want
    assert f(ConcurrentList(base), ConcurrentList(other)) == want


def test_compare_other_types() -> None:
    cl = ConcurrentList([1])
    assert (cl == (1,)) is False
    assert (cl != (1,)) is True
    with pytest.raises(TypeError):
        _ = cl < (1,)  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = cl < ConcurrentList(["a"])  # type: ignore[operator]
    assert cl == cl
    nan = float("nan")
    assert ConcurrentList([nan]) == [nan]  # identity shortcut, as list


# ---------------------------------------------------------------- objects


def test_repr() -> None:
    same(repr)
    same(repr, items=[])
    same(repr, items=["a", None, 1.5])
    cl = ConcurrentList([1])
    cl.append(cl)
    assert repr(cl) == "[1, [...]]"
    inner = ConcurrentList([cl])
    assert repr(inner) == "[[1, [...]]]"
    plain: list[Any] = [1]
    plain.append(ConcurrentList([plain]))
    assert repr(plain) == "[1, [[...]]]"


def test_pickle_copy_deepcopy() -> None:
    cl = ConcurrentList([1, "a", (2, 3), [4]])
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(cl, proto))
        assert type(back) is ConcurrentList and back == cl
    c = copy.copy(cl)
    assert type(c) is ConcurrentList and c == cl and c[3] is cl[3]
    d = copy.deepcopy(cl)
    assert type(d) is ConcurrentList and d == cl and d[3] is not cl[3]
    rec = ConcurrentList([1])
    rec.append(rec)
    r2 = copy.deepcopy(rec)
    assert r2[1] is r2
    r3 = pickle.loads(pickle.dumps(rec))
    assert r3[1] is r3


class Sub(ConcurrentList):  # type: ignore[type-arg]
    def __init__(self, *args: Any, tag: str = "t") -> None:
        super().__init__(*args)
        self.tag = tag


def test_subclass() -> None:
    s = Sub([1, 2], tag="x")
    assert isinstance(s, ConcurrentList) and s.tag == "x"
    s.append(3)
    assert s == [1, 2, 3]
    assert type(s[:2]) is ConcurrentList  # as list subclasses slice to list
    assert type(s.copy()) is ConcurrentList
    assert type(s + s) is ConcurrentList
    for back in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s), copy.copy(s)):
        assert type(back) is Sub and back == s and back.tag == "x"
    assert weakref.ref(s)() is s


def test_sizeof_grows() -> None:
    cl = ConcurrentList()
    empty = cl.__sizeof__()
    cl.extend(range(1000))
    assert cl.__sizeof__() >= empty + 1000 * 8
    assert sys.getsizeof(cl) > cl.__sizeof__() - 1


def test_layout_hot_fields_off_header_line() -> None:
    offset, _cap = ConcurrentList([1])._layout()
    assert offset >= 96  # the header is <= 32 bytes; 96 bytes on is another cache line


def test_iterators() -> None:
    cl = ConcurrentList(range(5))
    it = iter(cl)
    assert it.__length_hint__() == 5
    assert next(it) == 0
    cl.append(5)  # list iterators see appends
    assert list(it) == [1, 2, 3, 4, 5]
    cl.append(6)
    assert list(it) == []  # exhausted stays exhausted
    r = reversed(cl)
    assert r.__length_hint__() == 7
    assert next(r) == 6
    del cl[:]
    assert list(r) == []
    assert iter(it) is it


def _iterator_after(make: Callable[[Any], Any], reverse: bool, items: list[int], steps: int) -> Any:
    c = make(items)
    it = reversed(c) if reverse else iter(c)
    for _ in range(steps):
        next(it, None)
    return it


_ROUND_TRIPS: dict[str, Callable[[Any], Any]] = {
    **{f"pickle{p}": (lambda o, p=p: pickle.loads(pickle.dumps(o, p)))
       for p in range(pickle.HIGHEST_PROTOCOL + 1)},
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("reverse", [False, True], ids=["iter", "reversed"])
@pytest.mark.parametrize("how", list(_ROUND_TRIPS))
def test_iterators_pickle_and_copy_like_lists(reverse: bool, how: str) -> None:
    # Where the builtin's iterator resumes after each number of next() calls
    # (fresh, running, at the end, exhausted), ours resumes too, with the
    # same remaining items, the same length hint and its own type.
    items = list(range(70))  # more than one read-ahead run of the owner
    for steps in (0, 1, 5, 33, 69, 70, 71):
        want = _ROUND_TRIPS[how](_iterator_after(list, reverse, items, steps))
        orig = _iterator_after(ConcurrentList, reverse, items, steps)
        got = _ROUND_TRIPS[how](orig)
        assert type(got) is type(orig)
        assert got.__length_hint__() == want.__length_hint__(), steps
        assert list(got) == list(want), steps
        # The original is unaffected.
        assert list(orig) == list(_iterator_after(list, reverse, items, steps)), steps


@pytest.mark.parametrize("reverse", [False, True], ids=["iter", "reversed"])
def test_iterator_reduce_names_the_list_and_index(reverse: bool) -> None:
    cl = ConcurrentList(range(100))
    it = reversed(cl) if reverse else iter(cl)
    for _ in range(5):
        next(it)
    fn, args, index = it.__reduce__()
    assert fn is (reversed if reverse else iter)
    assert args[0] is cl  # the list itself, as list's iterators do
    assert index == (94 if reverse else 5)  # the owner's read-ahead is not skipped


@pytest.mark.parametrize("reverse", [False, True], ids=["iter", "reversed"])
def test_iterator_setstate_like_lists(reverse: bool) -> None:
    # Clamping (negative, past the end), bool as an int, and the errors, on
    # this interpreter's list iterator (3.11 restarts at a negative index,
    # 3.13-3.15 exhaust the forward iterator).
    for state in (-(2**40), -2, -1, 0, 1, 3, 9, 10, 11, 2**40, True):
        want = _iterator_after(list, reverse, list(range(10)), 2)
        got = _iterator_after(ConcurrentList, reverse, list(range(10)), 2)
        want.__setstate__(state)
        got.__setstate__(state)
        assert list(got) == list(want), state
    for bad in ("1", 1.0, None, 2**70):
        want = iter([1])
        got = iter(ConcurrentList([1]))
        assert outcome(lambda it, bad=bad: it.__setstate__(bad), got) == outcome(
            lambda it, bad=bad: it.__setstate__(bad), want), bad


def test_iterator_setstate_from_another_thread_moves_the_shared_cursor() -> None:
    # The owner first hands out what it had already claimed and read ahead,
    # then continues from the new index: no item twice, none out of the list.
    import threading

    cl = ConcurrentList(range(200))
    it = iter(cl)
    assert next(it) == 0  # the owner claimed a run of indices from 0
    t = threading.Thread(target=it.__setstate__, args=(150,))
    t.start()
    t.join()
    rest = list(it)
    assert rest == sorted(set(rest))
    assert rest[-50:] == list(range(150, 200))
    assert rest[:-50] == list(range(1, len(rest) - 49))  # the owner's claim


def test_iterator_setstate_after_exhaustion_like_lists() -> None:
    # As list's: on GIL builds an exhausted iterator has dropped its list and
    # stays exhausted; free-threaded builds keep the list, and __setstate__
    # revives the iterator.
    for reverse in (False, True):
        want = _iterator_after(list, reverse, [1, 2], 3)
        got = _iterator_after(ConcurrentList, reverse, [1, 2], 3)
        want.__setstate__(0)
        got.__setstate__(0)
        assert list(got) == list(want)


def test_gc_collects_cycles_and_frees_items() -> None:
    class Item:
        pass

    refs = []
    for _ in range(3):
        cl = ConcurrentList()
        x = Item()
        refs.append(weakref.ref(x))
        cl.append(x)
        cl.append(cl)  # cycle through the items array
        x.back = cl  # type: ignore[attr-defined]
        cw = weakref.ref(cl)
        del cl, x
        gc.collect()
        assert cw() is None
    assert all(r() is None for r in refs)


def test_removed_items_are_freed() -> None:
    class Item:
        pass

    cl = ConcurrentList()
    items = [Item() for _ in range(200)]
    refs = [weakref.ref(i) for i in items]
    cl.extend(items)
    cl.extend(items)
    cl.sort(key=id)
    cl.reverse()
    cl[::2] = cl[1::2]
    cl *= 2
    del items
    for _ in range(5):
        cl.pop()
    cl.remove(cl[0])
    del cl[:10]
    snap = cl.snapshot()
    cl.clear()
    del snap
    gc.collect()
    assert all(r() is None for r in refs)


def test_deep_nesting_dealloc() -> None:
    cl = ConcurrentList()
    for _ in range(200_000):
        cl = ConcurrentList([cl])
    del cl  # trashcan: must not overflow the C stack


# ---------------------------------------------------------------- extras


def test_snapshot() -> None:
    cl = ConcurrentList([1, 2, 3])
    snap = cl.snapshot()
    assert type(snap) is list and snap == [1, 2, 3]
    cl.append(4)
    assert snap == [1, 2, 3]


def test_append_if_absent() -> None:
    cl = ConcurrentList([1, 2])
    assert cl.append_if_absent(3) is True
    assert cl.append_if_absent(2) is False
    assert cl.append_if_absent(2.0) is False
    nan = float("nan")
    assert cl.append_if_absent(nan) is True
    assert cl.append_if_absent(nan) is False  # identity, as list.index
    assert cl == [1, 2, 3, nan]


def test_compare_and_set() -> None:
    sentinel = object()
    cl = ConcurrentList([1, sentinel, 3])
    assert cl.compare_and_set(0, 1.0, "a") is True
    assert cl.compare_and_set(0, 1, "b") is False
    assert cl.compare_and_set(1, sentinel, "c") is True
    assert cl.compare_and_set(-1, 3, "d") is True
    assert cl == ["a", "c", "d"]
    with pytest.raises(IndexError):
        cl.compare_and_set(3, 1, 2)
    with pytest.raises(TypeError):
        cl.compare_and_set("x", 1, 2)  # type: ignore[arg-type]


def test_update() -> None:
    cl = ConcurrentList([1, 2, 3])
    assert cl.update(0, lambda x: x + 10) == 11
    assert cl.update(-1, str) == "3"
    assert cl == [11, 2, "3"]
    with pytest.raises(IndexError):
        cl.update(3, str)
    with pytest.raises(ZeroDivisionError):
        cl.update(1, lambda x: x / 0)
    assert cl == [11, 2, "3"]


def test_extend_respects_overridden_iter_of_subclasses() -> None:
    class RevList(list):  # type: ignore[type-arg]
        def __iter__(self) -> Any:
            return reversed(list.__iter__(self))

    class RevTuple(tuple):  # type: ignore[type-arg]
        def __iter__(self) -> Any:
            return iter(list(tuple.__iter__(self))[::-1])

    class RevCL(ConcurrentList):  # type: ignore[type-arg]
        def __iter__(self) -> Any:
            return iter(self.snapshot()[::-1])

    for arg in (RevList([1, 2, 3]), RevTuple((1, 2, 3)), RevCL([1, 2, 3])):
        same(lambda s, arg=arg: s.extend(arg))
        same(lambda s, arg=arg: s.__iadd__(arg) and None)


def test_sequence_protocol_concat_and_repeat() -> None:
    import operator

    same(lambda s: operator.concat(s, [7]))
    same(
        lambda s: operator.concat(s, ConcurrentList([7]))
        if isinstance(s, ConcurrentList)
        else operator.concat(s, [7])
    )
    same(lambda s: operator.concat(s, 5))
    same(lambda s: operator.concat(s, (1,)))
    same(lambda s: operator.iconcat(s, [7]))
    same(lambda s: operator.iconcat(s, (7,)))
    same(lambda s: operator.mul(s, 2))
    same(lambda s: operator.imul(s, 2))
    same(lambda s: operator.imul(s, 0))
    same(lambda s: operator.imul(s, "a"))


class _EqLog:
    """An item whose == is recorded (and equal to nothing)."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def __eq__(self, other: object) -> bool:
        self.log.append(self.name)
        return False

    __hash__ = object.__hash__


def test_contains_identity_hit_compares_the_earlier_items_first() -> None:
    # `in` stops at the identical object without a reference to it (run
    # read), but the items before it are still compared first, in order.
    for n_before in (0, 3, 40, 100):
        logs: list[list[str]] = []
        for factory in (list, ConcurrentList):
            log: list[str] = []
            x = object()
            items = [_EqLog(log, f"e{j}") for j in range(n_before)] + [x, _EqLog(log, "after")]
            assert x in factory(items)
            logs.append(log)
        assert logs[0] == logs[1] == [f"e{j}" for j in range(n_before)]


def test_contains_inline_comparisons_agree_with_list() -> None:
    # Exact compact ints and exact str are compared without
    # PyObject_RichCompareBool; every other pairing goes through it.
    class S(str):
        pass

    class I(int):  # noqa: E742
        pass

    items: list[Any] = [0, 1, -1, 7, 2**29, -(2**29), 2**40, -(2**40), 2**100, True, False,
                        1.0, 7.5, "", "a", "ab", "é", "日本", "\U0001f600", S("a"), I(7),
                        b"a", None]
    probes: list[Any] = [*items, 2, 2**41, "b", "é" * 2, S("zz"), I(3), 0.0, 1.5, object()]
    for probe in probes:
        for k in range(len(items) + 1):
            sub = items[:k]
            assert (probe in ConcurrentList(sub)) == (probe in sub), (probe, sub)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda lst, i: lst.pop(),
        lambda lst, i: lst.__delitem__(0),
        lambda lst, i: lst.insert(0, -1),
        lambda lst, i: lst.__setitem__(min(i + 1, len(lst) - 1), -7),
        lambda lst, i: lst.reverse(),
        lambda lst, i: lst.sort(reverse=True),
        lambda lst, i: lst.append(99),
        lambda lst, i: lst.clear() if i == 5 else None,
        lambda lst, i: lst.__setitem__(slice(0, 2), [5]),
    ],
)
def test_mutation_in_the_loop_body_is_seen_by_the_next_step(
    mutate: Callable[[Any, int], Any],
) -> None:
    # The iterator hands out buffered items only while no item changed index
    # or value (one counter, replace_seq, which every such write moves):
    # each step yields what list's iterator yields.
    seen = []
    for factory in (list, ConcurrentList):
        lst = factory(range(70))
        out = []
        for i, x in enumerate(lst):
            out.append(x)
            if i < 60:
                mutate(lst, i)
        seen.append(out)
    assert seen[0] == seen[1]

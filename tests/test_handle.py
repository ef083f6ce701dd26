"""Per-thread handles (ConcurrentDict.handle(), ConcurrentList.handle()).

What is proved here:
- a handle has the container's whole public API and gives the same results
  and the same exceptions (messages included) as the container;
- the hot paths (``h[k]``, ``h[k] = v``, ``del h[k]``, ``k in h``, ``h.get``,
  compound operations) do not take a reference to the container, observed at
  run time (``sys.getrefcount`` from inside a key's ``__eq__``/``__index__``)
  and in the generated C;
- a handle used by other threads than its creator is still correct, and
  linearizability campaigns through per-thread and shared handles pass.
"""

from __future__ import annotations

import collections.abc
import copy
import gc
import pickle
import re
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from _threads import run_threads
from nogil_collections import (
    ABSENT,
    ConcurrentDict,
    ConcurrentDictHandle,
    ConcurrentList,
    ConcurrentListHandle,
)
from nogil_collections.testing import DICT_OPS, LIST_OPS, RaceReport, race_test

SRC = Path(__file__).resolve().parent.parent / "src" / "nogil_collections"


def _public(tp: type) -> set[str]:
    return {a for a in dir(tp) if not a.startswith("__") and a != "__pyx_vtable__"} | {
        a
        for a in dir(tp)
        if a.startswith("__") and a in {"__getitem__", "__setitem__", "__delitem__",
                                        "__contains__", "__len__", "__iter__", "__reversed__",
                                        "__eq__", "__ne__", "__or__", "__ror__", "__ior__",
                                        "__add__", "__radd__", "__iadd__", "__mul__",
                                        "__rmul__", "__imul__", "__lt__", "__le__", "__gt__",
                                        "__ge__", "__class_getitem__"}
    }


# --------------------------------------------------------------------------- the API
@pytest.mark.parametrize(("container", "handle"), [(ConcurrentDict, ConcurrentDictHandle),
                                                   (ConcurrentList, ConcurrentListHandle)])
def test_handle_has_the_whole_public_api(container: type, handle: type) -> None:
    missing = _public(container) - _public(handle)
    assert not missing, f"{handle.__name__} lacks {sorted(missing)}"


def test_dict_handle_matches_the_builtin_dict() -> None:
    d = ConcurrentDict(a=1, b=2)
    h = d.handle()
    ref = {"a": 1, "b": 2}
    assert isinstance(h, ConcurrentDictHandle)
    assert isinstance(h, collections.abc.MutableMapping)
    assert h.container is d
    assert h["a"] == 1 and h.get("a") == 1 and h.get("zz") is None and h.get("zz", 5) == 5
    assert "a" in h and "zz" not in h and len(h) == 2 and bool(h)
    h["c"] = 3
    ref["c"] = 3
    del h["a"]
    del ref["a"]
    assert d == ref and h == ref and ref == h and h == d and not (h != ref)
    assert list(h) == list(ref) and list(reversed(h)) == list(reversed(ref))
    assert list(h.keys()) == list(ref.keys()) and list(h.values()) == list(ref.values())
    assert list(h.items()) == list(ref.items())
    assert h.setdefault("d", 4) == ref.setdefault("d", 4)
    assert h.setdefault("d", 9) == ref.setdefault("d", 9)
    assert h.pop("d") == ref.pop("d") and h.pop("d", 0) == ref.pop("d", 0)
    assert h.popitem() == ref.popitem()
    h.update({"x": 1}, y=2)
    ref.update({"x": 1}, y=2)
    assert h.snapshot() == ref and type(h.snapshot()) is dict
    assert type(h.copy()) is ConcurrentDict and h.copy() == ref
    assert (h | {"q": 0}) == (ref | {"q": 0}) and ({"q": 0} | h) == ({"q": 0} | ref)
    g = h
    g |= {"r": 7}
    ref |= {"r": 7}
    assert g is h and d == ref
    assert h.fromkeys("ab", 0) == dict.fromkeys("ab", 0)
    h.clear()
    assert len(d) == 0 and h._check() is None
    assert repr(h) == "<ConcurrentDictHandle of {}>"


def test_dict_handle_compound_operations() -> None:
    d: ConcurrentDict[str, int] = ConcurrentDict()
    h = d.handle()
    assert h.ABSENT is ABSENT and ConcurrentDictHandle.ABSENT is ABSENT
    assert h.compare_and_set("k", ABSENT, 1) and d["k"] == 1
    assert not h.compare_and_set("k", ABSENT, 2)
    assert h.update_item("k", lambda v: v + 1) == 2 and d["k"] == 2
    assert h.update_item("n", lambda v: v + 1, 10) == 11
    with pytest.raises(KeyError):
        h.update_item("missing", lambda v: v)
    calls = []
    assert h.get_or_insert("g", lambda: calls.append(1) or 5) == 5
    assert h.get_or_insert("g", lambda: calls.append(1) or 6) == 5 and calls == [1]
    assert h.pop_if("g", 5) and "g" not in d
    assert h.compare_and_set("k", 2, ABSENT) and "k" not in d


@pytest.mark.parametrize("bad", [[1], {}, set()])
def test_dict_handle_raises_what_dict_raises(bad: Any) -> None:
    h = ConcurrentDict(a=1).handle()

    def same(op: Any) -> None:
        with pytest.raises(Exception) as ours:
            op(h)
        with pytest.raises(Exception) as theirs:
            op({"a": 1})
        assert type(ours.value) is type(theirs.value)
        assert str(ours.value) == str(theirs.value)

    same(lambda m: m["zz"])
    same(lambda m: m[bad])
    same(lambda m: m.__setitem__(bad, 1))
    same(lambda m: m.__delitem__("zz"))
    same(lambda m: m.pop("zz"))
    same(lambda m: m.get(bad))
    same(lambda m: bad in m)
    # Arity errors: the container's own wording (Cython's), whatever it is.
    for op in (lambda m: m.get(), lambda m: m.get(1, 2, 3), lambda m: m.setdefault(),
               lambda m: m.pop(), lambda m: m.compare_and_set(1)):
        with pytest.raises(TypeError) as ours:
            op(h)
        with pytest.raises(TypeError) as theirs:
            op(h.container)
        # The message may name the handle's own method instead of the container's.
        assert str(ours.value).replace("Handle.", ".") == str(theirs.value)
    m = ConcurrentDict().handle()
    with pytest.raises(KeyError, match="dictionary is empty"):
        m.popitem()


def test_list_handle_matches_the_builtin_list() -> None:
    lst = ConcurrentList([3, 1, 2])
    h = lst.handle()
    ref = [3, 1, 2]
    assert isinstance(h, ConcurrentListHandle)
    assert isinstance(h, collections.abc.MutableSequence)
    assert h[0] == 3 and h[-1] == 2 and h[1:] == ref[1:] and len(h) == 3 and 2 in h
    h.append(5)
    ref.append(5)
    h.extend([6, 7])
    ref.extend([6, 7])
    h.insert(0, 9)
    ref.insert(0, 9)
    h[1] = 4
    ref[1] = 4
    h[2:4] = [8]
    ref[2:4] = [8]
    del h[0]
    del ref[0]
    assert h.pop() == ref.pop() and h.pop(0) == ref.pop(0)
    h.remove(5)
    ref.remove(5)
    assert h.index(6) == ref.index(6) and h.count(6) == ref.count(6)
    assert h.index(6, 0, 10) == ref.index(6, 0, 10)
    h.reverse()
    ref.reverse()
    h.sort()
    ref.sort()
    h.sort(key=lambda x: -x, reverse=True)
    ref.sort(key=lambda x: -x, reverse=True)
    assert lst == ref and h == ref and ref == h and h <= ref and not h < ref
    assert list(h) == ref and list(reversed(h)) == list(reversed(ref))
    assert h + [0] == ref + [0] and [0] + h == [0] + ref  # noqa: RUF005 (the operators are under test)
    assert h * 2 == ref * 2 and 2 * h == 2 * ref
    g = h
    g += [1]
    ref += [1]
    assert g is h and lst == ref
    g *= 2
    ref *= 2
    assert g is h and lst == ref
    assert h.snapshot() == ref and type(h.copy()) is ConcurrentList
    assert h.append_if_absent(99) and not h.append_if_absent(99)
    ref.append(99)
    assert h.compare_and_set(0, ref[0], -1)
    ref[0] = -1
    assert h.update(0, lambda v: v - 1) == -2
    ref[0] = -2
    assert lst == ref
    h.clear()
    assert len(lst) == 0 and h._check() is None and h._layout()[0] >= 96
    assert repr(h) == "<ConcurrentListHandle of []>"


def test_list_handle_raises_what_list_raises() -> None:
    h = ConcurrentList([1]).handle()

    def same(op: Any) -> None:
        with pytest.raises(Exception) as ours:
            op(h)
        with pytest.raises(Exception) as theirs:
            op([1])
        assert type(ours.value) is type(theirs.value)
        assert str(ours.value) == str(theirs.value)

    same(lambda s: s[5])
    same(lambda s: s["x"])
    same(lambda s: s.__setitem__(5, 0))
    same(lambda s: s.__delitem__(5))
    same(lambda s: s.remove(42))
    same(lambda s: s.index(42))
    same(lambda s: s.pop(7))
    for op in (lambda s: s.append(), lambda s: s.insert(0), lambda s: s.pop(1, 2),
               lambda s: s.index()):
        with pytest.raises(TypeError) as ours:
            op(h)
        with pytest.raises(TypeError) as theirs:
            op(h.container)
        # The message may name the handle's own method instead of the container's.
        assert str(ours.value).replace("Handle.", ".") == str(theirs.value)


def test_handles_of_subclasses_honour_overrides() -> None:
    class Defaulting(ConcurrentDict):  # type: ignore[misc]
        def __missing__(self, key: Any) -> Any:
            return f"missing {key}"

        def get(self, key: Any, default: Any = None) -> Any:
            return ("overridden", key)

    class Shouting(ConcurrentList):  # type: ignore[misc]
        def __getitem__(self, i: Any) -> Any:
            return "!" + str(super().__getitem__(i))

        def append(self, x: Any) -> None:
            super().append(x * 2)

    h = Defaulting(a=1).handle()
    assert h["a"] == 1 and h["zz"] == "missing zz" and h.get("a") == ("overridden", "a")
    g = Shouting([1]).handle()
    g.append(2)
    assert g[1] == "!4" and len(g) == 2


def test_handle_creation_and_copying() -> None:
    d = ConcurrentDict(a=1)
    h = d.handle()
    assert h.owner_thread == threading.get_ident()
    h2 = h.handle()
    assert h2 is not h and h2.container is d
    assert copy.copy(h).container is d
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(h)
    with pytest.raises(TypeError):
        copy.deepcopy(h)
    with pytest.raises(TypeError, match="handle"):
        ConcurrentDictHandle(d)
    with pytest.raises(TypeError, match="ConcurrentDict"):
        ConcurrentDictHandle._new({"a": 1})
    with pytest.raises(TypeError, match="ConcurrentList"):
        ConcurrentListHandle._new([1])
    with pytest.raises(TypeError, match="unhashable"):
        hash(h)
    assert ConcurrentDictHandle[str, int] is not None


_BYPASS_CONSTRUCTION = """
import sys
from nogil_collections import ConcurrentDictHandle, ConcurrentListHandle
from nogil_collections._handle import _Handle

class Sub(_Handle):
    pass

for tp in (ConcurrentDictHandle, ConcurrentListHandle, _Handle, Sub):
    try:
        h = tp.__new__(tp)
    except TypeError as e:
        assert "handle()" in str(e), e
        continue
    # Before the fix: a handle with a NULL container pointer and slot table.
    for use in (len, lambda h: h[0], lambda h: 0 in h, lambda h: h.pop()):
        try:
            use(h)
        except Exception:
            pass
    sys.exit(f"{tp.__name__}.__new__ made a handle without a container")
"""


def test_a_handle_cannot_be_made_without_its_container() -> None:
    # T.__new__(T) skips __init__ and _new: the handle would carry a NULL
    # container pointer and slot table, and its first use would crash the
    # interpreter (a segfault before the fix; run in a child process so
    # that a regression fails this test instead of killing the session).
    proc = subprocess.run([sys.executable, "-c", _BYPASS_CONSTRUCTION],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    d = ConcurrentDict(a=1)
    for tp in (ConcurrentDictHandle, ConcurrentListHandle):
        with pytest.raises(TypeError, match="handle"):
            tp.__new__(tp)
        with pytest.raises(TypeError, match="handle"):
            tp.__new__(tp, d)
    assert d.handle()["a"] == 1


def test_handle_keeps_its_container_alive_and_cycles_are_collected() -> None:
    d = ConcurrentDict(a=1)
    ref = weakref.ref(d)
    h = d.handle()
    del d
    gc.collect()
    assert ref() is not None and h["a"] == 1
    del h
    gc.collect()
    assert ref() is None
    # A cycle through the handle: the dict stores its own handle.
    d = ConcurrentDict()
    d["self"] = d.handle()
    lst = ConcurrentList()
    lst.append(lst.handle())
    refs = [weakref.ref(d), weakref.ref(lst)]
    del d, lst
    gc.collect()
    assert all(r() is None for r in refs)


# --------------------------------------------------------------------------- no refcount
class _Probe:
    """A key/index whose __eq__/__hash__/__index__ record the refcount of ``target``."""

    def __init__(self, box: list[Any], seen: list[int], value: Any) -> None:
        self.box = box
        self.seen = seen
        self.value = value

    def record(self) -> None:
        self.seen.append(sys.getrefcount(self.box[0]))

    def __hash__(self) -> int:
        self.record()
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        self.record()
        return bool(other == self.value)

    def __index__(self) -> int:
        self.record()
        return int(self.value)


def _counts(op: Any, probe: _Probe) -> int:
    probe.seen.clear()
    op()
    assert probe.seen, "the probe did not run"
    assert len(set(probe.seen)) == 1, probe.seen
    return probe.seen[0]


def test_hot_paths_take_no_reference_to_the_container() -> None:
    # Outside any operation the probe sees `base`; an operation that holds
    # an extra (stack or bound-method) reference to the container makes it
    # see more while it runs.  Through a handle it must see exactly `base`.
    d = ConcurrentDict()
    box: list[Any] = [d]
    seen: list[int] = []
    k = _Probe(box, seen, "k")
    d[k] = 1
    h = d.handle()
    base = _counts(k.record, k)
    hot = {
        "h[k]": lambda: h[k],
        "h.get(k)": lambda: h.get(k),
        "k in h": lambda: k in h,
        "h[k] = v": lambda: h.__setitem__(k, 2),
        "h.setdefault(k)": lambda: h.setdefault(k, 0),
        "h.get_or_insert(k)": lambda: h.get_or_insert(k, int),
        "h.compare_and_set(k)": lambda: h.compare_and_set(k, 2, 2),
        "h.update_item(k)": lambda: h.update_item(k, lambda v: v),
        "h.pop(k)": lambda: (h.pop(k), h.__setitem__(k, 2)),
    }
    for name, op in hot.items():
        assert _counts(op, k) == base, name
    # The probe can see a reference: the container itself (LOAD_FAST on
    # 3.11-3.13, and the bound method of d.get everywhere) holds one.
    assert _counts(lambda: d.get(k), k) > base

    lst = ConcurrentList([1, 2, 3])
    box[0] = lst
    i = _Probe(box, seen, 1)
    g = lst.handle()
    base = _counts(i.record, i)
    for name, op in {
        "g[i]": lambda: g[i],
        "g[i] = v": lambda: g.__setitem__(i, 2),
        "g.insert(i)": lambda: g.insert(i, 0),
        "g.pop(i)": lambda: g.pop(i),
        "i in g": lambda: i in g,
    }.items():
        assert _counts(op, i) == base, name
    assert _counts(lambda: lst.pop(i) and lst.insert(1, 2), i) > base


def _function_body(c_source: str, cls: str, method: str) -> str:
    m = re.search(
        rf"^static [^\n;]*__pyx_pf_17nogil_collections_7_handle_\d+{cls}_\d+{method}\([^;{{]*\)"
        rf" \{{\n.*?^}}",
        c_source,
        flags=re.S | re.M,
    )
    assert m, f"{cls}.{method} not found in the generated C"
    return m.group(0)


def _container_refs(body: str) -> list[str]:
    """What in a generated C function takes a reference to the container:
    an INCREF/NewRef of the ``_c`` field, a copy of it into a temporary (which
    Cython increfs), or an attribute lookup on it (a bound method holds a
    reference)."""
    field = r"__pyx_v_self->(?:__pyx_base\.)?_c\b"
    return re.findall(
        rf"(?:INCREF|NewRef)\(\(?(?:PyObject \*\))?{field}"
        rf"|= \(?(?:PyObject \*\))?{field};"
        rf"|GetAttr\w*\({field}",
        body,
    )


def test_generated_c_never_increfs_the_container_on_hot_paths() -> None:
    c_file = SRC / "_handle.c"
    if not c_file.exists():
        pytest.skip("the generated C (src/nogil_collections/_handle.c) is not in this checkout")
    text = c_file.read_text()
    for cls, methods in {
        "_Handle": ("__len__", "__contains__", "__getitem__", "__setitem__", "__delitem__"),
        "ConcurrentDictHandle": ("update_item",),
    }.items():
        for method in methods:
            body = _function_body(text, cls, method)
            assert "_cp" in body, f"{cls}.{method} does not use the stored pointer"
            refs = _container_refs(body)
            assert not refs, f"{cls}.{method} takes a reference to the container: {refs}"
    # The check can fail: the cold forwarding paths do take references.
    assert _container_refs(_function_body(text, "ConcurrentDictHandle", "__ior__"))
    assert _container_refs(_function_body(text, "ConcurrentListHandle", "__iadd__"))


def _c_function(text: str, name: str) -> str:
    m = re.search(rf"^    static [^\n]*\b{name}\(.*?^    }}", text, flags=re.S | re.M)
    assert m, f"{name} not found"
    return m.group(0)


def test_forwarding_trampolines_take_no_reference_on_the_exact_path() -> None:
    # The named methods (get, setdefault, pop, every list method...) are C
    # trampolines installed at import (nch_install): their exact-type path is
    # nch_invoke_kw, which must never take a reference to the container.
    source = (SRC / "_handle.pyx").read_text()
    invoke = _c_function(source, "nch_invoke_kw")
    assert not re.findall(r"INCREF|NewRef|GetAttr|Py_XNewRef", invoke)
    call = _c_function(source, "nch_tramp_call")
    exact_path = call.split("bound = PyObject_GetAttr")[0]
    assert "nch_invoke_kw" in exact_path and not re.findall(r"INCREF|NewRef", exact_path)
    for name in ("get", "setdefault", "pop", "get_or_insert", "compare_and_set", "keys"):
        assert type(ConcurrentDictHandle.__dict__[name]).__name__ == "method_descriptor", name
    for name in ("append", "pop", "insert", "sort", "heappush", "_layout"):
        assert type(ConcurrentListHandle.__dict__[name]).__name__ == "method_descriptor", name


# --------------------------------------------------------------------------- threads
def test_a_handle_used_by_other_threads_is_still_correct() -> None:
    # One handle, created here, shared by four threads (none of which owns
    # it); and one handle per thread.  Both must give the container's results.
    d: ConcurrentDict[int, int] = ConcurrentDict()
    lst: ConcurrentList[int] = ConcurrentList()
    shared_d, shared_l = d.handle(), lst.handle()
    n = 2000

    def worker(t: int) -> int:
        own_d, own_l = d.handle(), lst.handle()
        assert own_d.owner_thread == threading.get_ident() != shared_d.owner_thread
        for i in range(n):
            hd, hl = (shared_d, shared_l) if i % 2 else (own_d, own_l)
            hd[t * n + i] = i
            assert hd[t * n + i] == i and (t * n + i) in hd
            hd.update_item(-1, lambda v: v + 1, 0)
            hl.append(t)
        return sum(1 for x in own_l if x == t)

    counts = run_threads([lambda t=t: worker(t) for t in range(4)])
    assert counts == [n] * 4
    assert len(d) == 4 * n + 1 and d[-1] == 4 * n
    assert sorted(lst) == sorted([t for t in range(4) for _ in range(n)])
    d._check()
    lst._check()


class _PerThreadHandles:
    """The object a race campaign sees: every thread reaches the container
    through its own handle, created in that thread on first use."""

    def __init__(self, container: Any) -> None:
        self._container = container
        self._local = threading.local()

    def _h(self) -> Any:
        h = getattr(self._local, "h", None)
        if h is None:
            h = self._local.h = self._container.handle()
        return h

    def __getattr__(self, name: str) -> Any:
        return getattr(self._h(), name)

    def __getitem__(self, k: Any) -> Any:
        return self._h()[k]

    def __setitem__(self, k: Any, v: Any) -> None:
        self._h()[k] = v

    def __delitem__(self, k: Any) -> None:
        del self._h()[k]

    def __contains__(self, k: Any) -> bool:
        return k in self._h()

    def __len__(self) -> int:
        return len(self._h())

    def __iter__(self) -> Any:
        return iter(self._h())

    def __reversed__(self) -> Any:
        return reversed(self._h())

    def __eq__(self, other: object) -> bool:
        return bool(self._h() == other)

    def __iadd__(self, other: Any) -> Any:
        h = self._h()
        h += other
        return self

    def __imul__(self, n: Any) -> Any:
        h = self._h()
        h *= n
        return self

    __hash__ = None  # type: ignore[assignment]


DICT_HANDLE_OPS = DICT_OPS.only(
    "__setitem__", "__getitem__", "get", "__contains__", "__delitem__", "pop", "setdefault",
    "compare_and_set", "get_or_insert", "update_item", "pop_if", "len",
).with_domain(keys=st.sampled_from("ab"), values=st.integers(0, 1))

LIST_HANDLE_OPS = LIST_OPS.only(
    "append", "pop", "__getitem__", "__setitem__", "append_if_absent", "compare_and_set",
    "update", "len",
).with_domain(values=st.integers(0, 1), indices=st.integers(-2, 1), max_initial=3)


@pytest.mark.free_threaded_only
@race_test(factory=lambda init: _PerThreadHandles(ConcurrentDict(init)), model=dict,
           ops=DICT_HANDLE_OPS, threads=(2, 3), ops_per_thread=(1, 3), examples=60,
           repetitions=8)
def test_race_dict_through_per_thread_handles(report: RaceReport) -> None:
    assert not report.ops_skipped and report.runs >= 60 * 8, report


@pytest.mark.free_threaded_only
@race_test(factory=lambda init: ConcurrentDict(init).handle(), model=dict,
           ops=DICT_HANDLE_OPS, threads=(2, 3), ops_per_thread=(1, 3), examples=40,
           repetitions=8)
def test_race_dict_through_one_shared_handle(report: RaceReport) -> None:
    assert not report.ops_skipped and report.runs >= 40 * 8, report


@pytest.mark.free_threaded_only
@race_test(factory=lambda init: _PerThreadHandles(ConcurrentList(init)), model=list,
           ops=LIST_HANDLE_OPS, threads=(2, 3), ops_per_thread=(1, 3), examples=60,
           repetitions=8)
def test_race_list_through_per_thread_handles(report: RaceReport) -> None:
    assert not report.ops_skipped and report.runs >= 60 * 8, report


@pytest.mark.free_threaded_only
@race_test(factory=lambda init: ConcurrentList(init).handle(), model=list,
           ops=LIST_HANDLE_OPS, threads=(2, 3), ops_per_thread=(1, 3), examples=40,
           repetitions=8)
def test_race_list_through_one_shared_handle(report: RaceReport) -> None:
    assert not report.ops_skipped and report.runs >= 40 * 8, report

"""Regression tests for the defects of issue 13 (review of commit e7e04d4).

Each test names the defect it pins down.  Defect 1 (update() suspended while
growing) needs a forced suspension and lives in tests/test_fault_injection.py.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from _threads import run_threads
from nogil_collections import ABSENT, ConcurrentDict, ConcurrentList, _dict, _fault_injection


def _run_python(code: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout,
    )


# ---------------------------------------------------------------- defect 2

@pytest.mark.parametrize("how", ["del", "clear"])
def test_deeply_nested_dict_chain_is_freed_without_crash(how: str) -> None:
    # Defect 2: ConcurrentDict had no trashcan; freeing a 100,000-deep chain
    # recursed once per level in C and overflowed the stack (SIGSEGV).
    r = _run_python(f"""
        from nogil_collections import ConcurrentDict
        o = ConcurrentDict()
        for _ in range(200_000):
            o = ConcurrentDict(x=o)
        if {how!r} == "clear":
            o.clear()
            assert len(o) == 0
        del o
        print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-2000:])


# ---------------------------------------------------------------- defect 3

class _DeletesOnEq:
    """A value whose == deletes another key of the dict (a writer that ran
    between two steps of the membership test)."""

    def __init__(self, d: ConcurrentDict[Any, Any], victim: Any) -> None:
        self.d = d
        self.victim = victim

    def __eq__(self, other: object) -> bool:
        self.d.pop(self.victim, None)
        return False

    __hash__ = None  # type: ignore[assignment]


def test_values_contains_never_raises_when_keys_are_deleted() -> None:
    # Defect 3: ValuesView.__contains__ iterated the keys and looked each one
    # up again: KeyError for a key deleted meanwhile.
    d: ConcurrentDict[Any, Any] = ConcurrentDict()
    d["a"] = _DeletesOnEq(d, "b")
    d["b"] = 2
    d["c"] = 3
    assert 3 in d.values()          # scans one snapshot: a, b, c
    assert "b" not in d
    assert 99 not in d.values()


@pytest.mark.free_threaded_only
def test_values_contains_under_concurrent_deletes() -> None:
    d: ConcurrentDict[int, int] = ConcurrentDict((i, i) for i in range(64))
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        while not stop.is_set():
            for i in range(64):
                d.pop(i, None)
            d.update((i, i) for i in range(64))

    def probe() -> None:
        try:
            for _ in range(3000):
                _ = -1 in d.values()
        except BaseException as e:
            errors.append(e)
        finally:
            stop.set()

    run_threads([churn, probe])
    assert not errors, errors[0]


def test_view_mixins_do_not_look_keys_up_again() -> None:
    # The audit of defect 3: every collections.abc mixin the views inherit
    # either is overridden or only uses __iter__/__contains__/__len__ (each of
    # which reads one snapshot or does one lookup).  A method added to the
    # ABCs that looks keys up again would show up here.
    import collections.abc as abc
    overridden = {"__contains__", "__iter__", "__reversed__", "__repr__"}
    for view, base in ((_dict.ConcurrentDictKeys, abc.KeysView),
                       (_dict.ConcurrentDictValues, abc.ValuesView),
                       (_dict.ConcurrentDictItems, abc.ItemsView)):
        for name in ("__contains__", "__iter__"):
            assert name in vars(view), (view, name)
        inherited = {n for n in dir(base) if n in vars(base) and n not in vars(view)}
        live_lookup = {n for n in inherited
                       if "_mapping[" in _source_or_empty(getattr(base, n))}
        assert not live_lookup - overridden, (view, live_lookup)


def _source_or_empty(obj: object) -> str:
    import inspect
    try:
        return inspect.getsource(obj)  # type: ignore[arg-type]
    except (TypeError, OSError):
        return ""


# ---------------------------------------------------------------- defect 4

def _wait_or_fail(threads: list[threading.Thread], timeout: float) -> None:
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "deadlock: get_or_insert calls never returned"


def test_get_or_insert_factory_may_wait_for_another_keys_get_or_insert() -> None:
    # Defect 4: all factories of a dict ran under one per-dict RLock, so a
    # factory waiting for another thread's get_or_insert of another key
    # deadlocked (a thread-pool memoiser does exactly this).
    d: ConcurrentDict[str, int] = ConcurrentDict()
    results: dict[str, int] = {}

    def factory_a() -> int:
        def get_b() -> None:
            results["b"] = d.get_or_insert("b", lambda: 2)

        t = threading.Thread(target=get_b, daemon=True)
        t.start()
        t.join(10)
        return 1 + results.get("b", -100)

    ta = threading.Thread(target=lambda: results.__setitem__("a", d.get_or_insert("a", factory_a)),
                          daemon=True)
    ta.start()
    _wait_or_fail([ta], 20)
    assert results == {"a": 3, "b": 2} and d == {"a": 3, "b": 2}


def test_get_or_insert_two_dicts_whose_factories_call_each_other() -> None:
    # Defect 4, second form: a lock-order inversion between two dicts.
    d1: ConcurrentDict[str, int] = ConcurrentDict()
    d2: ConcurrentDict[str, int] = ConcurrentDict()
    barrier = threading.Barrier(2, timeout=10)

    def f1() -> int:
        barrier.wait()      # both factories are running
        return d2.get_or_insert("y", lambda: 20) + 1

    def f2() -> int:
        barrier.wait()
        return d1.get_or_insert("z", lambda: 10) + 2

    out: list[int] = []
    threads = [threading.Thread(target=lambda: out.append(d1.get_or_insert("x", f1)), daemon=True),
               threading.Thread(target=lambda: out.append(d2.get_or_insert("w", f2)), daemon=True)]
    for t in threads:
        t.start()
    _wait_or_fail(threads, 20)
    assert sorted(out) == [12, 21]
    assert d1 == {"x": 21, "z": 10} and d2 == {"y": 20, "w": 12}


def test_get_or_insert_factory_runs_once_per_key_and_raising_leaves_no_trace() -> None:
    d: ConcurrentDict[int, object] = ConcurrentDict()
    calls: dict[int, int] = {}
    lock = threading.Lock()
    gate = threading.Event()

    def factory(k: int) -> Any:
        with lock:
            calls[k] = calls.get(k, 0) + 1
        gate.wait(5)            # keep the flight open while others arrive
        return object()

    def worker(k: int) -> object:
        return d.get_or_insert(k, lambda: factory(k))

    def opener() -> None:
        gate.set()

    res = run_threads([*(lambda k=k % 3: worker(k) for k in range(9)), opener])
    assert calls == {0: 1, 1: 1, 2: 1}
    for i in range(9):
        assert res[i] is d[i % 3]

    # A raising factory: nothing inserted, no in-flight marker left; the next
    # call runs its own factory.
    def boom() -> object:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        d.get_or_insert("x", boom)  # type: ignore[arg-type]
    assert "x" not in d
    assert d.get_or_insert("x", lambda: 5) == 5  # type: ignore[arg-type]


def test_get_or_insert_waiter_retries_after_the_owners_factory_raised() -> None:
    d: ConcurrentDict[str, int] = ConcurrentDict()
    started = threading.Event()
    release = threading.Event()

    def failing() -> int:
        started.set()
        release.wait(10)
        raise KeyError("factory failed")

    def owner() -> None:
        with pytest.raises(KeyError):
            d.get_or_insert("k", failing)

    def waiter() -> int:
        started.wait(10)
        t = threading.Timer(0.05, release.set)
        t.start()
        return d.get_or_insert("k", lambda: 7)

    res = run_threads([owner, waiter])
    assert res[1] == 7 and d == {"k": 7}


def test_get_or_insert_reentrant_same_key_raises_instead_of_deadlocking() -> None:
    d: ConcurrentDict[str, int] = ConcurrentDict()
    with pytest.raises(RuntimeError, match="same key"):
        d.get_or_insert("k", lambda: d.get_or_insert("k", lambda: 1))
    assert "k" not in d
    # Another key from inside a factory is fine.
    assert d.get_or_insert("a", lambda: d.get_or_insert("b", lambda: 1) + 1) == 2


# ---------------------------------------------------------------- defect 5

@pytest.mark.skipif(not _fault_injection.ENABLED,
                    reason="counts read regions: needs the fault-injection build "
                           "(make fault-injection)")
def test_fault_dict_snapshot_uses_bounded_read_regions() -> None:
    # Defect 5: a snapshot held one read region for the whole table, so a
    # writer's synchronize() waited for a whole 2M-entry copy.  The
    # fault-injection build counts the regions ncd_collect starts
    # ("dict.collect.region"): at least one per 1024 entries.
    n = 100 * 1024 + 5
    d = ConcurrentDict.fromkeys(range(n), 0)
    for collect in (d.snapshot, d.copy, lambda: list(d), lambda: list(d.values()),
                    lambda: list(d.items())):
        before = _fault_injection.hits().get("dict.collect.region", 0)
        assert len(collect()) == n
        regions = _fault_injection.hits()["dict.collect.region"] - before
        assert regions >= n // 1024 + 1, regions


# ---------------------------------------------------------------- defect 6

def test_pop_if_absent_claims_no_deletion() -> None:
    # Defect 6: pop_if(k, ABSENT) returned True although nothing was deleted.
    d: ConcurrentDict[str, int] = ConcurrentDict(a=1)
    assert d.pop_if("missing", ABSENT) is False
    assert d.pop_if("a", ABSENT) is False
    assert d == {"a": 1}
    with pytest.raises(TypeError, match="unhashable"):
        d.pop_if([], ABSENT)
    # compare_and_set keeps compare-and-set semantics: "absent, and absent
    # afterwards" holds, nothing is deleted (docs/guarantees.md).
    assert d.compare_and_set("missing", ABSENT, ABSENT) is True
    assert d.compare_and_set("a", ABSENT, ABSENT) is False
    assert d == {"a": 1}


# ---------------------------------------------------------------- defect 7

@pytest.mark.skipif(_dict._in_critical_section() is None,
                    reason="GIL build: no critical sections to run __del__ under")
def test_update_releases_replaced_values_outside_the_critical_section() -> None:
    # Defect 7 (first item): update() decref'ed the replaced values inside the
    # critical section, so their __del__ ran under the dict's lock.
    seen: list[bool | None] = []

    class Probe:
        def __del__(self) -> None:
            seen.append(_dict._in_critical_section())

    d: ConcurrentDict[str, object] = ConcurrentDict(a=Probe(), b=Probe())
    d.update(a=1, b=2)
    gc.collect()
    assert seen == [False, False]
    # The other replace/delete paths, for completeness.
    d["c"] = Probe()
    d["c"] = 3
    d["e"] = Probe()
    assert d.compare_and_set("e", d["e"], 4)
    d["f"] = Probe()
    assert d.pop_if("f", d["f"])
    assert seen == [False] * 5


@pytest.mark.skipif(sys.version_info >= (3, 12),
                    reason="3.12+ schedule the GC at the next eval-breaker check; 3.11 runs it "
                           "inside an allocation")
def test_list_compare_and_concat_copy_both_lists_from_one_instant() -> None:
    # Defect 7 (second item): on 3.11 comparisons and + between two
    # ConcurrentLists copied the lists one after the other into new lists;
    # creating the second list could run the GC, whose finalizers changed the
    # lists in between.  Here a finalizer appends to both lists (they stay
    # equal at every instant) and re-arms itself for the next collection.
    a: ConcurrentList[int] = ConcurrentList([0] * 10)
    b: ConcurrentList[int] = ConcurrentList([0] * 10)
    armed = [False]

    class Arm:
        def __init__(self) -> None:
            self.cycle = self

        def __del__(self) -> None:
            a.append(1)
            b.append(1)
            if armed[0]:
                Arm()

    def with_gc_in_every_allocation(op: Any) -> Any:
        # Drain list's free list so that creating a list really allocates
        # (and so may collect), then leave one finalizer cycle behind.
        hold = [[] for _ in range(200)]
        armed[0] = True
        Arm()
        try:
            return op()
        finally:
            armed[0] = False
            del hold

    old = gc.get_threshold()
    gc.collect()
    try:
        gc.set_threshold(1)
        for _ in range(10):
            assert with_gc_in_every_allocation(lambda: a == b), \
                "the two copies were taken at different instants"
            assert not with_gc_in_every_allocation(lambda: a != b)
            summed = with_gc_in_every_allocation(lambda: a + b)
            n = len(summed)
            assert n % 2 == 0 and list(summed)[: n // 2] == list(summed)[n // 2:]
    finally:
        armed[0] = False
        gc.set_threshold(*old)
        gc.collect()


class _InsertsAtFront:
    """An item whose == lets a writer insert at the front of the list first
    (as another thread does while a blocking __eq__ suspends the lock)."""

    def __init__(self, lst: ConcurrentList[Any], times: int) -> None:
        self.lst = lst
        self.times = times

    def __eq__(self, other: object) -> bool:
        if self.times > 0:
            self.times -= 1
            self.lst.insert(0, "front")
        return other == "target"

    __hash__ = None  # type: ignore[assignment]


def test_remove_after_restarts_is_exact_within_the_budget_and_bounded_beyond() -> None:
    # Defect 7 (third item), decided as documented in docs/guarantees.md:
    # up to 8 disturbed comparisons restart the scan, so remove() deletes the
    # item that compared equal; after that the scan keeps its index (as
    # list.remove does when __eq__ mutates the list) and terminates.
    lst: ConcurrentList[Any] = ConcurrentList()
    item = _InsertsAtFront(lst, times=8)
    lst.append(item)
    lst.remove("target")
    assert item not in list(lst) and list(lst) == ["front"] * 8
    lst2: ConcurrentList[Any] = ConcurrentList()
    item2 = _InsertsAtFront(lst2, times=9)
    lst2.append(item2)
    lst2.remove("target")          # bounded: the 9th disturbance is not re-checked
    model: list[Any] = ["front"] * 9 + [item2]
    del model[8]                    # list.remove deletes the index that compared equal
    assert list(lst2) == model
    assert not lst2.append_if_absent("front")


def test_get_or_insert_in_flight_entry_never_strands_waiters() -> None:
    # If removing the owner's in-flight entry raises (the __eq__ of a
    # colliding key in flight), later callers for that key are neither
    # blocked nor spinning on the stale entry.
    class Collides:
        armed = False

        def __init__(self, name: str) -> None:
            self.name = name

        def __hash__(self) -> int:
            return 1

        def __eq__(self, other: object) -> bool:
            if Collides.armed and isinstance(other, Collides) and other is not self:
                raise ArithmeticError("eq")
            return isinstance(other, Collides) and other.name == self.name

    d: ConcurrentDict[Collides, int] = ConcurrentDict()
    a, b = Collides("a"), Collides("b")
    b_started, release_b = threading.Event(), threading.Event()

    def factory_b() -> int:
        b_started.set()
        release_b.wait(20)
        return 2

    def factory_a() -> int:
        Collides.armed = True       # removing a's entry now compares with b's
        raise LookupError("factory a")

    tb = threading.Thread(target=lambda: d.get_or_insert(b, factory_b), daemon=True)
    tb.start()
    assert b_started.wait(10)
    with pytest.raises(ArithmeticError):
        d.get_or_insert(a, factory_a)
    Collides.armed = False
    out: list[int] = []
    tc = threading.Thread(target=lambda: out.append(d.get_or_insert(a, lambda: 5)), daemon=True)
    tc.start()
    tc.join(20)
    release_b.set()
    tb.join(20)
    assert out == [5], "a caller was stranded by the stale in-flight entry"
    assert d == {a: 5, b: 2}
    d._check()

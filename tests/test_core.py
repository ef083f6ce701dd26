"""The concurrency core's primitives (atomics.h, refcount.h, seqlock.h, read
regions), exercised through the private _selftest module."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import pytest

from _threads import run_threads
from nogil_collections import _debug
from nogil_collections._core import _selftest as st

FT = st.FREE_THREADED
ft_build_only = pytest.mark.skipif(
    not FT, reason="GIL builds have a single ob_refcnt: no shared/local refcount fields"
)


# ------------------------------------------------------------------ atomics


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("ptr", [1, 0xDEADBEEF, 2**64 - 8]),
        ("ssize", [1, -1, sys.maxsize, -sys.maxsize - 1]),
        ("uint64", [1, 2**63, 2**64 - 1]),
        ("uint32", [1, 2**31, 2**32 - 1]),
        ("int", [1, -1, 2**31 - 1, -(2**31)]),
    ],
)
def test_load_store_roundtrip_every_ordering(kind: str, values: list[int]) -> None:
    for v in values:
        assert st.atomics_roundtrip(kind, v) == 0, (kind, v)


def test_cas_success_stores_desired() -> None:
    assert st.cas_ssize(5, 5, 9) == (True, 9, 5)
    assert st.cas_uint64(2**64 - 1, 2**64 - 1, 0) == (True, 0, 2**64 - 1)
    assert st.cas_ptr(0x1000, 0x1000, 0x2000) == (True, 0x2000, 0x1000)


def test_cas_failure_leaves_cell_and_reports_current_value() -> None:
    assert st.cas_ssize(5, 4, 9) == (False, 5, 5)
    assert st.cas_uint64(7, 8, 9) == (False, 7, 7)
    assert st.cas_ptr(0x1000, 0x3000, 0x2000) == (False, 0x1000, 0x1000)


def test_fetch_add_returns_old_value() -> None:
    # Like _Py_atomic_add_*: the OLD value (design-notes pitfall).
    assert st.fetch_add_ssize(10, 5) == (10, 15)
    assert st.fetch_add_ssize(10, -15) == (10, -5)
    assert st.fetch_add_uint64(2**64 - 1, 2) == (2**64 - 1, 1)  # wraps


def test_exchange_returns_old_value() -> None:
    assert st.exchange_uint64(3, 4) == (3, 4)
    assert st.exchange_ssize(-3, 4) == (-3, 4)


@pytest.mark.parametrize("use_cas", [False, True], ids=["fetch_add", "cas_loop"])
def test_atomic_increments_are_not_lost(use_cas: bool) -> None:
    st.counter_reset()
    n = 200_000
    run_threads([lambda: st.counter_add_loop(n, use_cas)] * 2)
    assert st.counter_value() == 2 * n


# ------------------------------------------------------------------ seqlock


def test_seqlock_validated_reads_are_never_torn() -> None:
    st.seq_reset()
    writes = 1_000_000
    done = threading.Event()

    def writer() -> None:
        try:
            for _ in range(writes // 1000):
                st.seq_writer(1000)
        finally:
            done.set()

    def reader() -> tuple[int, int, int]:
        ok = torn = retries = 0
        deadline = time.monotonic() + 10
        # Read for as long as the writer writes (and at least a little).
        while (not done.is_set() or ok == 0) and time.monotonic() < deadline:
            o, t, r = st.seq_reader(5_000)
            ok, torn, retries = ok + o, torn + t, retries + r
        return ok, torn, retries

    _, (ok, torn, _retries) = run_threads([writer, reader])
    assert torn == 0
    assert ok > 0
    assert st.seq_writer(0) == 2 * writes  # even: every write section closed


def test_seqlock_single_thread_versions() -> None:
    st.seq_reset()
    assert st.seq_writer(3) == 6
    ok, torn, retries = st.seq_reader(10)
    assert (ok, torn, retries) == (10, 0, 0)


# ------------------------------------------------------------------ try-incref


@ft_build_only
class TestTryIncrefStateMachine:
    """ncc_try_incref on fake headers: every state of ob_ref_shared
    (Include/object.h _Py_REF_*; semantics of _Py_TryIncrefFast /
    _Py_TryIncRefShared in Include/internal/pycore_object.h)."""

    ONE = 1 << st.REF_SHARED_SHIFT

    def test_immortal_succeeds_without_writing(self) -> None:
        assert st.fake_try_incref(st.IMMORTAL_LOCAL, 0) == (True, st.IMMORTAL_LOCAL, 0)

    def test_owner_takes_a_local_reference(self) -> None:
        assert st.fake_try_incref(1, 0, owned=True) == (True, 2, 0)

    def test_unflagged_zero_shared_fails(self) -> None:
        # gh-124642: all references local to another thread and no
        # maybe-weakref flag: the object may be freed without a handshake.
        assert st.fake_try_incref(1, 0) == (False, 1, 0)

    def test_maybe_weakref_flag_makes_it_succeed(self) -> None:
        flag = st.REF_MAYBE_WEAKREF
        assert st.fake_try_incref(1, flag) == (True, 1, self.ONE | flag)

    def test_merged_with_zero_count_is_being_freed(self) -> None:
        assert st.fake_try_incref(0, st.REF_MERGED) == (False, 0, st.REF_MERGED)

    def test_merged_with_references_succeeds(self) -> None:
        shared = 3 * self.ONE | st.REF_MERGED
        assert st.fake_try_incref(0, shared) == (True, 0, shared + self.ONE)

    def test_queued_negative_count_succeeds(self) -> None:
        # Queued for merging by its owner: still alive (local refs remain).
        shared = -self.ONE | st.REF_QUEUED
        assert st.fake_try_incref(1, shared) == (True, 1, shared + self.ONE)

    def test_publish_sets_maybe_weakref_only_when_no_flag(self) -> None:
        flag = st.REF_MAYBE_WEAKREF
        assert st.fake_publish(1, 0) == flag
        assert st.fake_publish(1, 2 * self.ONE) == 2 * self.ONE | flag
        for state in (st.REF_QUEUED, st.REF_MERGED, 5 * self.ONE | st.REF_MERGED, flag):
            assert st.fake_publish(1, state) == state
        assert st.fake_publish(st.IMMORTAL_LOCAL, 0) == 0


@ft_build_only
def test_publish_flags_a_real_object() -> None:
    obj = object()
    owned, _local, shared = st.ref_fields(obj)
    assert owned
    assert shared & 3 == 0
    st.publish(obj)
    _, _, shared = st.ref_fields(obj)
    assert shared & 3 == st.REF_MAYBE_WEAKREF
    st.publish(obj)  # idempotent
    assert st.ref_fields(obj)[2] == shared


def test_ref_fields_absent_on_gil_build() -> None:
    if FT:
        assert st.ref_fields(object()) is not None
    else:
        assert st.ref_fields(object()) is None


def test_try_getref_live_object() -> None:
    obj = object()
    slot = st.Slot(obj)
    base = sys.getrefcount(obj)
    got = slot.try_getref(obj)
    assert got is obj
    assert sys.getrefcount(obj) == base + 1
    del got
    assert sys.getrefcount(obj) == base


def test_try_getref_slot_mismatch_returns_null_and_gives_reference_back() -> None:
    a, b = object(), object()
    slot = st.Slot(a)
    base_a, base_b = sys.getrefcount(a), sys.getrefcount(b)
    assert slot.try_getref(b) is None
    assert sys.getrefcount(a) == base_a
    assert sys.getrefcount(b) == base_b


def test_try_getref_deferred_hands_back_the_reference_to_drop() -> None:
    a, b = object(), object()
    slot = st.Slot(a)
    base_b = sys.getrefcount(b)
    got, drop = slot.try_getref_deferred(b)
    assert got is None
    assert drop is b
    del drop
    assert sys.getrefcount(b) == base_b
    got, drop = slot.try_getref_deferred(a)
    assert got is a
    assert drop is None


def test_try_load_and_empty_slot() -> None:
    obj = object()
    slot = st.Slot()
    assert slot.try_load() is None
    slot.set(obj)
    assert slot.try_load() is obj
    base = sys.getrefcount(obj)
    slot.set(None)
    assert sys.getrefcount(obj) == base - 1
    assert slot.try_load() is None


@ft_build_only
def test_try_getref_of_object_owned_by_another_thread() -> None:
    # The shared-refcount path: the object is created (and owned) by another
    # thread, published, and read here.
    made: list[object] = []
    slot = st.Slot()

    def make() -> None:
        obj = object()
        made.append(obj)
        slot.set(obj)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    obj = made[0]
    owned, _, shared = st.ref_fields(obj)
    assert not owned
    assert shared & 3 in (st.REF_MAYBE_WEAKREF, st.REF_MERGED)
    base = sys.getrefcount(obj)
    got = slot.try_getref(obj)
    assert got is obj
    assert sys.getrefcount(obj) == base + 1


def test_concurrent_slot_replacement_never_returns_a_wrong_object() -> None:
    objs = [object() for _ in range(16)]
    slot = st.Slot(objs[0])
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 2_000_000:
            slot.set(objs[i % 16])
            i += 1

    def reader() -> tuple[int, int]:
        hits = misses = 0
        try:
            for k in range(60_000):
                expected = objs[k % 16]
                got = slot.try_getref(expected)
                if got is None:
                    misses += 1
                else:
                    assert got is expected
                    hits += 1
        finally:
            stop.set()
        return hits, misses

    _, (hits, misses) = run_threads([writer, reader])
    assert hits + misses == 60_000
    for o in objs:
        # Nothing leaked: only the list, the local binding and getrefcount
        # (plus the slot for one of them) hold references.
        assert sys.getrefcount(o) <= 4


# ------------------------------------------------------------------ regions


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_read_regions_nest(depth: int) -> None:
    inner, after = st.region_roundtrip(depth)
    assert inner is FT  # regions compile to nothing on GIL builds
    assert after is False
    assert st.in_region() is False


def test_region_registers_thread_once_and_unregisters_at_exit() -> None:
    before = _debug.qsbr_stats()["registered_threads"]
    seen: list[int] = []
    go = threading.Event()

    def body() -> None:
        for _ in range(3):
            st.region_roundtrip(2)
        seen.append(_debug.qsbr_stats()["registered_threads"])
        go.wait(10)

    t = threading.Thread(target=body)
    t.start()
    for _ in range(1000):
        if seen:
            break
        threading.Event().wait(0.01)
    go.set()
    t.join(10)
    assert seen == [before + (1 if FT else 0)]
    assert _debug.qsbr_stats()["registered_threads"] == before


# ------------------------------------------------------------------ QSBRArray


def make_array(n: int = 10, pool: int = 7) -> st.QSBRArray:
    return st.QSBRArray(tuple(object() for _ in range(pool)), n)


def test_array_reads_and_bounds() -> None:
    a = make_array(10)
    a._check()
    assert len(a) == 10
    assert a.get(3) is not None
    assert a.get(10) is None
    assert a.get(-1) is None
    a.resize(3)
    assert len(a) == 3
    assert a.get(5) is None
    a._check()


def test_array_resize_retires_exactly_one_block() -> None:
    a = make_array(10)
    s0 = _debug.qsbr_stats()
    a.resize(50)
    a.churn(9, 5, 60)
    s1 = _debug.qsbr_stats()
    assert s1["retired_count"] - s0["retired_count"] == 10
    # No reader is inside a region: every retire's poll frees at once.
    assert s1["pending_count"] == 0
    assert s1["freed_count"] - s0["freed_count"] == 10
    assert s1["freed_bytes"] - s0["freed_bytes"] == s1["retired_bytes"] - s0["retired_bytes"]
    a._check()


def test_array_set_publishes_and_releases_old_item() -> None:
    a = make_array(4)
    obj = object()
    base = sys.getrefcount(obj)
    a.set(2, obj)
    assert a.get(2) is obj
    assert sys.getrefcount(obj) == base + 1
    if FT:
        assert st.ref_fields(obj)[2] & 3 == st.REF_MAYBE_WEAKREF
    a.set(2, object())
    assert sys.getrefcount(obj) == base
    with pytest.raises(IndexError):
        a.set(4, obj)


def test_array_releases_items_on_shrink_and_dealloc() -> None:
    pool = tuple(object() for _ in range(3))

    def counts() -> list[int]:
        return [sys.getrefcount(o) for o in pool]

    bases = counts()
    a = st.QSBRArray(pool, 30)
    assert counts() == [b + 10 for b in bases]
    a.resize(3)
    assert counts() == [b + 1 for b in bases]
    del a
    assert counts() == bases


def test_array_layout_keeps_hot_fields_off_the_header_line() -> None:
    a = make_array()
    lay = a.layout()
    for name in ("version", "size", "arr"):
        assert lay[name] >= lay["header"] + 48
    a._check()


def test_array_read_loop_single_thread() -> None:
    a = make_array(100)
    r = a.read_loop(50_000)
    assert r["corrupt"] == 0
    assert r["mismatch"] == 0
    assert r["retries"] == 0
    assert r["ok"] + r["out_of_range"] == 50_000
    assert r["out_of_range"] > 0  # the loop probes index == size too


def test_critical_section_is_suspended_while_its_thread_blocks() -> None:
    # Rule 1 of docs/design.md: a mutation path that calls back into Python
    # must re-validate afterwards, because a blocking callback suspends the
    # critical section and lets another writer in.
    a = make_array(4)
    entered, mutated = threading.Event(), threading.Event()

    def other_writer() -> None:
        entered.wait(10)
        a.resize(9)  # needs the critical section that the main thread holds
        mutated.set()

    def callback() -> None:
        entered.set()
        assert mutated.wait(10), "critical section was not suspended: deadlock"

    t = threading.Thread(target=other_writer)
    t.start()
    before, after = a.call_in_section(callback)
    t.join(10)
    assert after != before  # the object changed under our "lock"
    assert len(a) == 9
    a._check()


def test_check_hook() -> None:
    _debug.check(make_array())
    with pytest.raises(AttributeError):
        _debug.check(object())


def test_benchmarks_smoke() -> None:
    assert 0 < st.bench_read_region(10_000) < 10_000
    assert 0 <= st.bench_empty_loop(10_000) < 10_000
    assert 0 < st.bench_fence(10_000) < 10_000
    assert 0 < make_array(4).bench_get(10_000) < 100_000


# ------------------------------------------- CPython internals we rely on
# One test per row of docs/design.md, "CPython internals: assumptions and
# where they rest": each checks the interpreter itself (not our code's view of
# it), so a CPython release that changes the fact fails here first.


@ft_build_only
def test_assumption_refcount_flag_values() -> None:
    # Include/refcount.h (3.14.7:76-90, 3.15.0rc2:74-88; 3.13: Include/object.h):
    # refcount.h's 3.13 try-incref and the fake-header tests above use them.
    assert st.REF_SHARED_SHIFT == 2
    assert (st.REF_MAYBE_WEAKREF, st.REF_QUEUED, st.REF_MERGED) == (1, 2, 3)
    assert st.IMMORTAL_LOCAL == 2**32 - 1


@ft_build_only
def test_assumption_object_header_layout() -> None:
    # struct _object (Include/object.h 3.14.7:152-163, 3.15.0rc2:156-167):
    # ob_tid, ob_flags, ob_mutex, ob_gc_bits, ob_ref_local, ob_ref_shared,
    # ob_type; the list's and dict's layout tests put their hot fields a
    # cache line past it.
    assert st.header_offsets() == (0, 10, 12, 16, 24, 32)
    assert st.SIZEOF_PYOBJECT == 32


@ft_build_only
def test_assumption_biased_refcount_owner_local_others_shared() -> None:
    # The owner's references count in ob_ref_local, any other thread's in
    # ob_ref_shared (1 << _Py_REF_SHARED_SHIFT each), and ob_tid names the
    # creating thread (_Py_ThreadId): what ncl_foreign and the owner fast path
    # of try-incref rely on (Include/refcount.h Py_INCREF).
    obj = object()
    holder: list[object] = []

    def take() -> None:
        holder.append(obj)  # one reference, taken by a non-owner

    owned, local, shared = st.ref_fields(obj)
    assert owned
    t = threading.Thread(target=take)
    t.start()
    t.join()
    owned2, local2, shared2 = st.ref_fields(obj)
    assert owned2
    assert local2 == local
    # Count bits only: 3.14+ flags an object stored in a cell maybe-weakref
    # (lock-free cell reads), which the closure above does.
    assert (shared2 >> st.REF_SHARED_SHIFT) - (shared >> st.REF_SHARED_SHIFT) == 1


@ft_build_only
def test_assumption_flagged_object_is_merged_before_it_is_freed() -> None:
    # _Py_MergeZeroLocalRefcount (Objects/object.c 3.14.7:435,
    # 3.15.0rc2:437): the owner's last decref of an object with any flag in
    # ob_ref_shared zeroes ob_tid and marks it merged BEFORE tp_dealloc, so
    # the owner's try-incref fast path can never revive it; an unflagged one
    # is freed with ob_tid still naming its owner (why ncc_publish is
    # mandatory, refcount.h).
    p = st.dealloc_probe()
    del p
    ours, zero, local, shared = st.last_dealloc()
    assert (ours, zero, local, shared) == (True, False, 0, 0)
    p = st.dealloc_probe()
    st.publish(p)
    del p
    ours, zero, local, shared = st.last_dealloc()
    assert (ours, zero, local, shared) == (False, True, 0, st.REF_MERGED)


@ft_build_only
def test_assumption_ob_mutex_is_the_critical_section_lock(
        held: Callable[[object], threading.Thread]) -> None:
    # PyCriticalSection_Begin(c, op) locks op->ob_mutex
    # (pycore_critical_section.h 3.14.7:113-116), and ncc_cs_is_locked
    # (PyMutex_IsLocked on 3.14+, the _bits test on 3.13) sees it held.
    obj = object()
    assert not st.mutex_is_locked(obj)
    t = held(obj)
    assert st.mutex_is_locked(obj)
    st.release_section()
    t.join(15)
    assert not st.mutex_is_locked(obj)


def test_assumption_gil_build_has_no_header_fields() -> None:
    if FT:
        assert st.header_offsets() is not None
    else:
        assert st.header_offsets() is None
        assert not st.mutex_is_locked(object())


def test_assumption_thread_state_names_the_active_critical_section() -> None:
    # PyThreadState.critical_section is the innermost section, bit 0
    # (_Py_CRITICAL_SECTION_INACTIVE) set while suspended
    # (Include/cpython/pystate.h 3.14.7:167, 3.15.0rc2:186;
    # pycore_critical_section.h:19): the fault-injection tests and
    # test_defect_regressions read it through _in_critical_section().
    from nogil_collections import _dict

    if _dict._in_critical_section() is None:
        pytest.skip("GIL build: no critical sections")
    seen: list[bool | None] = []
    a = make_array(2)
    assert _dict._in_critical_section() is False
    a.call_in_section(lambda: seen.append(_dict._in_critical_section()))
    assert seen == [True]
    assert _dict._in_critical_section() is False


def _fresh_int(i: int) -> int:
    return int(str(i))  # equal, and a different object outside the small-int cache


def _fresh_str(s: str) -> str:
    return "".join(list(s))  # equal; a different object for len(s) > 1


def test_assumption_exact_int_and_str_equality_without_python_code() -> None:
    # exact_eq.h: a compact int never equals a non-compact one (ints are
    # normalized: long_normalize, Objects/longobject.c 3.14.7:124,
    # 3.15.0rc2:126; PyUnstable_Long_IsCompact, longintrepr.h:127), and
    # equal exact strs have equal length, kind and code units (unicode_eq,
    # Objects/stringlib/eq.h:7).  Both the list's inline `in` and the
    # dict's pinned probe must agree with == across the one-digit boundary
    # (|v| < 2**30 with 30-bit digits) and across the four str kinds.
    from nogil_collections import ConcurrentDict, ConcurrentList

    edge = 2**30
    ints = [0, 1, -1, edge - 1, edge, edge + 1, -(edge - 1), -edge, -(edge + 1),
            2**60, -(2**60), 2**62 + 3, 2**64, -(2**64)]
    strs = ["ab", "abc" * 5, "\xe9t\xe9", "\xe9" * 9, "\u65e5\u672c", "\u0100x",
            "\U0001f600\U0001f601", "a\U0001f600"]
    for pool in (ints, strs):
        lst: ConcurrentList[object] = ConcurrentList(pool)
        d: ConcurrentDict[object, int] = ConcurrentDict((k, i) for i, k in enumerate(pool))
        for i, k in enumerate(pool):
            probe = _fresh_int(k) if isinstance(k, int) else _fresh_str(k)
            assert probe == k
            assert probe in lst and lst.index(probe) == i
            assert d[probe] == i
        for other in ([edge + 2, -(edge + 2), 2**61] if pool is ints
                      else ["ac", "\xe9t\xe8", "\u65e5\u672d", "a\U0001f601", "\xe9" * 8]):
            assert other not in lst and other not in d

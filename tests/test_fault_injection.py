"""Suspension-point injection (docs/design.md, "Suspension points").

Most tests here need the fault-injection build (``make fault-injection`` /
``make fault-injection-ci``), where every suspension point detaches the thread
for a moment -- on 3.13t that suspends the critical section, as a contended
PyMutex would -- or calls a hook a test installed.  The documentation test
runs everywhere.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _threads import run_threads
from nogil_collections import ConcurrentDict, ConcurrentList, _dict
from nogil_collections import _fault_injection as fi

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "src" / "nogil_collections").rglob("*.pyx")) + sorted(
    (ROOT / "src" / "nogil_collections").rglob("*.h"))
MACRO = re.compile(r'\b(NCC_SUSPEND_POINT(?:_CHECKED)?|NCC_ALLOC_FAILS|NCC_FI_COUNT)\("([a-z_.]+)"')

needs_fi = pytest.mark.skipif(not fi.ENABLED, reason="needs the fault-injection build "
                              "(make fault-injection)")


def _sort_unless_modified(lst: ConcurrentList[object]) -> None:
    """lst.sort(key=repr), where the only error allowed is list's own
    "list modified during sort": the key function's suspension point lets
    another thread write (an append through the bare writer-lock mutex makes
    that likely), and sort then gives up, as list.sort does, keeping the write."""
    try:
        lst.sort(key=repr)
    except ValueError as e:
        assert str(e) == "list modified during sort"


def _update_first(lst: ConcurrentList[object]) -> None:
    """lst.update(0, identity), where the only error allowed (besides an
    IndexError, which the callers catch) is update()'s own give-up: it retries
    a bounded number of times when writers keep changing the item, and this
    build's detaches at every suspension point let the other workers' CASes
    and updates of index 0 in between (test_list_threads' exact-counters
    test skips in this build for that reason)."""
    try:
        lst.update(0, lambda v: v)
    except RuntimeError as e:
        assert str(e).startswith("list modified during update"), e


def _points_in_sources() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in SOURCES:
        if path.name == "faultinject.h":
            continue
        for kind, name in MACRO.findall(path.read_text()):
            kind = {"NCC_SUSPEND_POINT_CHECKED": "NCC_SUSPEND_POINT"}.get(kind, kind)
            assert found.get(name, kind) == kind, f"{name} used with two macros"
            found[name] = kind
    return found


def _points_in_docs() -> dict[str, str]:
    text = (ROOT / "docs" / "design.md").read_text()
    m = re.search(r"<!-- suspension-points:begin -->(.*?)<!-- suspension-points:end -->",
                  text, re.S)
    assert m, "docs/design.md lost its list of suspension points"
    rows = re.findall(r"^\|\s*`([a-z_.]+)`\s*\|\s*`(\w+)`\s*\|", m.group(1), re.M)
    return dict(rows)


def test_fault_injection_points_match_the_documented_list() -> None:
    # Every NCC_SUSPEND_POINT / NCC_ALLOC_FAILS / NCC_FI_COUNT in the sources
    # is documented in docs/design.md with its macro, and nothing else is.
    assert _points_in_sources() == _points_in_docs()


@contextlib.contextmanager
def _in_another_thread_at(point: str, action: Callable[[], object]) -> Iterator[list[str]]:
    """Within the block, the first time the calling thread reaches the
    suspension point ``point``, run ``action`` in another thread and wait for
    it (bounded): the action runs while the caller's critical section is
    suspended there.  Yields the list of points that fired (empty if none)."""
    me = threading.get_ident()
    fired: list[str] = []

    def hook(reached: str) -> None:
        if reached == point and threading.get_ident() == me and not fired:
            fired.append(reached)
            t = threading.Thread(target=action)
            t.start()
            t.join(10)                  # blocks: our critical section is suspended

    with fi.hook(hook):
        yield fired


# ---------------------------------------------------------------- the mechanism itself

free_threaded = pytest.mark.skipif(getattr(sys, "_is_gil_enabled", lambda: True)(),
                                   reason="critical sections need a free-threaded build")


class _SpinsInEq:
    """Equal to nothing.  Its first __eq__ sets ``entered`` and spins, without
    ever blocking (so without suspending the caller's critical section), until
    ``waiter_started`` is set and then 0.3 s more: time for that thread to
    reach the list's mutex, spin and park on it (Python/lock.c)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.waiter_started = threading.Event()
        self.calls = 0

    def __eq__(self, other: object) -> bool:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            limit = time.monotonic() + 10
            while not self.waiter_started.is_set() and time.monotonic() < limit:
                pass
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                pass
        return False

    __hash__ = object.__hash__


@needs_fi
@free_threaded
@pytest.mark.timeout(120)
def test_fault_detach_hands_the_section_to_a_parked_writer() -> None:
    # _core/faultinject.h, ncc_fi_detach: without a hook, a point detaches,
    # which must really suspend the critical section (unlock its mutex) on
    # the running interpreter (3.13t-3.15t).  A's append_if_absent("a")
    # holds the list's section in a comparison; B's append("b") parks on the
    # mutex meanwhile.  At A's next point (list.eq.decref) B gets in (the
    # unlock hands the mutex to a waiter parked for over 1 ms, Python/lock.c;
    # ncc_fi_detach also waits, bounded, for a woken one), so A restarts its
    # scan and sees "b": [x, "b", "a"].  Fails ([x, "a", "b"]) when the
    # point does not suspend (checked with fi.set_suspend(False)).
    outcomes = []
    for _attempt in range(3):
        x = _SpinsInEq()
        cl: ConcurrentList[object] = ConcurrentList([x])

        def waiter(x: _SpinsInEq = x, cl: ConcurrentList[object] = cl) -> None:
            assert x.entered.wait(10)
            x.waiter_started.set()
            cl.append("b")               # blocks: A holds the section

        t = threading.Thread(target=waiter)
        t.start()
        before = fi.hits().get("list.eq.decref", 0)
        assert cl.append_if_absent("a")
        t.join(10)
        assert not t.is_alive()
        assert fi.hits().get("list.eq.decref", 0) > before
        outcomes.append(cl.snapshot()[1:])
        if outcomes[-1] == ["b", "a"]:
            break
    assert outcomes[-1] == ["b", "a"], outcomes


# ---------------------------------------------------------------- defect 1

@needs_fi
@pytest.mark.timeout(60)
@pytest.mark.parametrize("new_keys", [7, 40])
def test_fault_update_suspended_while_growing_rechecks_the_table(new_keys: int) -> None:
    # Defect 1: update() reserved room (a resize whose _drop_table decref can
    # suspend the critical section) and only then sampled the version, so a
    # clear() that ran during the suspension left it appending into a table
    # without room: a heap overflow (7 keys) or an endless probe (40 keys).
    d: ConcurrentDict[str, int] = ConcurrentDict.fromkeys([f"k{i}" for i in range(5)], 0)
    del d["k0"]                         # a pinned tombstone: the resize decrefs it
    batch = {f"n{i}": i for i in range(new_keys)}
    with _in_another_thread_at("dict.drop_table.decref", d.clear) as fired:
        d.update(batch)
    assert fired
    d._check()
    assert d == batch


@needs_fi
@pytest.mark.timeout(60)
def test_fault_update_of_generic_keys_never_lands_in_a_pinned_table() -> None:
    # Defect 1, second form: a batch of non-str/int keys converted the table
    # to a generic one, a clear() during the suspension published a new
    # pinned table, and the batch was appended there (readers would compare
    # those keys without a reference).
    d: ConcurrentDict[object, int] = ConcurrentDict.fromkeys(["a", "b", "c"], 0)
    del d["a"]
    batch: dict[object, int] = {(1, 2): 1, 2.5: 2}
    with _in_another_thread_at("dict.drop_table.decref", d.clear) as fired:
        d.update(batch)
    assert fired
    d._check()                          # "unpinnable key in a pinned table" before the fix
    assert d == batch


# ---------------------------------------------------------------- found without a trigger

@needs_fi
@pytest.mark.timeout(120)
def test_fault_dict_concurrent_update_clear_delete_stress() -> None:
    # No hook: every suspension point simply detaches.  update() batches of
    # new str keys into a pinned table with tombstones (so every growth drops
    # keys), racing clear() and deletes.  This is how the fault-injection run
    # finds defect 1 without a hand-written trigger.
    d: ConcurrentDict[str, int] = ConcurrentDict()
    rounds = 300

    def updater(tag: str) -> None:
        for r in range(rounds):
            d.update({f"{tag}{r}.{i}": i for i in range(1 + r % 40)})
            d.pop(f"{tag}{r}.0", None)

    def clearer() -> None:
        for r in range(rounds):
            if r % 3 == 0:
                d.clear()
            else:
                d[f"c{r}"] = r
                d.pop(f"c{r - 1}", None)

    before = fi.hits().get("dict.drop_table.decref", 0)
    run_threads([lambda: updater("a"), lambda: updater("b"), clearer], timeout=110)
    d._check()
    assert fi.hits().get("dict.drop_table.decref", 0) > before


@needs_fi
@pytest.mark.timeout(120)
def test_fault_mixed_operations_both_types_keep_invariants() -> None:
    # Every kind of suspension point is exercised by ordinary operations.
    d: ConcurrentDict[object, object] = ConcurrentDict()
    lst: ConcurrentList[object] = ConcurrentList()

    def dict_worker(seed: int) -> None:
        for r in range(400):
            k: object = (seed, r % 17) if r % 2 else f"s{r % 23}"
            # Expected values equal to, never identical with, the stored ones
            # and past every small-int cache (3.15 caches up to 1024): the
            # comparison calls == (dict.value_eq) instead of matching by
            # identity.
            v = r + (1 << 20)
            d[k] = v
            d.update({(seed, r): r, 1.5 * r: r})
            d.compare_and_set(k, int(str(v)), v + 1)
            d.pop_if(k, v + 1)
            if r % 50 == 0:
                d.clear()
            _ = (seed, 3) in d

    def list_worker(seed: int) -> None:
        for r in range(400):
            lst.append((seed, r))
            lst.append_if_absent((seed, r % 7))
            if r % 5 == 0:
                try:
                    lst.remove((seed, r - 1))
                except ValueError:
                    pass
            if len(lst) > 0:
                try:
                    lst.compare_and_set(0, lst[0], (seed, -r))
                    _update_first(lst)
                except IndexError:
                    pass
            if r % 100 == 0:
                _sort_unless_modified(lst)

    run_threads([lambda: dict_worker(1), lambda: dict_worker(2),
                 lambda: list_worker(1), lambda: list_worker(2)], timeout=110)
    d._check()
    lst._check()
    hits = fi.hits()
    for point in ("dict.eq", "dict.value_eq", "dict.drop_table.decref", "list.eq",
                  "list.update.call", "list.sort.call"):
        assert hits.get(point, 0) > 0, point


@needs_fi
@pytest.mark.timeout(150)
def test_fault_every_suspension_point_is_reached_and_really_suspends() -> None:
    # Every documented NCC_SUSPEND_POINT is reached by ordinary operations
    # from two threads, and each detach made with an active critical section
    # found it suspended while detached (_Py_CRITICAL_SECTION_INACTIVE set:
    # PyEval_SaveThread suspends sections on this interpreter; faultinject.h,
    # ncc_fi_detach_stats).  Runs rounds until every point was hit, bounded.
    points = sorted(n for n, kind in _points_in_docs().items() if kind == "NCC_SUSPEND_POINT")
    start = fi.hits()
    active0, suspended0 = fi.detach_stats()
    d: ConcurrentDict[object, object] = ConcurrentDict()
    lst: ConcurrentList[object] = ConcurrentList()

    def dict_worker(seed: int) -> None:
        for r in range(200):
            # The early-probe path of a contended writer (the prelock points),
            # also when this loaded machine happens not to overlap the threads.
            _dict._set_contended_writes(4)
            k = (r % 11, "k")           # equal, not identical: __eq__ on every probe
            d[k] = r
            d.compare_and_set(k, (r, "v"), r)   # value == on an equal, fresh tuple
            d[(r % 11, "k")] = (r, "v")
            d.pop((r % 7, "k"), None)
            del_key = (r % 5, "k")
            try:
                del d[del_key]
            except KeyError:
                pass
            d.update({(seed, r): r, f"s{r}": r})
            if r % 40 == 0:
                d.clear()

    def list_worker(seed: int) -> None:
        for r in range(200):
            lst.append((seed, r % 9))
            lst.append_if_absent((seed, r % 9))
            try:
                lst.remove((seed, (r - 3) % 9))
            except ValueError:
                pass
            if len(lst) > 0:
                try:
                    lst.compare_and_set(0, (seed, 0), (seed, 1))
                    _update_first(lst)
                except IndexError:
                    pass
            if r % 50 == 0:
                _sort_unless_modified(lst)

    deadline = time.monotonic() + 100
    while True:
        run_threads([lambda: dict_worker(1), lambda: dict_worker(2),
                     lambda: list_worker(1), lambda: list_worker(2)], timeout=110)
        hits = fi.hits()
        missing = [p for p in points if hits.get(p, 0) <= start.get(p, 0)]
        if not missing or time.monotonic() > deadline:
            break
    d._check()
    lst._check()
    assert not missing, f"suspension points never reached: {missing}"
    active, suspended = fi.detach_stats()
    assert active - active0 > 0, "no detach happened inside a critical section"
    assert suspended - suspended0 == active - active0, (
        "a detach at a suspension point left the critical section active")



@needs_fi
@pytest.mark.timeout(60)
def test_fault_update_suspended_in_fn_keeps_its_result_unless_its_item_changed() -> None:
    # update()'s fn is suspended (a hook at list.update.call blocks on another
    # thread) while that thread writes.  A replacement of another item leaves
    # self[1] as it was: fn's result is stored, fn ran once.  Before, any
    # replacement discarded it; with the hook firing on every attempt, update
    # gave up after 100 attempts (RuntimeError), which is how a
    # compare_and_set loop on another index starved it in this build.
    lst: ConcurrentList[int] = ConcurrentList([0, 5])
    me = threading.get_ident()
    calls: list[int] = []
    writes: list[tuple[int, int]] = []

    def write_from_another_thread(i: int, v: int) -> None:
        writes.append((i, v))
        t = threading.Thread(target=lst.__setitem__, args=(i, v))
        t.start()
        t.join(10)                      # blocks: our critical section is suspended

    def hook(point: str) -> None:
        if point == "list.update.call" and threading.get_ident() == me:
            write_from_another_thread(0, len(writes) + 1)

    with fi.hook(hook):
        assert lst.update(1, lambda v: calls.append(v) or v + 1) == 6
    assert calls == [5] and writes == [(0, 1)]
    assert list(lst) == [1, 6]

    # A replacement of the same item: fn runs again, on the new item.
    calls.clear()
    writes.clear()

    def hook_same(point: str) -> None:
        if point == "list.update.call" and threading.get_ident() == me and not writes:
            write_from_another_thread(1, 60)

    with fi.hook(hook_same):
        assert lst.update(1, lambda v: calls.append(v) or v + 1) == 61
    assert calls == [6, 60]
    assert list(lst) == [1, 61]
    lst._check()


# ---------------------------------------------------------------- slot reuse

class _SameHash:
    """Keys that all hash alike (one probe sequence); equal by name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return 5

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SameHash) and other.name == self.name

    def __repr__(self) -> str:
        return self.name


@needs_fi
@pytest.mark.timeout(60)
def test_fault_insert_suspended_in_eq_does_not_reuse_a_slot_taken_meanwhile() -> None:
    # docs/design.md, "Slot reuse": an insert records the first DUMMY slot
    # of its probe (A's, deleted) and goes on to prove the key absent; B's
    # __eq__ suspends the critical section, and another thread inserts C,
    # which reuses that very slot.  The insert must see that a write ran
    # (version) and probe again; using the recorded slot would overwrite
    # C's index entry (C unreachable, "live entry not indexed").
    a, b, c, k = (_SameHash(n) for n in "ABCK")
    d: ConcurrentDict[_SameHash, int] = ConcurrentDict([(a, 0), (b, 1)])
    del d[a]
    before = _dict._index_counts(d)
    with _in_another_thread_at("dict.eq", lambda: d.__setitem__(c, 2)) as fired:
        d[k] = 3
    assert fired
    d._check()
    assert d.snapshot() == {b: 1, c: 2, k: 3}
    assert d[c] == 2 and d[k] == 3 and a not in d
    _empty, dummy, named = _dict._index_counts(d)
    assert (dummy, named) == (before[1] - 1, 3)   # C took A's slot, K an EMPTY one


# ---------------------------------------------------------------- the probe before the lock
# docs/design.md, "Writers: the probe before the lock": a contended d[k] = v,
# del d[k] or pop finds the key's entry lock-free, then takes the lock and
# uses that entry only if `tseq` is unchanged and the entry is still live.
# Each action below runs in another thread exactly between the probe and the
# lock (the dict.setitem.prelock / dict.delete.prelock points) and changes
# what the probe found; the write must see it and redo its lookup locked.

_NKEYS = 6   # a 16-slot table with room for 4 more entries: a delete and
             # re-insert then needs no resize (which would move tseq too)


def _fresh() -> ConcurrentDict[object, int]:
    # Keys built at run time: the writer's key is equal to, never identical
    # with, the stored one (the probe compares the str contents).
    d: ConcurrentDict[object, int] = ConcurrentDict((f"key{i}", i) for i in range(_NKEYS))
    assert sum(_dict._index_counts(d)) == 16
    return d


def _copy(key: str) -> str:
    return key[:1] + key[1:]   # an equal, distinct str object


def _reinsert_equal(d: ConcurrentDict[object, int]) -> None:
    # Delete the entry the probe found and insert an equal key again: a new
    # entry (entries are never reused) in the same index slot (slot reuse).
    del d[_copy("key2")]
    d[_copy("key2")] = 20


def _delete(d: ConcurrentDict[object, int]) -> None:
    del d[_copy("key2")]


# The table-wide changes also renumber the entries, so that entry and slot
# numbers of the old table name something else in the new one.

def _resize(d: ConcurrentDict[object, int]) -> None:
    del d["key0"]               # compaction moves key2 to entry 1
    for i in range(100):        # several resizes: the probed table is retired
        d[f"grow{i}"] = i


def _to_generic(d: ConcurrentDict[object, int]) -> None:
    del d["key0"]
    d[2.5] = 0                  # pinned -> generic conversion (a new table)


def _clear(d: ConcurrentDict[object, int]) -> None:
    d.clear()
    for i in range(4):          # entry 2 of the new table is x2
        d[f"x{i}"] = i


def _neighbours(d: ConcurrentDict[object, int]) -> None:
    # Writes to other keys only: the entry found stays valid.
    d["key1"] = 10
    del d["key3"]
    d["new"] = 0


_PRELOCK_ACTIONS = {"reinsert-equal": _reinsert_equal, "delete": _delete, "resize": _resize,
                    "to-generic": _to_generic, "clear": _clear, "neighbours": _neighbours}


def _model_after(action: str) -> dict[object, int]:
    model: dict[object, int] = {f"key{i}": i for i in range(_NKEYS)}
    if action == "reinsert-equal":
        model["key2"] = 20
    elif action == "delete":
        del model["key2"]
    elif action == "resize":
        del model["key0"]
        model.update({f"grow{i}": i for i in range(100)})
    elif action == "to-generic":
        del model["key0"]
        model[2.5] = 0
    elif action == "clear":
        model = {f"x{i}": i for i in range(4)}
    else:
        model["key1"] = 10
        del model["key3"]
        model["new"] = 0
    return model


@needs_fi
@pytest.mark.timeout(60)
@pytest.mark.parametrize("action", list(_PRELOCK_ACTIONS))
def test_fault_replacement_revalidates_what_its_early_probe_found(action: str) -> None:
    d = _fresh()
    _dict._set_contended_writes(1)
    with _in_another_thread_at("dict.setitem.prelock",
                               lambda: _PRELOCK_ACTIONS[action](d)) as fired:
        d[_copy("key2")] = 99
    assert fired
    d._check()
    expected = _model_after(action)
    expected["key2"] = 99       # a replacement, or an insert if key2 is gone
    assert d.snapshot() == expected
    assert d["key2"] == 99 and len(d) == len(expected)


@needs_fi
@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["del", "pop"])
@pytest.mark.parametrize("action", list(_PRELOCK_ACTIONS))
def test_fault_delete_revalidates_what_its_early_probe_found(action: str, how: str) -> None:
    d = _fresh()
    expected = _model_after(action)
    _dict._set_contended_writes(1)
    with _in_another_thread_at("dict.delete.prelock",
                               lambda: _PRELOCK_ACTIONS[action](d)) as fired:
        if "key2" in expected:
            if how == "del":
                del d[_copy("key2")]
            else:
                assert d.pop(_copy("key2")) == expected["key2"]
        else:
            with pytest.raises(KeyError):
                if how == "del":
                    del d[_copy("key2")]
                else:
                    d.pop(_copy("key2"))
    assert fired
    expected.pop("key2", None)
    d._check()
    assert d.snapshot() == expected
    assert "key2" not in d and len(d) == len(expected)


# An early probe that found the key absent: the insert (or the KeyError of
# del/pop) is used under the lock only if no write at all ran since the probe
# started (`version`).  int keys of one probe sequence in a 16-slot table:
# 1 and 17 start at slot 1; deleting 1 leaves a DUMMY there, which the probe
# of 17 records as its insertion slot and 33 (also starting at slot 1) takes
# if it is inserted first.

def _ints() -> ConcurrentDict[object, int]:
    d: ConcurrentDict[object, int] = ConcurrentDict((k, k) for k in (1, 2, 3, 4, 5, 8))
    assert sum(_dict._index_counts(d)) == 16
    del d[1]
    return d


_MISS_ACTIONS: dict[str, Callable[[ConcurrentDict[object, int]], object]] = {
    "insert-same": lambda d: d.__setitem__(17, 5),
    "reuse-slot": lambda d: d.__setitem__(33, 5),
    "resize": lambda d: d.update({100 + i: i for i in range(40)}),
    "clear": lambda d: (d.clear(), d.__setitem__(9, 9)),   # 9 starts at slot 1 of 8
    "delete-other": lambda d: d.__delitem__(2),            # changes nothing 17 needs
}


@needs_fi
@pytest.mark.timeout(60)
@pytest.mark.parametrize("action", list(_MISS_ACTIONS))
def test_fault_insert_after_an_early_miss_revalidates(action: str) -> None:
    d = _ints()
    model = dict(d.snapshot())
    _MISS_ACTIONS[action](model)  # type: ignore[arg-type]
    model[17] = 99
    _dict._set_contended_writes(1)
    with _in_another_thread_at("dict.setitem.prelock", lambda: _MISS_ACTIONS[action](d)) as fired:
        d[17] = 99
    assert fired
    d._check()                          # "live entry not indexed" if 33's slot was reused
    assert d.snapshot() == model and len(d) == len(model)


@needs_fi
@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["del", "pop"])
@pytest.mark.parametrize("action", list(_MISS_ACTIONS))
def test_fault_delete_after_an_early_miss_revalidates(action: str, how: str) -> None:
    d = _ints()
    model = dict(d.snapshot())
    _MISS_ACTIONS[action](model)  # type: ignore[arg-type]
    _dict._set_contended_writes(1)
    with _in_another_thread_at("dict.delete.prelock", lambda: _MISS_ACTIONS[action](d)) as fired:
        if 17 in model:                 # inserted meanwhile: deleted, no KeyError
            assert (d.pop(17) if how == "pop" else d.__delitem__(17)) == (
                model.pop(17) if how == "pop" else None)
            model.pop(17, None)
        else:
            with pytest.raises(KeyError):
                d.pop(17) if how == "pop" else d.__delitem__(17)
    assert fired
    d._check()
    assert d.snapshot() == model and 17 not in d


@needs_fi
@pytest.mark.timeout(120)
def test_fault_early_probe_writes_race_deletes_inserts_and_resizes() -> None:
    # No hook: the prelock points detach (other threads run between every
    # early probe and its lock).  All threads take the contended path; each
    # replaces, deletes and re-inserts shared keys (the same and neighbouring
    # keys), grows the table and converts it (a float key), and owns keys
    # whose final values are known.
    d: ConcurrentDict[object, int] = ConcurrentDict((f"s{i}", 0) for i in range(8))
    rounds = 300

    def worker(t: int) -> None:
        _dict._set_contended_writes(10**9)
        try:
            for r in range(rounds):
                k = f"s{r % 8}"
                d[_copy(k)] = r
                d[f"own{t}.{r % 16}"] = r
                if r % 3 == t % 3:
                    d.pop(_copy(k), None)
                    d[k] = -r
                if r % 7 == 0:
                    try:
                        del d[f"s{(r + 1) % 8}"]
                    except KeyError:
                        pass
                if r % 50 == 25:
                    for i in range(20):         # tombstones + inserts: resizes
                        d[f"tmp{t}.{r}.{i}"] = i
                        del d[f"tmp{t}.{r}.{i}"]
                if r == 150 + t:
                    d[float(t) + 0.5] = t       # pinned -> generic
        finally:
            _dict._set_contended_writes(0)

    before = (fi.hits().get("dict.setitem.prelock", 0), fi.hits().get("dict.delete.prelock", 0))
    run_threads([lambda t=t: worker(t) for t in range(3)], timeout=110)
    d._check()
    for t in range(3):
        for i in range(16):
            last = max(r for r in range(rounds) if r % 16 == i)
            assert d[f"own{t}.{i}"] == last
        assert d[float(t) + 0.5] == t
    after = (fi.hits().get("dict.setitem.prelock", 0), fi.hits().get("dict.delete.prelock", 0))
    assert after[0] > before[0] and after[1] > before[1]


# ---------------------------------------------------------------- MemoryError injection

@needs_fi
def test_fault_memoryerror_during_a_dict_resize_leaves_it_unchanged() -> None:
    d: ConcurrentDict[object, int] = ConcurrentDict((f"k{i}", i) for i in range(5))
    model = d.snapshot()
    for op in (lambda: d.__setitem__("new", 1),
               lambda: d.update({f"n{i}": i for i in range(50)}),
               lambda: d.__setitem__((1, 2), 1),      # pinned -> generic conversion
               lambda: d.setdefault("new2", 2),
               d.copy):
        fi.fail_allocation("dict.table_alloc")
        with pytest.raises(MemoryError):
            op()
        d._check()
        assert d == model
    d["new"] = 1                                      # usable afterwards
    model["new"] = 1
    assert d == model


@needs_fi
def test_fault_memoryerror_during_a_list_extend_leaves_it_unchanged() -> None:
    lst: ConcurrentList[int] = ConcurrentList([1, 2, 3])
    other: ConcurrentList[int] = ConcurrentList(range(50))
    for op in (lambda: lst.extend(range(100)), lambda: lst.extend([7] * 100),
               lambda: lst.extend(other), lambda: lst.__iadd__((9,) * 64)):
        fi.fail_allocation("list.array_alloc")
        with pytest.raises(MemoryError):
            op()
        lst._check()
        assert list(lst) == [1, 2, 3]
    lst.extend(range(4, 100))
    assert list(lst) == list(range(1, 100))

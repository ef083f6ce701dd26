"""Issue 21, "shared objects, systematically", dict side: every object the
ConcurrentDict side hands out may be shared between threads.

- Iterators (``iter(d)``, ``reversed(d)``, the three views' iterators and
  reversed iterators, the same taken through a handle): several threads drive
  ONE iterator through every method (``next``, ``__length_hint__``,
  ``__reduce__``, ``pickle``, ``iter(it)``), with and without a concurrent
  writer.  Guarantee (docs/guarantees.md, "Shared iterators"): each element
  at most once, only elements that were in the dict, nothing leaked.  The
  iterator walks a snapshot, so the "moved element seen again" exception
  never applies on the dict side: no duplicate is allowed at all.
- Views, handles and the container itself, each shared by several threads
  through each of their methods, with a writer.

On GIL builds these tests run too (a tiny switch interval interleaves the
threads between calls); the subprocess reproduction of defect 1 needs the
GIL disabled.  Defect 1 (unsynchronised ``pos += 1`` and take-and-NULL in
``_SnapshotIter.__next__``; ``__reduce__`` reading a slot cleared under it)
crashed 3.13t with SIGSEGV within about a second.

The file name matches the TSAN and fault-injection selections of
tools/run_sanitized.sh (``test_dict*.py``, ``-k thread``), so ``make tsan``
and ``make fault-injection`` run all of it.
"""

from __future__ import annotations

import copy
import gc
import operator
import os
import pickle
import random
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _threads import run_threads
from conftest import FREE_THREADED_BUILD, gil_enabled
from nogil_collections import ConcurrentDict

N_BASE = 600          # keys present for the whole test (never deleted)
N_EXTRA = 200         # keys the writer inserts and deletes
THREADS = 4
DURATION = 0.4        # seconds of writer activity / draining per case


class Item:
    """A key or value: identified by (k, gen), weakref-able (leak checks),
    picklable (iterator pickling).  Keys use gen 0; the writer stores values
    with higher generations."""

    __slots__ = ("__weakref__", "gen", "k")

    def __init__(self, k: int, gen: int = 0) -> None:
        self.k = k
        self.gen = gen

    def __hash__(self) -> int:
        return hash(self.k)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Item) and other.k == self.k

    def __reduce__(self) -> tuple[Any, ...]:
        return (Item, (self.k, self.gen))

    def __repr__(self) -> str:
        return f"Item({self.k}, {self.gen})"


@pytest.fixture(autouse=True)
def _fast_switching() -> Iterator[None]:
    # GIL builds: switch threads between calls, so shared objects interleave.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


# Every way the dict side hands out an iterator: (name, kind, backwards, make).
ITERATORS: list[tuple[str, str, bool, Callable[[ConcurrentDict[Any, Any]], Any]]] = [
    ("iter(d)", "keys", False, lambda d: iter(d)),
    ("reversed(d)", "keys", True, lambda d: reversed(d)),
    ("iter(d.keys())", "keys", False, lambda d: iter(d.keys())),
    ("reversed(d.keys())", "keys", True, lambda d: reversed(d.keys())),
    ("iter(d.values())", "values", False, lambda d: iter(d.values())),
    ("reversed(d.values())", "values", True, lambda d: reversed(d.values())),
    ("iter(d.items())", "items", False, lambda d: iter(d.items())),
    ("reversed(d.items())", "items", True, lambda d: reversed(d.items())),
    ("iter(h)", "keys", False, lambda d: iter(d.handle())),
    ("reversed(h)", "keys", True, lambda d: reversed(d.handle())),
    ("iter(h.values())", "values", False, lambda d: iter(d.handle().values())),
    ("reversed(h.items())", "items", True, lambda d: reversed(d.handle().items())),
]


def _key_of(kind: str, x: Any) -> int:
    """The base/extra key index an element stands for (and its type check)."""
    if kind == "items":
        assert isinstance(x, tuple) and len(x) == 2, x
        k, v = x
        assert type(k) is Item and type(v) is Item and v.k == k.k and k.gen == 0, x
        return int(k.k)
    assert type(x) is Item, x
    if kind == "keys":
        assert x.gen == 0, x
    return int(x.k)


class _Writer:
    """Inserts and deletes the extra keys and replaces base keys' values,
    drawing the values from a fixed pool (``stored``: every value it may
    store, kept alive so that ids are not reused)."""

    GENS = 4

    def __init__(self, d: ConcurrentDict[Any, Any]) -> None:
        self.d = d
        self.stop = threading.Event()
        self.stored = [Item(k, g) for k in range(N_BASE + N_EXTRA)
                       for g in range(1, self.GENS + 1)]
        self.rng = random.Random(21)

    def _value(self, k: int) -> Item:
        return self.stored[k * self.GENS + self.rng.randrange(self.GENS)]

    def run(self) -> None:
        d, rng = self.d, self.rng
        while not self.stop.is_set():
            k = N_BASE + rng.randrange(N_EXTRA)
            if rng.random() < 0.5:
                d[Item(k)] = self._value(k)
            else:
                d.pop(Item(k), None)
            b = rng.randrange(N_BASE)
            d[Item(b)] = self._value(b)


def _fill() -> tuple[ConcurrentDict[Any, Any], list[Item]]:
    d: ConcurrentDict[Any, Any] = ConcurrentDict()
    made: list[Item] = []
    for i in range(N_BASE):
        k, v = Item(i), Item(i, 1_000_000)
        made += [k, v]
        d[k] = v
    return d, made


def _drain(it: Any, kind: str, n: int, tid: int, order: list[int] | None) -> list[Any]:
    """One worker: take elements from the shared iterator, and now and then
    call each of its other methods, checking what each returns."""
    got: list[Any] = []
    rng = random.Random(tid)
    last_hint = n
    while True:
        r = rng.random()
        if r < 0.01:
            assert iter(it) is it
        elif r < 0.03:
            h = it.__length_hint__()
            assert 0 <= h <= n, h
            assert 0 <= operator.length_hint(it) <= h
            # The claim word only moves one way: the hint never grows.
            assert h <= last_hint, (h, last_hint)
            last_hint = h
        elif r < 0.04:
            f, (rest,) = it.__reduce__()
            assert f is iter and type(rest) is list
            keys = [_key_of(kind, x) for x in rest]
            assert len(set(keys)) == len(keys), "an element twice in __reduce__"
            if order is not None:
                # Exact: the remaining elements of one instant, in order.
                assert keys == order[len(order) - len(keys):], "not one instant's remainder"
        elif r < 0.045:
            copy_ = pickle.loads(pickle.dumps(it, protocol=rng.choice([2, 5])))
            keys = [_key_of(kind, x) for x in copy_]
            assert len(set(keys)) == len(keys)
        try:
            x = next(it)
        except StopIteration:
            # Exhausted is final: every later call agrees.
            assert it.__length_hint__() == 0
            assert next(it, None) is None
            assert it.__reduce__()[1] == ([],)
            return got
        got.append(x)


def _one_round(d: ConcurrentDict[Any, Any], name: str, kind: str, backwards: bool,
               make: Callable[[ConcurrentDict[Any, Any]], Any], w: _Writer | None,
               made: list[Item]) -> None:
    # The elements at the instant the iterator is made (quiet dict only).
    expected = None if w else (list(d) if kind == "keys" else list(d.values())
                               if kind == "values" else list(d.items()))
    order = None if expected is None else [
        _key_of(kind, x) for x in (reversed(expected) if backwards else expected)]
    it = make(d)
    n = it.__length_hint__()
    assert N_BASE <= n <= N_BASE + N_EXTRA
    per = run_threads([
        (lambda t=t: _drain(it, kind, n, t, order))  # type: ignore[misc]
        for t in range(THREADS)])
    flat = [x for got in per for x in got]
    keys = [_key_of(kind, x) for x in flat]
    # At most once: no key (so no key, value or pair) handed out twice.
    assert len(set(keys)) == len(keys), f"{name}: an element handed out twice"
    # Every key present throughout was handed out (exactly once).
    assert set(range(N_BASE)) <= set(keys), f"{name}: an element lost"
    # Only elements that were in the dict.
    assert all(k < N_BASE + N_EXTRA for k in keys)
    if expected is not None:
        assert sorted(keys) == sorted(_key_of(kind, x) for x in expected)
        ident = ({id(x) for x in expected} if kind != "items"
                 else {(id(k), id(v)) for k, v in expected})
        assert all((id(x) if kind != "items" else (id(x[0]), id(x[1]))) in ident
                   for x in flat)
    elif kind != "keys":
        assert w is not None
        ever = {id(v) for v in w.stored} | {id(v) for v in made}
        assert all(id(x if kind == "values" else x[1]) in ever for x in flat)
    # Each thread's own claims are ordered (the claim word is monotonic): the
    # base keys it got come in snapshot order, which is key order.
    for got in per:
        base = [k for k in (_key_of(kind, x) for x in got) if k < N_BASE]
        assert base == sorted(base, reverse=backwards)


@pytest.mark.parametrize("writer", [False, True], ids=["quiet", "writer"])
@pytest.mark.parametrize(("name", "kind", "backwards", "make"), ITERATORS,
                         ids=[t[0] for t in ITERATORS])
def test_shared_iterator_each_element_at_most_once(
        name: str, kind: str, backwards: bool,
        make: Callable[[ConcurrentDict[Any, Any]], Any], writer: bool) -> None:
    d, made = _fill()
    refs = [weakref.ref(o) for o in made]
    w = _Writer(d) if writer else None
    wt = threading.Thread(target=w.run) if w else None
    if wt:
        wt.start()
    rounds = 0
    try:
        deadline = time.monotonic() + DURATION
        while rounds < 2 or (time.monotonic() < deadline and rounds < 40):
            rounds += 1
            _one_round(d, name, kind, backwards, make, w, made)
    finally:
        if w and wt:
            w.stop.set()
            wt.join(60)
    del d, w, wt, made
    gc.collect()
    leaked = [r() for r in refs if r() is not None]
    assert not leaked, f"{name}: {len(leaked)} elements leaked, e.g. {leaked[:3]}"


def _creator_round(d: ConcurrentDict[Any, Any], kind: str, backwards: bool,
                   make: Callable[[ConcurrentDict[Any, Any]], Any]) -> None:
    # The creating thread drains alone first (claims while it is the only
    # claimer take no read-modify-write), then the others join in while it
    # goes on: the first of them revokes that mode in the middle of the
    # creator's steps.
    box: list[Any] = []
    started = threading.Event()

    def creator() -> list[Any]:
        it = make(d)
        box.append(it)
        out = [next(it) for _ in range(50)]
        started.set()
        for x in it:
            out.append(x)
            if len(out) % 64 == 0:
                it.__length_hint__()
        return out

    def other() -> list[Any]:
        assert started.wait(60)
        it = box[0]
        out = []
        for x in it:
            out.append(x)
            if len(out) % 97 == 0:
                it.__reduce__()
        return out

    per = run_threads([creator] + [other] * (THREADS - 1))
    keys = [_key_of(kind, x) for got in per for x in got]
    assert len(set(keys)) == len(keys), "an element handed out twice"
    assert set(range(N_BASE)) <= set(keys) and all(k < N_BASE + N_EXTRA for k in keys)
    for got in per:
        base = [k for k in (_key_of(kind, x) for x in got) if k < N_BASE]
        assert base == sorted(base, reverse=backwards)


def _creator_rounds(d: ConcurrentDict[Any, Any], kind: str, backwards: bool,
                    make: Callable[[ConcurrentDict[Any, Any]], Any], writer: bool) -> None:
    deadline = time.monotonic() + DURATION

    def rounds_until_deadline() -> int:
        rounds = 0
        while rounds < 3 or (time.monotonic() < deadline and rounds < 40):
            rounds += 1
            _creator_round(d, kind, backwards, make)
        return rounds

    if writer:
        _with_writer(d, [rounds_until_deadline])
    else:
        rounds_until_deadline()


@pytest.mark.parametrize("writer", [False, True], ids=["quiet", "writer"])
@pytest.mark.parametrize(("name", "kind", "backwards", "make"), ITERATORS[:8],
                         ids=[t[0] for t in ITERATORS[:8]])
def test_creator_keeps_draining_while_others_join(
        name: str, kind: str, backwards: bool,
        make: Callable[[ConcurrentDict[Any, Any]], Any], writer: bool) -> None:
    d, made = _fill()
    refs = [weakref.ref(o) for o in made]
    _creator_rounds(d, kind, backwards, make, writer)
    del d, made
    gc.collect()
    assert all(r() is None for r in refs), f"{name}: elements leaked"


def _reduce_round(d: ConcurrentDict[Any, Any], kind: str, backwards: bool,
                  make: Callable[[ConcurrentDict[Any, Any]], Any]) -> None:
    expected = (list(d) if kind == "keys" else list(d.values())
                if kind == "values" else list(d.items()))
    order = [_key_of(kind, x) for x in (reversed(expected) if backwards else expected)]
    it = make(d)
    done = threading.Event()

    def reducer() -> int:
        calls, last = 0, len(order)
        while not done.is_set() or calls < 3:
            rest = [_key_of(kind, x) for x in it.__reduce__()[1][0]]
            assert rest == order[len(order) - len(rest):], "not one instant's remainder"
            assert len(rest) <= last
            last = len(rest)
            calls += 1
        return calls

    def taker() -> list[Any]:
        try:
            out = []
            for x in it:
                out.append(x)
                if len(out) % 50 == 0:
                    time.sleep(0)
            return out
        finally:
            done.set()

    got, _ = run_threads([taker, reducer])
    assert [_key_of(kind, x) for x in got] == order


@pytest.mark.parametrize(("name", "kind", "backwards", "make"), ITERATORS[:8],
                         ids=[t[0] for t in ITERATORS[:8]])
def test_reduce_racing_next_is_atomic(
        name: str, kind: str, backwards: bool,
        make: Callable[[ConcurrentDict[Any, Any]], Any]) -> None:
    # Defect 1's second half: __reduce__ read slots that __next__ cleared and
    # handed out meanwhile (a NULL, or an object already freed).  Now each
    # __reduce__ is the remaining elements of one instant: a suffix of the
    # snapshot's order, never growing.
    d, made = _fill()
    refs = [weakref.ref(o) for o in made]
    for _ in range(3):
        _reduce_round(d, kind, backwards, make)
    del d, made
    gc.collect()
    assert all(r() is None for r in refs), f"{name}: elements leaked"


def _with_writer(d: ConcurrentDict[Any, Any], targets: list[Callable[[], Any]]) -> list[Any]:
    w = _Writer(d)
    wt = threading.Thread(target=w.run)
    wt.start()
    try:
        return run_threads(targets)
    finally:
        w.stop.set()
        wt.join(60)


def _views_round(d: ConcurrentDict[Any, Any]) -> None:
    views = (d.keys(), d.values(), d.items())
    deadline = time.monotonic() + DURATION

    def user(t: int) -> int:
        rng = random.Random(t)
        calls = 0
        ks, vs, its = views
        while time.monotonic() < deadline or calls < 20:
            calls += 1
            b = Item(rng.randrange(N_BASE))
            assert b in ks
            assert N_BASE <= len(ks) <= N_BASE + N_EXTRA and len(vs) >= N_BASE
            for view, kind in ((ks, "keys"), (vs, "values"), (its, "items")):
                for elems in (list(view), list(reversed(view))):
                    keys = [_key_of(kind, x) for x in elems]
                    assert len(set(keys)) == len(keys)
                    assert set(range(N_BASE)) <= set(keys)
            assert (Item(-5), Item(-5)) not in its and (b, 0) not in its
            assert ks & {b} == {b} and b not in ks - {b}
            assert any(v.k == b.k for v in vs)
            assert ks.mapping[b].k == b.k
            assert repr(ks).startswith("ConcurrentDictKeys(")
        return calls

    _with_writer(d, [lambda t=t: user(t) for t in range(THREADS)])  # type: ignore[misc]


def test_shared_views_and_their_iterators() -> None:
    # The three views, shared: every thread calls each method of the same
    # view objects while a writer runs.
    d, made = _fill()
    _views_round(d)
    ref = weakref.ref(d)
    refs = [weakref.ref(o) for o in made]
    del d, made
    gc.collect()
    assert ref() is None and all(r() is None for r in refs)


def _handle_round(d: ConcurrentDict[Any, Any]) -> None:
    h = d.handle()
    owner = h.owner_thread
    deadline = time.monotonic() + DURATION

    def user(t: int) -> int:
        rng = random.Random(t)
        calls = 0
        while time.monotonic() < deadline or calls < 20:
            calls += 1
            b = Item(rng.randrange(N_BASE))
            assert h[b].k == b.k and h.get(b).k == b.k and b in h
            assert N_BASE <= len(h) <= N_BASE + N_EXTRA + 2 * THREADS
            mine = Item(N_BASE + N_EXTRA + t)
            h[mine] = Item(mine.k, calls)
            assert h.pop(mine).gen == calls
            h.update_item(Item(N_BASE + N_EXTRA + THREADS + t), lambda v: v + 1, 0)
            keys = [_key_of("keys", x) for x in h if x.k < N_BASE + N_EXTRA]
            assert len(set(keys)) == len(keys) and set(range(N_BASE)) <= set(keys)
            assert len(list(reversed(h))) >= N_BASE
            assert h.container is d and h.owner_thread == owner
            h2 = copy.copy(h)
            assert h2.container is d and h2.owner_thread == threading.get_ident()
            assert h.handle().container is d
            assert h != {} and not (h == {})
        return calls

    counts = _with_writer(d, [lambda t=t: user(t) for t in range(THREADS)])  # type: ignore[misc]
    for t in range(THREADS):
        assert d[Item(N_BASE + N_EXTRA + THREADS + t)] == counts[t]


def test_shared_handle() -> None:
    # One handle, used by several threads (it is owned by one, but sharing it
    # must work): its fields are written once, before it is returned, and never
    # again; every operation is the dict's.
    d, made = _fill()
    _handle_round(d)
    ref = weakref.ref(d)
    refs = [weakref.ref(o) for o in made]
    del d, made
    gc.collect()
    assert ref() is None and all(r() is None for r in refs)


def test_shared_container_iterated_by_every_thread() -> None:
    # The container itself: every thread takes its own iterators of it while
    # a writer runs; each is one instant's contents.
    d, _made = _fill()
    deadline = time.monotonic() + DURATION

    def user() -> int:
        calls = 0
        while time.monotonic() < deadline or calls < 10:
            calls += 1
            for make, kind in ((iter, "keys"), (reversed, "keys"),
                               (lambda d: iter(d.items()), "items")):
                keys = [_key_of(kind, x) for x in make(d)]
                assert len(set(keys)) == len(keys) and set(range(N_BASE)) <= set(keys)
            snap = d.snapshot()
            assert len(snap) >= N_BASE
        return calls

    _with_writer(d, [user] * THREADS)
    d._check()


# A standalone reproduction of defect 1, in a subprocess so that a crash
# fails the test instead of the suite: before the fix, SIGSEGV (3.13t) or an
# element handed out twice.
_REPRO = """
import sys, threading, time
from nogil_collections import ConcurrentDict

def drain(it, out, barrier):
    barrier.wait()
    for x in it:
        out.append(x)

dups = rounds = 0
deadline = time.monotonic() + {seconds}
kinds = [lambda d: iter(d), lambda d: reversed(d), lambda d: iter(d.values()),
         lambda d: iter(d.items()), lambda d: reversed(d.items())]
while time.monotonic() < deadline:
    for make in kinds:
        d = ConcurrentDict((str(i), [i]) for i in range(2000))
        it = make(d)
        outs = [[] for _ in range(4)]
        barrier = threading.Barrier(5)
        ts = [threading.Thread(target=drain, args=(it, o, barrier)) for o in outs]
        for t in ts:
            t.start()
        barrier.wait()
        mine = []
        for _ in range(20):
            it.__reduce__()
            it.__length_hint__()
            mine.extend(x for _, x in zip(range(5), it))
        for t in ts:
            t.join()
        got = [repr(x) for o in outs + [mine] for x in o]
        if len(got) != 2000 or len(set(got)) != 2000:
            dups += 1
        rounds += 1
print("rounds", rounds, "bad", dups)
sys.exit(1 if dups else 0)
"""


@pytest.mark.free_threaded_only
@pytest.mark.parametrize("membarrier", ["1", "0"])
def test_defect1_shared_iterator_reproduction_in_subprocess(membarrier: str) -> None:
    # membarrier "0": NOGIL_COLLECTIONS_NO_MEMBARRIER=1, so every iterator
    # claims with fetch-adds from its first step (no single-claimer mode).
    assert FREE_THREADED_BUILD and not gil_enabled()
    env = dict(os.environ)
    env.pop("NOGIL_COLLECTIONS_NO_MEMBARRIER", None)
    if membarrier == "0":
        env["NOGIL_COLLECTIONS_NO_MEMBARRIER"] = "1"
    r = subprocess.run([sys.executable, "-X", "gil=0", "-c",
                        textwrap.dedent(_REPRO.format(seconds=2.0))],
                       capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, (
        f"exit {r.returncode} (negative: killed by that signal)\n{r.stdout}\n{r.stderr[-2000:]}")
    assert "bad 0" in r.stdout


def _reuses_result(it: Any) -> bool:
    a = next(it)
    ida = id(a)
    del a
    # A fresh 2-tuple takes the memory a freed `a` went back to (the tuple
    # free list), so an equal id below means the iterator kept `a` alive.
    filler = tuple([ida, ida])
    same = id(next(it)) == ida
    del filler
    return same


def test_items_iterator_reuses_its_result_tuple_like_dict() -> None:
    # A dropped result tuple is reused by the next step, as dict's items
    # iterator does (the per-element tuple allocation made items() 2-8x the
    # builtin); whether dict does on this interpreter decides.
    b = {Item(i): Item(i, 1) for i in range(8)}
    d = ConcurrentDict(b)
    for make in (lambda m: iter(m.items()), lambda m: reversed(m.items())):
        assert _reuses_result(make(d)) == _reuses_result(make(b))
    # A tuple the caller keeps is never changed.
    it = iter(d.items())
    kept = next(it)
    first = (kept[0], kept[1])
    rest = list(it)
    assert (kept[0], kept[1]) == first and kept not in rest
    assert [k for k, _ in rest] == list(d)[1:]


def test_shared_items_iterator_tuples_dropped_by_every_thread() -> None:
    # Every thread (the creator included, which reuses its result tuple)
    # drops each tuple after checking it twice; the creator hands some to
    # another thread first: a tuple another thread can see is never reused.
    d, made = _fill()
    for _ in range(20):
        shared: list[Any] = []
        ready = threading.Event()
        box: list[tuple[Any, Any]] = []

        def drain(create: bool, shared: list[Any] = shared, ready: threading.Event = ready,
                  box: list[tuple[Any, Any]] = box) -> list[int]:
            if create:
                shared.append(iter(d.items()))
                ready.set()
            assert ready.wait(60)
            keys = []
            for t in shared[0]:
                k, v = t
                assert type(k) is Item and v.k == k.k, t
                keys.append(k.k)
                if create and k.k % 7 == 0:
                    box.append(t)
                time.sleep(0)
                assert t[0] is k and t[1] is v, (t, k, v)
            return keys

        per = run_threads([lambda: drain(True)] + [lambda: drain(False)] * (THREADS - 1))
        keys = [k for got in per for k in got]
        assert sorted(keys) == list(range(N_BASE))
        assert all(t[0].k == t[1].k for t in box)
    del made

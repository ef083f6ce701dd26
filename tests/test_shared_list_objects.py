"""Every list-side object shared between threads (issue 21): the list, its
iterator and reverse iterator, a handle, and the handle's iterators, each
driven by several threads at once through each of its methods, with and
without a concurrent writer.

The guarantee (docs/guarantees.md, "Shared iterators"): a shared iterator
hands out each item at most once, and only items that were in the list; an
item a concurrent writer moves (insert/delete before it) may be seen again.
Without a writer, the threads draining one iterator together get every item
exactly once, as under the GIL.  Nothing crashes and nothing leaks.

Bounded: each test runs rounds until a time budget is spent.  They also run
on GIL builds (threads interleave there, at __del__ and switch points); the
ones that need parallel threads to mean anything are free_threaded_only.
"""

from __future__ import annotations

import gc
import operator
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nogil_collections import ConcurrentList

N_ITEMS = 2000
THREADS = 4
BUDGET = 1.5  # seconds per test
JOIN = 60.0

# Distinct values above the small-int cache: not immortal, so every read
# goes through the try-incref protocol.
BASE = 10**6

MAKERS: dict[str, Callable[[Any], Iterator[Any]]] = {
    "iter": lambda lst: iter(lst),
    "reversed": lambda lst: reversed(lst),
    "handle_iter": lambda lst: iter(lst.handle()),
    "handle_reversed": lambda lst: reversed(lst.handle()),
}


def _drain(it: Iterator[Any], out: list[Any], style: int) -> None:
    # Each method of an iterator: for (tp_iternext), next(), __next__,
    # __iter__, and __length_hint__ and __reduce__ interleaved with them.
    if style == 0:
        for x in it:
            out.append(x)
    elif style == 1:
        while (x := next(it, _END)) is not _END:
            out.append(x)
    else:
        assert iter(it) is it
        while True:
            operator.length_hint(it)
            reduced = it.__reduce__()  # (iter, (lst,), index >= 0) or exhausted
            assert reduced[0] in (iter, reversed) and (len(reduced) == 2 or reduced[2] >= 0)
            try:
                out.append(it.__next__())
            except StopIteration:
                return


_END = object()


def _shared_drain(it: Iterator[Any], workers: int, join_owner: bool) -> list[list[Any]]:
    """`workers` threads (and, with join_owner, the calling thread, which
    created `it` and so owns its read-ahead) drain `it` together."""
    n = workers + (1 if join_owner else 0)
    outs: list[list[Any]] = [[] for _ in range(n)]
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            barrier.wait(JOIN)
            _drain(it, outs[k], k % 3)
        except BaseException as e:  # re-raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(1 if join_owner else 0, n)]
    for t in threads:
        t.start()
    if join_owner:
        run(0)
    for t in threads:
        t.join(JOIN)
    assert not any(t.is_alive() for t in threads), "drain threads did not finish"
    if errors:
        raise errors[0]
    return outs


def _rounds(budget: float = BUDGET, max_rounds: int = 200) -> Iterator[int]:
    end = time.monotonic() + budget
    for r in range(max_rounds):
        if r and time.monotonic() > end:
            return
        yield r


@pytest.mark.parametrize("join_owner", [True, False], ids=["owner_drains_too", "foreign_only"])
@pytest.mark.parametrize("kind", list(MAKERS))
def test_shared_iterator_hands_out_each_item_exactly_once(kind: str, join_owner: bool) -> None:
    expected = list(range(BASE, BASE + N_ITEMS))
    lst = ConcurrentList(expected)
    bad = []
    for r in _rounds():
        outs = _shared_drain(MAKERS[kind](lst), THREADS, join_owner)
        got = [x for out in outs for x in out]
        dup = [v for v, c in Counter(got).items() if c > 1]
        if dup or sorted(got) != expected:
            bad.append((r, len(got), dup[:5]))
        # Each thread saw its items in iteration order.
        for out in outs:
            assert out == sorted(out, reverse="reversed" in kind)
    assert not bad, f"duplicates or missing items in {len(bad)} rounds: {bad[:5]}"


def _writer(lst: ConcurrentList[Any], stop: threading.Event, fresh: Iterator[int],
            written: list[int], moves: bool, appends: int) -> None:
    rng = random.Random(1)
    while not stop.is_set():
        n = len(lst)
        op = rng.randrange(8)
        if op == 0 and appends > 0:
            v = next(fresh)
            written.append(v)
            lst.append(v)
            appends -= 1
        elif moves and op == 1 and n > 10:
            v = next(fresh)
            written.append(v)
            lst.insert(rng.randrange(n), v)
        elif moves and op == 2 and n > 10:
            try:
                del lst[rng.randrange(n)]
            except IndexError:
                pass
        elif n:
            v = next(fresh)
            written.append(v)
            try:
                lst[rng.randrange(n)] = v
            except IndexError:
                pass


@pytest.mark.free_threaded_only
@pytest.mark.parametrize("moves", [False, True], ids=["replace_append", "insert_delete"])
@pytest.mark.parametrize("kind", list(MAKERS))
def test_shared_iterator_with_a_concurrent_writer(kind: str, moves: bool) -> None:
    """Replacements and appends move no item: no item may be handed out
    twice.  Inserts and deletes move items: those may be seen again.  Either
    way only items that were in the list are handed out."""
    counter = iter(range(2 * BASE, 10 * BASE))
    bad = []
    for r in _rounds():
        original = list(range(BASE, BASE + N_ITEMS))
        lst = ConcurrentList(original)
        stop = threading.Event()
        written: list[int] = []
        w = threading.Thread(target=_writer, args=(lst, stop, counter, written, moves, 100))
        w.start()
        try:
            outs = _shared_drain(MAKERS[kind](lst), THREADS - 1, join_owner=True)
        finally:
            stop.set()
            w.join(JOIN)
        got = [x for out in outs for x in out]
        present = set(original) | set(written)
        strangers = [x for x in got if x not in present]
        assert not strangers, f"round {r}: items never in the list: {strangers[:5]}"
        if not moves:
            dup = [v for v, c in Counter(got).items() if c > 1]
            if dup:
                bad.append((r, dup[:5]))
        lst._check()
    assert not bad, f"items handed out twice with no move, in {len(bad)} rounds: {bad[:5]}"


class Tok:
    """An item whose instances can be counted (leak check)."""

    __slots__ = ("__weakref__", "v")

    def __init__(self, v: int) -> None:
        self.v = v


def _live_toks() -> int:
    gc.collect()
    return sum(type(o) is Tok for o in gc.get_objects())


def _churn(lst: ConcurrentList[Any], stop: threading.Event, fresh: Iterator[int]) -> None:
    rng = random.Random(2)
    while not stop.is_set():
        n = len(lst)
        if n:
            try:
                lst[rng.randrange(n)] = Tok(next(fresh))
            except IndexError:
                pass


def _leak_round(kind: str, fresh: Iterator[int]) -> None:
    lst = ConcurrentList(Tok(v) for v in range(300))
    stop = threading.Event()
    w = threading.Thread(target=_churn, args=(lst, stop, fresh))
    w.start()
    try:
        its = [MAKERS[kind](lst) for _ in range(3)]
        # One iterator drained with its owner, one abandoned half-way (its
        # read-ahead is released when it dies), one drained by foreign
        # threads only.
        _shared_drain(its[0], THREADS - 1, join_owner=True)
        next(its[1], None)
        _shared_drain(its[2], 2, join_owner=False)
    finally:
        stop.set()
        w.join(JOIN)


@pytest.mark.parametrize("kind", list(MAKERS))
def test_shared_iterators_leak_nothing(kind: str) -> None:
    before = _live_toks()
    fresh = iter(range(2 * BASE, 10 * BASE))
    for _ in _rounds(budget=0.5, max_rounds=20):
        _leak_round(kind, fresh)
    assert _live_toks() == before


def _run_all(targets: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def wrap(k: int) -> None:
        try:
            barrier.wait(JOIN)
            results[k] = targets[k]()
        except BaseException as e:  # re-raised below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(k,)) for k in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN)
    assert not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]
    return results


VIA = {
    "list": lambda lst: lst,
    "shared_handle": lambda lst: lst.handle(),
}


def _take_all(obj: Any, method: str) -> list[int]:
    out = []
    while True:
        try:
            if method == "pop":
                out.append(obj.pop())
            elif method == "pop0":
                out.append(obj.pop(0))
            else:
                out.append(obj.heappop())
        except IndexError:
            return out


@pytest.mark.parametrize("via", list(VIA))
@pytest.mark.parametrize("method", ["pop", "pop0", "heappop"])
def test_shared_removers_take_each_item_once(via: str, method: str) -> None:
    expected = list(range(BASE, BASE + N_ITEMS))
    for _ in _rounds(budget=0.7, max_rounds=20):
        lst = ConcurrentList(expected)
        obj = VIA[via](lst)   # one object, used by every thread
        outs = _run_all([lambda obj=obj: _take_all(obj, method)] * THREADS)
        got = [x for out in outs for x in out]
        assert sorted(got) == expected and len(got) == len(set(got))
        if method == "heappop":
            for out in outs:
                assert out == sorted(out)
        assert len(lst) == 0
        lst._check()


PER = 300


def _adder(obj: Any, k: int) -> None:
    base = BASE * (k + 1)
    for j in range(PER):
        v = base + j
        m = j % 5
        if m == 0:
            obj.append(v)
        elif m == 1:
            obj.extend([v])
        elif m == 2:
            obj.insert(4 + j % 7, v)   # never before the counters
        elif m == 3:
            assert obj.append_if_absent(v) is True
            assert obj.append_if_absent(v) is False
        else:
            operator.iadd(obj, [v])


def _incr(x: int) -> int:
    return x + 1


def _counter(obj: Any) -> int:
    # Slots 0 and 1 are counters (inserts go to index 4 or later, so they
    # never move): update and a compare_and_set loop; the final values count
    # the increments.  update() gives up (RuntimeError, nothing stored) after
    # a bounded number of attempts disturbed by structural writes (the
    # inserts); the fault-injection build makes that common.  Returns the
    # number of updates that went in.
    done = 0
    for _ in range(PER):
        try:
            obj.update(0, _incr)
            done += 1
        except RuntimeError as e:
            assert "gave up" in str(e), e
        while True:
            cur = obj[1]
            if obj.compare_and_set(1, cur, cur + 1):
                break
    return done


def _reader(obj: Any, seen: list[Any]) -> None:
    rng = random.Random(3)
    for _ in range(PER):
        n = len(obj)
        if n:
            seen.append(obj[rng.randrange(n)])   # only grows: in range
        seen.extend(obj.snapshot())
        seen.extend(obj[1:6])
        seen.extend(obj.copy())
        seen.extend(reversed(obj))
        obj.count(BASE)
        _ = BASE in obj
        try:
            obj.index(BASE)
        except ValueError:
            pass


@pytest.mark.parametrize("via", list(VIA))
def test_shared_writers_and_readers_through_every_method(via: str) -> None:
    """The list methods at once from several threads on one object (the list
    or one handle shared by all): every insertion is there exactly once at
    the end, every counter increment counted once, and every read returned
    only values that were in the list."""
    expect = Counter(BASE * (k + 1) + j for k in range(THREADS - 1) for j in range(PER))
    for _ in _rounds(budget=1.0, max_rounds=10):
        lst = ConcurrentList([0] * 4)
        obj = VIA[via](lst)
        seen: list[Any] = []
        targets: list[Callable[[], Any]] = [
            lambda obj=obj, k=k: _adder(obj, k) for k in range(THREADS - 1)]
        targets += [lambda obj=obj: _counter(obj)] * 2
        targets.append(lambda obj=obj, seen=seen: _reader(obj, seen))
        results = _run_all(targets)
        final = lst.snapshot()
        assert final[0] == results[THREADS - 1] + results[THREADS], final[:4]
        assert final[1] == 2 * PER, final[:4]
        assert Counter(final[4:]) == expect
        strangers = [x for x in seen if not (0 <= x <= 2 * PER or x in expect)]
        assert not strangers, strangers[:5]
        lst._check()


def _bump(obj: Any) -> int:
    wins = 0
    for _ in range(500):
        cur = obj[0]
        if obj.compare_and_set(0, cur, cur + 1):
            wins += 1
    return wins


@pytest.mark.parametrize("via", list(VIA))
def test_shared_compare_and_set_succeeds_once_per_value(via: str) -> None:
    for _ in _rounds(budget=0.7, max_rounds=20):
        lst = ConcurrentList([BASE])
        obj = VIA[via](lst)
        wins = _run_all([lambda obj=obj: _bump(obj)] * THREADS)
        assert lst[0] == BASE + sum(wins)


def _remove_each(obj: Any, order: list[int]) -> list[int]:
    out = []
    for v in order:
        try:
            obj.remove(v)
        except ValueError:
            continue
        out.append(v)
    return out


@pytest.mark.parametrize("via", list(VIA))
def test_shared_remove_takes_each_value_once(via: str) -> None:
    expected = list(range(BASE, BASE + 500))
    for _ in _rounds(budget=0.7, max_rounds=20):
        lst = ConcurrentList(expected)
        obj = VIA[via](lst)
        orders = [expected[k % 2::2] + expected[1 - k % 2::2] for k in range(THREADS)]
        outs = _run_all([lambda obj=obj, o=o: _remove_each(obj, o) for o in orders])
        got = [x for out in outs for x in out]
        assert sorted(got) == expected
        assert len(lst) == 0

"""A corpus of everyday code shapes, each a small class under test (issue 22, item 1).

Each :class:`Shape` has a ``racy`` class with a real race in that shape of
code (a lost update, a check-then-act, a torn read, a shared generator
resumed by two threads...) and a ``fixed`` class, the same code made correct
with a lock or by an atomic operation.  ``ops``, ``model`` and ``scenario``
say how to test them with the current API: an op table, a sequential
specification, and one scenario that exposes the race.  The classes take
the initial state as their only constructor argument and keep nothing
class-level, so a fresh instance is independent of every other one: a
spec-free tester can use them as they are (the racy class without its race
is the fixed one run one call at a time).

Racy methods call :func:`pause` inside their race window: a real 50 us
sleep for the real-thread executor (on GIL builds it releases the GIL, so
the other thread runs inside the window), a mere switch point for the
controlled executor (which switches at every bytecode anyway).  The
``time.sleep`` shape is the one that sleeps explicitly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from _counters import CounterSpec
from nogil_collections.testing import Op, OpTable, Scenario, Step

__all__ = ["SHAPES", "Shape", "pause"]

WINDOW = 50e-6


def pause() -> None:
    """Widen a race window for real threads; a switch point under the controlled executor."""
    time.sleep(WINDOW)


@dataclass(frozen=True)
class Shape:
    """One code shape: a racy and a fixed class, and how to test them."""

    name: str
    racy: type
    fixed: type
    ops: OpTable
    model: type
    scenario: Scenario
    races: Callable[[], bool] = field(default=lambda: True)
    """Whether ``racy`` really races on this interpreter (3.11's cached_property locks)."""
    shares_a_generator: bool = False
    """``racy`` resumes one generator from every thread.  Free-threaded CPython before
    3.15 can crash the process when two threads do so at once (CPython gh-120321: the
    generator's frame state is not changed atomically; the fix is in 3.15 only), so
    such a shape cannot run on real threads there."""


# ---------------------------------------------------------------------- specs


COUNTER_OPS = OpTable("counter", (Op("incr"), Op("get", mutates=False)),
                      initial=lambda d: st.just(0))
TWO_INCRS = Scenario(0, ((Step("incr"),), (Step("incr"), Step("get"))))


# ------------------------------------------------------ 1. try/except/finally


class RacyAccount:
    """withdraw checks the balance, then subtracts (check-then-act); finally counts the attempt."""

    def __init__(self, initial: int = 0) -> None:
        self.balance = initial
        self.attempts = 0

    def withdraw(self, n: int) -> int:
        try:
            if self.balance < n:
                raise ValueError("insufficient funds")
            b = self.balance
            pause()
            self.balance = b - n
            return self.balance
        except ValueError:
            raise
        finally:
            self.attempts += 1

    def get(self) -> int:
        return self.balance


class FixedAccount(RacyAccount):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def withdraw(self, n: int) -> int:
        with self._lock:
            return super().withdraw(n)


class AccountModel:
    def __init__(self, initial: int = 0) -> None:
        self.balance = initial

    def withdraw(self, n: int) -> int:
        if self.balance < n:
            raise ValueError("insufficient funds")
        self.balance -= n
        return self.balance

    def get(self) -> int:
        return self.balance


ACCOUNT_OPS = OpTable("account", (Op("withdraw", st.tuples(st.integers(1, 2))),
                                  Op("get", mutates=False)),
                      initial=lambda d: st.just(2))
ACCOUNT_RACE = Scenario(2, ((Step("withdraw", (2,)),), (Step("withdraw", (2,)),)))


# ------------------------------------------------------------- 2. with a lock


class RacyWithCounter:
    """Reads under the lock and writes under the lock, but not in one ``with``."""

    def __init__(self, initial: int = 0) -> None:
        self._lock = threading.Lock()
        self.value = initial

    def get(self) -> int:
        with self._lock:
            return self.value

    def incr(self) -> int:
        v = self.get()
        pause()
        with self._lock:
            self.value = v + 1
            return self.value


class FixedWithCounter(RacyWithCounter):
    def incr(self) -> int:
        with self._lock:
            self.value += 1
            return self.value


# ---------------------------------------------------------- 3. contextmanager


class RacyTxnDict:
    """A generator-based context manager copies the state and writes the copy back."""

    def __init__(self, initial: Any = None) -> None:
        self.data: dict[str, int] = {}

    @contextlib.contextmanager
    def _txn(self) -> Iterator[dict[str, int]]:
        work = dict(self.data)
        yield work
        self.data = work

    def add(self, key: str) -> int:
        with self._txn() as d:
            d[key] = d.get(key, 0) + 1
            pause()
            return d[key]

    def get(self, key: str) -> int:
        return self.data.get(key, 0)


class FixedTxnDict(RacyTxnDict):
    def __init__(self, initial: Any = None) -> None:
        super().__init__(initial)
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def _txn(self) -> Iterator[dict[str, int]]:
        with self._lock:
            work = dict(self.data)
            yield work
            self.data = work


class TxnModel:
    def __init__(self, initial: Any = None) -> None:
        self.data: dict[str, int] = {}

    def add(self, key: str) -> int:
        self.data[key] = self.data.get(key, 0) + 1
        return self.data[key]

    def get(self, key: str) -> int:
        return self.data.get(key, 0)


TXN_OPS = OpTable("txn", (Op("add", st.tuples(st.sampled_from("ab"))),
                          Op("get", st.tuples(st.sampled_from("ab")), mutates=False)),
                  initial=lambda d: st.none())
TXN_RACE = Scenario(None, ((Step("add", ("a",)),), (Step("add", ("b",)), Step("get", ("a",)))))


# --------------------------------------------------------------- 4. generator


class RacyIds:
    """One generator hands out ids to every thread: a thread that resumes it while another
    is inside raises ``ValueError: generator already executing``."""

    def __init__(self, initial: int = 0) -> None:
        self._gen = self._ids(initial)

    def _ids(self, n: int) -> Generator[int, None, None]:
        while True:
            n += 1
            pause()
            yield n

    def incr(self) -> int:
        return next(self._gen)


class FixedIds(RacyIds):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return next(self._gen)


IDS_OPS = COUNTER_OPS.only("incr")
IDS_RACE = Scenario(0, ((Step("incr"),), (Step("incr"),)))


# ---------------------------------------------------- 5. generator expression


class RacyGenexpTotal:
    """The read happens inside a generator expression's frame, the write after it."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def incr(self) -> int:
        new = sum(v for v in (self.value, 1))
        pause()
        self.value = new
        return new

    def get(self) -> int:
        return self.value


class FixedGenexpTotal(RacyGenexpTotal):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return super().incr()


# ---------------------------------------------------------------- 6. property


class RacyPropertyCounter:
    """``self.value += 1`` through a property: getter and setter are two calls."""

    def __init__(self, initial: int = 0) -> None:
        self._value = initial

    @property
    def value(self) -> int:
        return self._value

    @value.setter
    def value(self, v: int) -> None:
        pause()
        self._value = v

    def incr(self) -> int:
        self.value += 1
        return self.value

    def get(self) -> int:
        return self.value


class FixedPropertyCounter(RacyPropertyCounter):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            self.value += 1
            return self.value


# -------------------------------------------------------------- 7. descriptor


class Tracked:
    """A data descriptor that stores in the instance dict and counts writes."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = "_" + name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__[self.name]

    def __set__(self, obj: Any, value: Any) -> None:
        pause()
        obj.__dict__[self.name] = value


class RacyDescriptorCounter:
    value = Tracked()

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def incr(self) -> int:
        self.value = self.value + 1
        return self.value

    def get(self) -> int:
        return self.value  # type: ignore[no-any-return]


class FixedDescriptorCounter(RacyDescriptorCounter):
    def __init__(self, initial: int = 0) -> None:
        self._lock = threading.Lock()
        super().__init__(initial)

    def incr(self) -> int:
        with self._lock:
            return super().incr()


# --------------------------------------------------------- 8. cached_property


class RacyLazyConfig:
    """A cached_property whose computation has a side effect: two threads may both compute
    it (3.12+: cached_property has no lock; 3.11's takes a lock per property)."""

    def __init__(self, initial: int = 0) -> None:
        self.loads = initial

    @functools.cached_property
    def settings(self) -> int:
        pause()  # loading takes a while: a second reader computes too
        self.loads += 1
        return 42

    def read(self) -> int:
        return self.settings

    def get(self) -> int:
        return self.loads


class FixedLazyConfig(RacyLazyConfig):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def read(self) -> int:
        with self._lock:
            return self.settings


class LazyConfigModel:
    def __init__(self, initial: int = 0) -> None:
        self.loads = initial
        self.cached = False

    def read(self) -> int:
        if not self.cached:
            self.cached = True
            self.loads += 1
        return 42

    def get(self) -> int:
        return self.loads


LAZY_OPS = OpTable("lazy", (Op("read"), Op("get", mutates=False)), initial=lambda d: st.just(0))
LAZY_RACE = Scenario(0, ((Step("read"),), (Step("read"), Step("get"))))


# ------------------------------------------------ 9. class and static methods


class RacyLedger:
    """A read-modify-write through a classmethod (validation) and a staticmethod (arithmetic)."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    @staticmethod
    def _plus(a: int, b: int) -> int:
        return a + b

    @classmethod
    def _checked(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"{cls.__name__}: negative")
        return v

    def incr(self) -> int:
        new = self._checked(self._plus(self.value, 1))
        pause()
        self.value = new
        return new

    def get(self) -> int:
        return self.value


class FixedLedger(RacyLedger):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return super().incr()


# ------------------------------------------------------------ 10. dataclasses


@dataclass(frozen=True)
class Pos:
    x: int
    y: int


class RacyRobot:
    """The position is a frozen dataclass, replaced with ``dataclasses.replace``."""

    def __init__(self, initial: int = 0) -> None:
        self.pos = Pos(initial, 0)

    def move(self, dx: int) -> Pos:
        p = self.pos
        pause()
        self.pos = dataclasses.replace(p, x=p.x + dx)
        return self.pos

    def where(self) -> Pos:
        return self.pos


class FixedRobot(RacyRobot):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def move(self, dx: int) -> Pos:
        with self._lock:
            return super().move(dx)


@dataclass
class RobotModel:
    x: int = 0

    def move(self, dx: int) -> Pos:
        self.x += dx
        return Pos(self.x, 0)

    def where(self) -> Pos:
        return Pos(self.x, 0)


ROBOT_OPS = OpTable("robot", (Op("move", st.tuples(st.integers(1, 2))),
                              Op("where", mutates=False)),
                    initial=lambda d: st.just(0))
ROBOT_RACE = Scenario(0, ((Step("move", (1,)),), (Step("move", (2,)), Step("where"))))


# -------------------------------------------------------------- 11. __slots__


class RacySlotsCounter:
    __slots__ = ("_lock", "value")

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def incr(self) -> int:
        v = self.value
        pause()
        self.value = v + 1
        return self.value

    def get(self) -> int:
        return self.value


class FixedSlotsCounter(RacySlotsCounter):
    __slots__ = ()

    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return super().incr()


# --------------------------------------------------------------- 12. closures


def _make_counter(start: int) -> tuple[Callable[[], int], Callable[[], int]]:
    n = start

    def incr() -> int:
        nonlocal n
        v = n
        pause()
        n = v + 1
        return n

    def get() -> int:
        return n

    return incr, get


class RacyClosureCounter:
    """The state is a closure cell shared by two nested functions."""

    def __init__(self, initial: int = 0) -> None:
        self._incr, self._get = _make_counter(initial)

    def incr(self) -> int:
        return self._incr()

    def get(self) -> int:
        return self._get()


class FixedClosureCounter(RacyClosureCounter):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return self._incr()


# ---------------------------------------------------------------- 13. lambdas


class RacyLambdaCounter:
    """Updates through a table of lambdas: read, apply, write."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial
        self._fns: dict[str, Callable[[int], int]] = {"inc": lambda v: v + 1,
                                                       "id": lambda v: v}

    def incr(self) -> int:
        new = self._fns["inc"](self.value)
        pause()
        self.value = self._fns["id"](new)
        return new

    def get(self) -> int:
        return self.value


class FixedLambdaCounter(RacyLambdaCounter):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return super().incr()


# -------------------------------------------------------------- 14. recursion


class _Node:
    __slots__ = ("key", "left", "right")

    def __init__(self, key: int) -> None:
        self.key = key
        self.left: _Node | None = None
        self.right: _Node | None = None


class RacyTree:
    """A recursive binary-search-tree insert: two inserts into one empty child lose one."""

    def __init__(self, initial: int = 5) -> None:
        self.root = _Node(initial)

    def _insert(self, node: _Node | None, key: int) -> _Node:
        if node is None:
            pause()
            return _Node(key)
        if key < node.key:
            node.left = self._insert(node.left, key)
        elif key > node.key:
            node.right = self._insert(node.right, key)
        return node

    def _keys(self, node: _Node | None) -> list[int]:
        if node is None:
            return []
        return [*self._keys(node.left), node.key, *self._keys(node.right)]

    def insert(self, key: int) -> None:
        self._insert(self.root, key)

    def keys(self) -> tuple[int, ...]:
        return tuple(self._keys(self.root))


class FixedTree(RacyTree):
    def __init__(self, initial: int = 5) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def insert(self, key: int) -> None:
        with self._lock:
            super().insert(key)

    def keys(self) -> tuple[int, ...]:
        with self._lock:
            return super().keys()


class TreeModel:
    def __init__(self, initial: int = 5) -> None:
        self.keys_ = {initial}

    def insert(self, key: int) -> None:
        self.keys_.add(key)

    def keys(self) -> tuple[int, ...]:
        return tuple(sorted(self.keys_))


TREE_OPS = OpTable("tree", (Op("insert", st.tuples(st.integers(0, 9))),
                            Op("keys", mutates=False)),
                   initial=lambda d: st.just(5))
TREE_RACE = Scenario(5, ((Step("insert", (7,)),), (Step("insert", (8,)), Step("keys"))))


# ----------------------------------------------------- 15. methods that raise


class OutOfStock(LookupError):
    pass


class RacyInventory:
    """remove raises a custom exception from a helper when the item is gone (check-then-act)."""

    def __init__(self, initial: int = 1) -> None:
        self.stock = {"apple": initial}

    def _require(self, item: str) -> int:
        n = self.stock.get(item, 0)
        if n <= 0:
            raise OutOfStock(item)
        return n

    def remove(self, item: str) -> int:
        n = self._require(item)
        pause()
        self.stock[item] = n - 1
        return n - 1

    def count(self, item: str) -> int:
        return self.stock.get(item, 0)


class FixedInventory(RacyInventory):
    def __init__(self, initial: int = 1) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def remove(self, item: str) -> int:
        with self._lock:
            return super().remove(item)


class InventoryModel:
    def __init__(self, initial: int = 1) -> None:
        self.stock = {"apple": initial}

    def remove(self, item: str) -> int:
        n = self.stock.get(item, 0)
        if n <= 0:
            raise OutOfStock(item)
        self.stock[item] = n - 1
        return n - 1

    def count(self, item: str) -> int:
        return self.stock.get(item, 0)


INVENTORY_OPS = OpTable("inventory", (Op("remove", st.just(("apple",))),
                                      Op("count", st.just(("apple",)), mutates=False)),
                        initial=lambda d: st.just(1))
INVENTORY_RACE = Scenario(1, ((Step("remove", ("apple",)),), (Step("remove", ("apple",)),)))


# ----------------------------------------------------------- 16. calls into C


class RacyCatalog:
    """sorted, json.dumps/loads and dict methods between the read and the write."""

    def __init__(self, initial: Any = None) -> None:
        self.blob = json.dumps([])
        self.meta: dict[str, int] = {}

    def add(self, item: int) -> tuple[int, ...]:
        items = sorted([*json.loads(self.blob), item])
        pause()
        self.blob = json.dumps(items)
        self.meta.update(count=len(items))
        return tuple(items)

    def items(self) -> tuple[int, ...]:
        return tuple(json.loads(self.blob))


class FixedCatalog(RacyCatalog):
    def __init__(self, initial: Any = None) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def add(self, item: int) -> tuple[int, ...]:
        with self._lock:
            return super().add(item)


class CatalogModel:
    def __init__(self, initial: Any = None) -> None:
        self.items_: list[int] = []

    def add(self, item: int) -> tuple[int, ...]:
        self.items_ = sorted([*self.items_, item])
        return tuple(self.items_)

    def items(self) -> tuple[int, ...]:
        return tuple(self.items_)


CATALOG_OPS = OpTable("catalog", (Op("add", st.tuples(st.integers(0, 3))),
                                  Op("items", mutates=False)),
                      initial=lambda d: st.none())
CATALOG_RACE = Scenario(None, ((Step("add", (1,)),), (Step("add", (2,)),)))


# ------------------------------------------------------------ 17. queue.Queue


class RacyTaskBoard:
    """take checks qsize() and then gets without blocking: two takers, one task, one raises."""

    def __init__(self, initial: int = 1) -> None:
        self.q: queue.Queue[int] = queue.Queue()
        for i in range(initial):
            self.q.put(i)

    def put(self, x: int) -> None:
        self.q.put(x)

    def take(self) -> int | None:
        if self.q.qsize() > 0:
            pause()
            return self.q.get_nowait()
        return None


class FixedTaskBoard(RacyTaskBoard):
    def take(self) -> int | None:
        try:
            return self.q.get_nowait()
        except queue.Empty:
            return None


class TaskBoardModel:
    def __init__(self, initial: int = 1) -> None:
        self.items = list(range(initial))

    def put(self, x: int) -> None:
        self.items.append(x)

    def take(self) -> int | None:
        return self.items.pop(0) if self.items else None


TASK_OPS = OpTable("tasks", (Op("take"), Op("put", st.tuples(st.integers(0, 3)))),
                   initial=lambda d: st.just(1))
TASK_RACE = Scenario(1, ((Step("take"),), (Step("take"),)))


# ---------------------------------------------------- 18. threading.Condition


class RacyVersioned:
    """A value and its version: set writes the value outside the condition's lock."""

    def __init__(self, initial: int = 0) -> None:
        self._cond = threading.Condition()
        self.value = initial
        self.version = 0

    def set(self, v: int) -> None:
        self.value = v
        pause()
        with self._cond:
            self.version += 1
            self._cond.notify_all()

    def snapshot(self) -> tuple[int, int]:
        with self._cond:
            self._cond.wait_for(lambda: self.version >= 0, timeout=1.0)
            return (self.value, self.version)


class FixedVersioned(RacyVersioned):
    def set(self, v: int) -> None:
        with self._cond:
            self.value = v
            self.version += 1
            self._cond.notify_all()


class VersionedModel:
    def __init__(self, initial: int = 0) -> None:
        self.value = initial
        self.version = 0

    def set(self, v: int) -> None:
        self.value = v
        self.version += 1

    def snapshot(self) -> tuple[int, int]:
        return (self.value, self.version)


VERSION_OPS = OpTable("versioned", (Op("snapshot", mutates=False),
                                    Op("set", st.tuples(st.integers(1, 2)))),
                      initial=lambda d: st.just(0))
VERSION_RACE = Scenario(0, ((Step("set", (1,)),), (Step("snapshot"),)))


# ------------------------------------------------------------- 19. time.sleep


class RacySleepyCounter:
    """Reads, sleeps (a slow backend, a back-off), writes."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def incr(self) -> int:
        v = self.value
        time.sleep(0.0001)
        self.value = v + 1
        return v + 1

    def get(self) -> int:
        return self.value


class FixedSleepyCounter(RacySleepyCounter):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return super().incr()


# --------------------------------------------------------- 20. RLock re-entry


class RacyBank:
    """Each leg of a transfer is locked, the transfer is not: total() sees money in flight."""

    def __init__(self, initial: int = 10) -> None:
        self._lock = threading.RLock()
        self.accounts = {"a": initial, "b": initial}

    def _add(self, who: str, n: int) -> None:
        with self._lock:
            self.accounts[who] += n

    def transfer(self, n: int) -> None:
        self._add("a", -n)
        pause()
        self._add("b", n)

    def total(self) -> int:
        with self._lock:
            return sum(self.accounts.values())


class FixedBank(RacyBank):
    def transfer(self, n: int) -> None:
        with self._lock:  # re-entered by _add
            super().transfer(n)


class BankModel:
    def __init__(self, initial: int = 10) -> None:
        self.t = 2 * initial

    def transfer(self, n: int) -> None:
        pass

    def total(self) -> int:
        return self.t


BANK_OPS = OpTable("bank", (Op("total", mutates=False),
                            Op("transfer", st.tuples(st.integers(1, 2)))),
                   initial=lambda d: st.just(10))
BANK_RACE = Scenario(10, ((Step("transfer", (1,)),), (Step("total"),)))


# ----------------------------------------------- 21. coroutine driven by send


class RacyAccumulator:
    """A generator-based coroutine holds the running total; ``send`` drives it."""

    def __init__(self, initial: int = 0) -> None:
        self._co = self._run(initial)
        next(self._co)

    @staticmethod
    def _run(total: int) -> Generator[int, int, None]:
        while True:
            x = yield total
            t = total
            pause()
            total = t + x

    def incr(self) -> int:
        return self._co.send(1)


class FixedAccumulator(RacyAccumulator):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return self._co.send(1)


# ----------------------------------------------- 22. async def, no event loop


class RacyAsyncCounter:
    """An ``async def`` method run to completion with ``send(None)`` (no event loop)."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    async def _bump(self) -> int:
        v = self.value
        pause()
        self.value = v + 1
        return v + 1

    def incr(self) -> int:
        co = self._bump()
        try:
            co.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        raise AssertionError("the coroutine awaited something")

    def get(self) -> int:
        return self.value


class FixedAsyncCounter(RacyAsyncCounter):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return super().incr()


# ------------------------------------------------------- 23. nested functions


class RacyNestedCounter:
    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def incr(self) -> int:
        def read() -> int:
            return self.value

        def write(v: int) -> int:
            pause()
            self.value = v
            return v

        return write(read() + 1)

    def get(self) -> int:
        return self.value


class FixedNestedCounter(RacyNestedCounter):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return super().incr()


# --------------------------------------------------------- 24. super() chains


class _BaseStore:
    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def store(self, v: int) -> int:
        self.value = v
        return v


class _Validating(_BaseStore):
    def store(self, v: int) -> int:
        if v < 0:
            raise ValueError(v)
        return super().store(v)


class RacySuperCounter(_Validating):
    """incr reads, then stores through a chain of super() calls."""

    def store(self, v: int) -> int:
        pause()
        return super().store(v)

    def incr(self) -> int:
        return self.store(self.value + 1)

    def get(self) -> int:
        return self.value


class FixedSuperCounter(RacySuperCounter):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return super().incr()


# ------------------------------------------------------------ 25. __getattr__


class RacyHits:
    """Missing counters read as 0 through ``__getattr__``; hit is getattr + 1 + setattr."""

    def __init__(self, initial: Any = None) -> None:
        pass

    def __getattr__(self, name: str) -> int:
        if name.startswith("page_"):
            return 0
        raise AttributeError(name)

    def hit(self, page: str) -> int:
        n = getattr(self, "page_" + page) + 1
        pause()
        setattr(self, "page_" + page, n)
        return n

    def count(self, page: str) -> int:
        return getattr(self, "page_" + page)  # type: ignore[no-any-return]


class FixedHits(RacyHits):
    def __init__(self, initial: Any = None) -> None:
        self._lock = threading.Lock()

    def hit(self, page: str) -> int:
        with self._lock:
            return super().hit(page)


class HitsModel:
    def __init__(self, initial: Any = None) -> None:
        self.pages: dict[str, int] = {}

    def hit(self, page: str) -> int:
        self.pages[page] = self.pages.get(page, 0) + 1
        return self.pages[page]

    def count(self, page: str) -> int:
        return self.pages.get(page, 0)


HITS_OPS = OpTable("hits", (Op("hit", st.tuples(st.sampled_from("xy"))),
                            Op("count", st.tuples(st.sampled_from("xy")), mutates=False)),
                   initial=lambda d: st.none())
HITS_RACE = Scenario(None, ((Step("hit", ("x",)),), (Step("hit", ("x",)),)))


# ------------------------------------------ 26. dict subclass, try/except get


class RacyCache(dict[Any, Any]):
    """The class of issue 22: ``get`` through try/except KeyError, and a check-then-act
    ``get_or_set``."""

    def __init__(self, initial: Any = None) -> None:
        super().__init__()

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def get_or_set(self, key: Any, value: Any) -> Any:
        if key in self:
            return self[key]
        pause()
        self[key] = value
        return value


class FixedCache(RacyCache):
    def __init__(self, initial: Any = None) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def get_or_set(self, key: Any, value: Any) -> Any:
        with self._lock:
            return super().get_or_set(key, value)


class CacheModel:
    def __init__(self, initial: Any = None) -> None:
        self.d: dict[Any, Any] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        return self.d.get(key, default)

    def get_or_set(self, key: Any, value: Any) -> Any:
        return self.d.setdefault(key, value)


CACHE_OPS = OpTable("cache", (Op("get", st.tuples(st.just("k")), mutates=False),
                              Op("get_or_set", st.tuples(st.just("k"), st.integers(1, 2)))),
                    initial=lambda d: st.none())
CACHE_RACE = Scenario(None, ((Step("get_or_set", ("k", 1)), Step("get", ("k",))),
                             (Step("get_or_set", ("k", 2)),)))


# ----------------------------------------------------------------- the corpus


def _cached_property_races() -> bool:
    # 3.11's cached_property computes under a per-property RLock (removed in 3.12).
    return sys.version_info >= (3, 12)


def _counter(name: str, racy: type, fixed: type) -> Shape:
    return Shape(name, racy, fixed, COUNTER_OPS, CounterSpec, TWO_INCRS)


SHAPES: tuple[Shape, ...] = (
    Shape("try-except-finally", RacyAccount, FixedAccount, ACCOUNT_OPS, AccountModel,
          ACCOUNT_RACE),
    _counter("with-lock", RacyWithCounter, FixedWithCounter),
    Shape("contextmanager", RacyTxnDict, FixedTxnDict, TXN_OPS, TxnModel, TXN_RACE),
    Shape("generator", RacyIds, FixedIds, IDS_OPS, CounterSpec, IDS_RACE,
          shares_a_generator=True),
    _counter("generator-expression", RacyGenexpTotal, FixedGenexpTotal),
    _counter("property", RacyPropertyCounter, FixedPropertyCounter),
    _counter("descriptor", RacyDescriptorCounter, FixedDescriptorCounter),
    Shape("cached_property", RacyLazyConfig, FixedLazyConfig, LAZY_OPS, LazyConfigModel,
          LAZY_RACE, races=_cached_property_races),
    _counter("classmethod-staticmethod", RacyLedger, FixedLedger),
    Shape("dataclass", RacyRobot, FixedRobot, ROBOT_OPS, RobotModel, ROBOT_RACE),
    _counter("slots", RacySlotsCounter, FixedSlotsCounter),
    _counter("closure", RacyClosureCounter, FixedClosureCounter),
    _counter("lambda", RacyLambdaCounter, FixedLambdaCounter),
    Shape("recursion", RacyTree, FixedTree, TREE_OPS, TreeModel, TREE_RACE),
    Shape("method-raises", RacyInventory, FixedInventory, INVENTORY_OPS, InventoryModel,
          INVENTORY_RACE),
    Shape("calls-into-c", RacyCatalog, FixedCatalog, CATALOG_OPS, CatalogModel, CATALOG_RACE),
    Shape("queue.Queue", RacyTaskBoard, FixedTaskBoard, TASK_OPS, TaskBoardModel, TASK_RACE),
    Shape("threading.Condition", RacyVersioned, FixedVersioned, VERSION_OPS, VersionedModel,
          VERSION_RACE),
    _counter("time.sleep", RacySleepyCounter, FixedSleepyCounter),
    Shape("rlock-reentry", RacyBank, FixedBank, BANK_OPS, BankModel, BANK_RACE),
    Shape("coroutine-send", RacyAccumulator, FixedAccumulator, IDS_OPS, CounterSpec, IDS_RACE,
          shares_a_generator=True),
    Shape("async-def-send", RacyAsyncCounter, FixedAsyncCounter, COUNTER_OPS, CounterSpec,
          TWO_INCRS),
    _counter("nested-functions", RacyNestedCounter, FixedNestedCounter),
    _counter("super-chain", RacySuperCounter, FixedSuperCounter),
    Shape("__getattr__", RacyHits, FixedHits, HITS_OPS, HitsModel, HITS_RACE),
    Shape("dict-subclass-try-get", RacyCache, FixedCache, CACHE_OPS, CacheModel, CACHE_RACE),
)

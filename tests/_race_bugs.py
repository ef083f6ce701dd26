"""A corpus of race bugs of different shapes, each with a correct (locked) version.

Every class is plain user code, testable spec-free: ``find_race(Buggy)`` must
return the race (or the deadlock), ``find_race(Locked)`` must return None.
tests/test_testing_race_bugs.py runs them; docs/testing.md tabulates them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

# --------------------------------------------------------------- 1. lost update


class Counter:
    """``value += 1`` is a read, an add and a write: two threads can both write 1."""

    def __init__(self) -> None:
        self.value = 0

    def increment(self) -> None:
        self.value += 1


class LockedCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def increment(self) -> None:
        with self._lock:
            self.value += 1


# --------------------------------------------------------------- 2. check-then-act


class GetOrSetCache:
    """``get_or_set``: the check and the set are two steps; both threads can set."""

    def __init__(self) -> None:
        self._d: dict[str, int] = {}

    def get_or_set(self, key: str, value: int) -> int:
        if key not in self._d:
            self._d[key] = value
        return self._d[key]


class LockedGetOrSetCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._d: dict[str, int] = {}

    def get_or_set(self, key: str, value: int) -> int:
        with self._lock:
            if key not in self._d:
                self._d[key] = value
            return self._d[key]


# --------------------------------------------------------------- 3. lazy init


class LazyRegistry:
    """Lazy initialization: two threads see None, each creates a list, one list is lost."""

    def __init__(self) -> None:
        self._items: list[int] | None = None

    def register(self, x: int) -> None:
        if self._items is None:
            self._items = []
        self._items.append(x)

    def items(self) -> list[int]:
        return list(self._items or [])


class LockedLazyRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[int] | None = None

    def register(self, x: int) -> None:
        with self._lock:
            if self._items is None:
                self._items = []
            self._items.append(x)

    def items(self) -> list[int]:
        with self._lock:
            return list(self._items or [])


# --------------------------------------------------------------- 4. torn pair


class Range:
    """Two fields written one after the other: a reader sees a new ``lo`` with an old ``hi``."""

    def __init__(self) -> None:
        self.lo = 0
        self.hi = 0

    def set(self, lo: int, width: int) -> None:
        self.lo = lo
        self.hi = lo + width

    def get(self) -> tuple[int, int]:
        return (self.lo, self.hi)


class LockedRange:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lo = 0
        self.hi = 0

    def set(self, lo: int, width: int) -> None:
        with self._lock:
            self.lo = lo
            self.hi = lo + width

    def get(self) -> tuple[int, int]:
        with self._lock:
            return (self.lo, self.hi)


# --------------------------------------------------------------- 5. stale cache


class PriceBook:
    """A derived value cached from a read that a writer invalidated in between: stale."""

    def __init__(self) -> None:
        self._price = 0
        self._doubled: int | None = None

    def set_price(self, price: int) -> None:
        self._price = price
        self._doubled = None

    def doubled(self) -> int:
        if self._doubled is None:
            self._doubled = self._price * 2
        return self._doubled


class LockedPriceBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._price = 0
        self._doubled: int | None = None

    def set_price(self, price: int) -> None:
        with self._lock:
            self._price = price
            self._doubled = None

    def doubled(self) -> int:
        with self._lock:
            if self._doubled is None:
                self._doubled = self._price * 2
            return self._doubled


# --------------------------------------------------------------- 6. publication order


class Mailbox:
    """Publication without ordering: the flag is set before the data it announces."""

    def __init__(self) -> None:
        self.ready = False
        self.data: int | None = None

    def publish(self, value: int) -> None:
        self.ready = True
        self.data = value

    def read(self) -> int | None:
        """The published value, or -1 when nothing is published yet."""
        return self.data if self.ready else -1


class LockedMailbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ready = False
        self.data: int | None = None

    def publish(self, value: int) -> None:
        with self._lock:
            self.ready = True
            self.data = value

    def read(self) -> int | None:
        with self._lock:
            return self.data if self.ready else -1


# --------------------------------------------------------------- 7. iterator invalidation


class Scores:
    """``total`` iterates the dict while ``add`` inserts: "dictionary changed size"."""

    def __init__(self) -> None:
        self._scores: dict[str, int] = {}

    def add(self, name: str, score: int) -> None:
        self._scores[name] = score

    def total(self) -> int:
        return sum(score for score in self._scores.values())


class LockedScores:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scores: dict[str, int] = {}

    def add(self, name: str, score: int) -> None:
        with self._lock:
            self._scores[name] = score

    def total(self) -> int:
        with self._lock:
            return sum(score for score in self._scores.values())


# --------------------------------------------------------------- 8. lock-order deadlock


class TwoAccounts:
    """Two locks taken in opposite orders by two methods: a deadlock."""

    def __init__(self) -> None:
        self._lock_a = threading.Lock()
        self._lock_b = threading.Lock()
        self.a = 10
        self.b = 10

    def a_to_b(self, amount: int) -> None:
        with self._lock_a, self._lock_b:
            self.a -= amount
            self.b += amount

    def b_to_a(self, amount: int) -> None:
        with self._lock_b, self._lock_a:
            self.b -= amount
            self.a += amount


class LockedTwoAccounts:
    """The fix: one global lock order (a before b) in both methods."""

    def __init__(self) -> None:
        self._lock_a = threading.Lock()
        self._lock_b = threading.Lock()
        self.a = 10
        self.b = 10

    def a_to_b(self, amount: int) -> None:
        with self._lock_a, self._lock_b:
            self.a -= amount
            self.b += amount

    def b_to_a(self, amount: int) -> None:
        with self._lock_a, self._lock_b:
            self.b -= amount
            self.a += amount


# --------------------------------------------------------------- 9. compare-then-set


class Slot:
    """A compare-and-set made of a compare and a set: two threads both "win"."""

    def __init__(self) -> None:
        self.value = 0

    def compare_and_set(self, expected: int, new: int) -> bool:
        if self.value == expected:
            self.value = new
            return True
        return False

    def get(self) -> int:
        return self.value


class LockedSlot:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def compare_and_set(self, expected: int, new: int) -> bool:
        with self._lock:
            if self.value == expected:
                self.value = new
                return True
            return False

    def get(self) -> int:
        with self._lock:
            return self.value


# --------------------------------------------------------------- 10. bank transfer


Account = Literal["a", "b"]


class Bank:
    """Check the balance, then move the money: overdrafts and lost updates; money is
    created or destroyed (the invariant ``total == 20`` breaks)."""

    def __init__(self) -> None:
        self.balances = {"a": 10, "b": 10}

    def transfer(self, src: Account, dst: Account, amount: int) -> bool:
        if self.balances[src] < amount * 3:
            return False
        self.balances[src] -= amount * 3
        self.balances[dst] += amount * 3
        return True

    def total(self) -> int:
        return sum(self.balances.values())


class LockedBank:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.balances = {"a": 10, "b": 10}

    def transfer(self, src: Account, dst: Account, amount: int) -> bool:
        with self._lock:
            if self.balances[src] < amount * 3:
                return False
            self.balances[src] -= amount * 3
            self.balances[dst] += amount * 3
            return True

    def total(self) -> int:
        with self._lock:
            return sum(self.balances.values())


def bank_conserves_money(bank: Bank | LockedBank) -> bool:
    return sum(bank.balances.values()) == 20


# --------------------------------------------------------------- 11. duplicate ids


class IdAllocator:
    """Read the next id, then store it plus one: two threads get the same id."""

    def __init__(self) -> None:
        self._next = 0

    def allocate(self) -> int:
        ident = self._next
        self._next = ident + 1
        return ident


class LockedIdAllocator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0

    def allocate(self) -> int:
        with self._lock:
            ident = self._next
            self._next = ident + 1
            return ident


# --------------------------------------------------------------- 12. check-then-remove


class Tags:
    """``if x in items: items.remove(x)``: the second remover raises ValueError."""

    def __init__(self) -> None:
        self._items: list[str] = ["a", "b"]

    def add(self, tag: str) -> None:
        self._items.append(tag)

    def discard(self, tag: str) -> None:
        if tag in self._items:
            self._items.remove(tag)


class LockedTags:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[str] = ["a", "b"]

    def add(self, tag: str) -> None:
        with self._lock:
            self._items.append(tag)

    def discard(self, tag: str) -> None:
        with self._lock:
            if tag in self._items:
                self._items.remove(tag)


# --------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class RaceBug:
    name: str
    shape: str
    buggy: type
    locked: type
    options: dict[str, Any] = field(default_factory=dict)
    """Extra find_race arguments the bug needs (none do; kept for the record)."""
    deadlock: bool = False


BUGS: tuple[RaceBug, ...] = (
    RaceBug("lost_update", "lost update (+= on a field)", Counter, LockedCounter),
    RaceBug("get_or_set", "check-then-act get_or_set cache", GetOrSetCache,
            LockedGetOrSetCache),
    RaceBug("lazy_init", "lazy initialization", LazyRegistry, LockedLazyRegistry),
    RaceBug("torn_pair", "torn pair (two fields written apart)", Range, LockedRange),
    RaceBug("stale_cache", "stale derived-value cache", PriceBook, LockedPriceBook),
    RaceBug("publication", "publication without ordering (flag before data)", Mailbox,
            LockedMailbox),
    RaceBug("iterator", "iterator invalidation (dict changed size)", Scores, LockedScores),
    RaceBug("deadlock", "lock-order deadlock", TwoAccounts, LockedTwoAccounts, deadlock=True),
    RaceBug("compare_then_set", "compare-then-set (both threads win)", Slot, LockedSlot),
    RaceBug("bank", "bank transfer: overdraft and lost update", Bank, LockedBank),
    RaceBug("duplicate_id", "read-then-increment id allocator", IdAllocator,
            LockedIdAllocator),
    RaceBug("check_then_remove", "check-then-remove (ValueError)", Tags, LockedTags),
)

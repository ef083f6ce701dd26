"""Self-validation: deliberately broken containers are caught, correct ones are not.

Each broken op has a real check-then-act race; a ``time.sleep(WINDOW)``
(50 us) inside it widens the window (it releases the GIL on GIL builds, and
leaves time for a thread that started late on an oversubscribed machine to
catch up) so that detection within the CI budget is reliable rather than
lucky.  Together with the small switch
interval the executor sets on GIL builds, these races show up on both
interpreters.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from hypothesis import strategies as st

from nogil_collections.testing import (
    DICT_OPS,
    LIST_OPS,
    NotLinearizable,
    Op,
    OpTable,
    explore,
    find_race,
)

# --------------------------------------------------------------------------- broken containers

WINDOW = 50e-6  # seconds: widens each race window (see the module docstring)



class CheckThenActSetdefaultDict(dict[Any, Any]):
    """setdefault as "if key not in d: d[key] = default" without a lock."""

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        time.sleep(WINDOW)
        self[key] = default
        return default


class LenThenPopList(list[Any]):
    """pop computes its index from len() before popping."""

    def pop(self, index: int = -1) -> Any:  # type: ignore[override]
        n = len(self)
        if n == 0:
            raise IndexError("pop from empty list")
        if index < 0:
            index += n
        time.sleep(WINDOW)
        return super().pop(index)


class RacyCounter:
    """value = value + 1, read and write separately."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def incr(self) -> int:
        v = self.value
        time.sleep(WINDOW)
        self.value = v + 1
        return v + 1

    def get(self) -> int:
        return self.value


class Counter:
    """The sequential specification of a counter."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def incr(self) -> int:
        self.value += 1
        return self.value

    def get(self) -> int:
        return self.value


class LockedCounter(RacyCounter):
    def __init__(self, initial: int = 0) -> None:
        super().__init__(initial)
        self._lock = threading.Lock()

    def incr(self) -> int:
        with self._lock:
            return super().incr()


class LockedSetdefaultDict(CheckThenActSetdefaultDict):
    """The same check-then-act, done under a lock that every writer takes."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._lock = threading.RLock()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            return super().setdefault(key, default)

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            super().__setitem__(key, value)


COUNTER_OPS = OpTable(
    "counter",
    (Op("incr"), Op("get", mutates=False)),
    initial=lambda d: st.integers(0, 3),
)

# Narrow domains make the racing pairs (same key, different values) common.
SMALL_DICT = DICT_OPS.only("setdefault", "get", "__setitem__").with_domain(
    keys=st.sampled_from("ab"), values=st.integers(0, 2)
)


def _caught(exc: NotLinearizable, op: str) -> str:
    text = str(exc)
    assert "NOT linearizable" in text
    assert op in text
    assert "Every call that may come next fails" in text
    return text


def test_catches_check_then_act_setdefault() -> None:
    found = find_race(CheckThenActSetdefaultDict, SMALL_DICT.without("__setitem__"), dict,
                      threads=(2, 3), ops_per_thread=(1, 2), examples=60, repetitions=10,
                      budget="ci", shrink_seconds=1.5)
    _caught(found, "setdefault")


class WrongGetDict(dict[Any, Any]):
    """Deterministically wrong: get('b') always answers 42."""

    def get(self, key: Any, default: Any = None) -> Any:
        return 42 if key == "b" else super().get(key, default)


def test_failures_shrink_to_a_minimal_scenario() -> None:
    with pytest.raises(NotLinearizable) as exc:
        explore(WrongGetDict, SMALL_DICT, dict, threads=(2, 3), ops_per_thread=(1, 3),
                examples=60, repetitions=1, budget="ci", shrink_seconds=60)
    scenario = exc.value.scenario
    # Two threads (the minimum), one op each: the bad get, and the simplest op.
    assert [len(t) for t in scenario.threads] == [1, 1], scenario
    assert "get('b')" in str(scenario)


def test_catches_pop_that_checks_len_first() -> None:
    ops = LIST_OPS.only("append", "pop", "insert").with_domain(values=st.integers(0, 2))
    found = find_race(LenThenPopList, ops, list, threads=(2, 3), ops_per_thread=(1, 2),
                      examples=60, repetitions=10, budget="ci", shrink_seconds=1.5)
    _caught(found, "pop")


def test_catches_non_atomic_counter_increment() -> None:
    found = find_race(RacyCounter, COUNTER_OPS, Counter, threads=(2, 3), ops_per_thread=(1, 2),
                      examples=60, repetitions=10, budget="ci", shrink_seconds=1.5)
    text = _caught(found, "incr")
    assert "RacyCounter" not in text  # the model is named, not the implementation
    assert "Counter model" in text


def test_correct_versions_pass() -> None:
    report = explore(LockedCounter, COUNTER_OPS, Counter, threads=(2, 3),
                     ops_per_thread=(1, 3), examples=25, repetitions=5, budget="ci")
    assert report.ops_seen == {"incr", "get"}
    explore(LockedSetdefaultDict, SMALL_DICT, dict, threads=(2, 3), ops_per_thread=(1, 3),
            examples=25, repetitions=5, budget="ci")


# --------------------------------------------------------------------------- builtins

# On 3.13t, list.__contains__/index/count scan the array without the lock
# (list_contains, list_index_impl, list_count in Objects/listobject.c read
# item by item with list_get_item_ref): a concurrent delete can shift an
# element past the scan, so they are not single atomic operations on the
# builtin.  Iteration is excluded for the same reason (many steps).
BUILTIN_LIST_ATOMIC = LIST_OPS.linearizable().without("__contains__", "index", "count")


def test_builtin_list_single_operations_are_linearizable() -> None:
    report = explore(list, BUILTIN_LIST_ATOMIC, list, threads=(2, 3), ops_per_thread=(1, 3),
                     examples=40, repetitions=5)
    assert set(report.ops_skipped) == {"snapshot", "append_if_absent", "compare_and_set",
                                       "update", "heappush", "heappop", "heappushpop",
                                       "heapreplace", "heapify"}
    assert len(report.ops_seen) >= 12, report


def test_builtin_dict_single_operations_are_linearizable() -> None:
    report = explore(dict, DICT_OPS.linearizable(), dict, threads=(2, 3), ops_per_thread=(1, 3),
                     examples=40, repetitions=5)
    assert set(report.ops_skipped) == {"snapshot", "compare_and_set", "get_or_insert",
                                       "update_item", "pop_if"}
    assert len(report.ops_seen) >= 10, report

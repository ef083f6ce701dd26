"""Race tests: ConcurrentDict is linearizable against the builtin dict, every op included.

Every op gets its own campaign in which each scenario calls it at least once,
next to writers on the same few keys.  Single-key histories are checked key
by key (P-compositionality), so the per-key test affords more threads and
longer sequences.  ConcurrentDict iterates over a snapshot
(docs/guarantees.md), so its iteration ops (``iter``, ``keys``, ``values``,
``items``) are single atomic steps and are checked too.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import strategies as st

from _race_campaigns import explore_one_op
from nogil_collections import ConcurrentDict
from nogil_collections import _dict as _dict_module
from nogil_collections.testing import DICT_OPS, RaceReport, explore, find_race, race_test

COMPOUND = ("snapshot", "compare_and_set", "get_or_insert", "update_item", "pop_if")

ALL_OPS = DICT_OPS  # snapshot iteration: the iteration ops are linearizable too

WRITERS = ("__setitem__", "pop", "__delitem__", "popitem")

PER_KEY = DICT_OPS.only(
    "__setitem__", "__getitem__", "get", "__contains__", "__delitem__", "pop", "pop_default",
    "setdefault", "compare_and_set", "get_or_insert", "update_item", "pop_if", "update",
)

CONTENDED = DICT_OPS.only(*COMPOUND, "__setitem__", "pop", "setdefault", "get", "len").with_domain(
    keys=st.sampled_from("ab"), values=st.integers(0, 1)
)


@pytest.mark.parametrize("op", ALL_OPS.names)
def test_race_dict_operation(op: str) -> None:
    table = ALL_OPS.only(*dict.fromkeys((op, *WRITERS))).with_domain(keys=st.sampled_from("abc"))
    explore_one_op(ConcurrentDict, dict, table, op)


@race_test(factory=ConcurrentDict, model=dict, ops=PER_KEY, threads=(2, 4),
           ops_per_thread=(2, 8), examples=25, repetitions=6)
def test_race_dict_per_key_operations_many_threads(report: RaceReport) -> None:
    assert report.calls >= 25 * 6 * 4


@race_test(factory=ConcurrentDict, model=dict, ops=CONTENDED, threads=(2, 3),
           ops_per_thread=(1, 3), examples=40, repetitions=10)
def test_race_dict_compound_operations(report: RaceReport) -> None:
    assert not set(COMPOUND) & set(report.ops_skipped), report


# --------------------------------------------------------------------------- sensitivity
# The campaigns above must be able to fail: each mutant re-implements one
# compound op as an unlocked check-then-act on a real ConcurrentDict (with a
# 50 us sleep in the window), and the same kind of campaign must catch it.

WINDOW = 50e-6

_ABSENT = ConcurrentDict.ABSENT
_NO_DEFAULT = object()


class _GetOrInsertMutant(ConcurrentDict):  # type: ignore[misc]
    def get_or_insert(self, key: Any, factory: Any) -> Any:
        if key in self:
            return self[key]
        time.sleep(WINDOW)
        value = self[key] = factory()
        return value


class _UpdateItemMutant(ConcurrentDict):  # type: ignore[misc]
    def update_item(self, key: Any, fn: Any, default: Any = _NO_DEFAULT) -> Any:
        if key in self:
            value = fn(self[key])
        elif default is _NO_DEFAULT:
            raise KeyError(key)
        else:
            value = fn(default)
        time.sleep(WINDOW)
        self[key] = value
        return value


class _CompareAndSetMutant(ConcurrentDict):  # type: ignore[misc]
    def compare_and_set(self, key: Any, expected: Any, new: Any) -> bool:
        cur = self.get(key, _ABSENT)
        if cur is expected or (_ABSENT not in (cur, expected) and cur == expected):
            time.sleep(WINDOW)
            if new is _ABSENT:
                self.pop(key, None)
            else:
                self[key] = new
            return True
        return False


class _PopIfMutant(ConcurrentDict):  # type: ignore[misc]
    def pop_if(self, key: Any, expected: Any) -> bool:
        if key in self and self[key] == expected:
            time.sleep(WINDOW)
            self.pop(key, None)
            return True
        return False


@pytest.mark.parametrize(("mutant", "op"), [
    (_GetOrInsertMutant, "get_or_insert"),
    (_UpdateItemMutant, "update_item"),
    (_CompareAndSetMutant, "compare_and_set"),
    (_PopIfMutant, "pop_if"),
])
def test_race_dict_campaign_catches_unlocked_compound_op(mutant: type, op: str) -> None:
    table = CONTENDED.only(op, "__setitem__", "pop", "get")
    found = find_race(mutant, table, dict, focus=op, threads=(2, 3), ops_per_thread=(1, 2),
                      examples=60, repetitions=10, shrink_seconds=0.5, budget="ci")
    assert op in str(found)


# --------------------------------------------------------------------------- reader isolation
# Lock-free readers validate only the table-wide sequence (docs/design.md,
# "Readers: who disturbs whom"), so these campaigns mix value replacements of
# a key with inserts and deletes of its neighbours and with resizes: the
# initial dicts are near the 8-slot table's capacity (5 entries), so a few
# inserts after deletes (tombstones) force a resize during the reads.  Both
# table kinds: str keys (pinned table), str and int keys (a pinned table with
# both kinds in one probe sequence; -1 and -2 share a hash) and mixed keys
# (generic table).

NEIGHBOURS = DICT_OPS.only(
    "__setitem__", "__getitem__", "get", "__contains__", "__delitem__", "pop_default",
    "setdefault", "compare_and_set", "len",
)

_STR_KEYS = st.sampled_from("abcdefg")
_STR_INT_KEYS = st.sampled_from(["a", "b", 1, -1, -2, 10**12, 2**70])
_MIXED_KEYS = st.sampled_from(["a", "b", 1, 2, (1,), (2,), 2.5])


@pytest.mark.parametrize(
    "keys", [_STR_KEYS, _STR_INT_KEYS, _MIXED_KEYS], ids=["pinned", "pinned-str-int", "generic"]
)
def test_race_dict_replacements_next_to_inserts_deletes_and_resizes(
    keys: st.SearchStrategy[Any],
) -> None:
    table = NEIGHBOURS.with_domain(keys=keys, values=st.integers(0, 2), max_initial=5)
    report = explore(ConcurrentDict, table, dict, threads=(2, 4), ops_per_thread=(2, 6),
                     examples=30, repetitions=8)
    assert {"__getitem__", "__setitem__", "__delitem__"} <= set(report.ops_seen), report


# The same campaign with every d[k] = v, del d[k] and pop on the early-probe
# path (docs/design.md, "Writers: the probe before the lock"), which a thread
# otherwise takes only after finding the writer lock held: the entry found
# before the lock must be re-validated against the deletes, re-inserts,
# resizes and conversions of the other threads.

class _EarlyProbeDict(ConcurrentDict):  # type: ignore[type-arg]
    def __setitem__(self, key: Any, value: Any) -> None:
        _dict_module._set_contended_writes(1)
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        _dict_module._set_contended_writes(1)
        super().__delitem__(key)

    def pop(self, key: Any, *default: Any) -> Any:
        _dict_module._set_contended_writes(1)
        return super().pop(key, *default)


@pytest.mark.parametrize(
    "keys", [_STR_KEYS, _STR_INT_KEYS, _MIXED_KEYS], ids=["pinned", "pinned-str-int", "generic"]
)
def test_race_dict_early_probe_writes_next_to_inserts_deletes_and_resizes(
    keys: st.SearchStrategy[Any],
) -> None:
    table = NEIGHBOURS.with_domain(keys=keys, values=st.integers(0, 2), max_initial=5)
    report = explore(_EarlyProbeDict, table, dict, threads=(2, 4), ops_per_thread=(2, 6),
                     examples=30, repetitions=8)
    assert {"__setitem__", "__delitem__", "pop_default"} <= set(report.ops_seen), report


# A value replacement that exposes a transient NULL (readers take it for a
# delete): the deliberately broken writer of _dict._set_mutant.  The reader
# campaign above must catch it -- the proof that it can fail.

@pytest.mark.free_threaded_only  # the broken window is C code: the GIL hides it
def test_race_dict_campaign_catches_a_torn_value_replacement() -> None:
    table = NEIGHBOURS.only("__setitem__", "__getitem__", "get", "__contains__").with_domain(
        keys=st.sampled_from("ab"), values=st.integers(0, 2), max_initial=2
    )
    initial = st.fixed_dictionaries({"a": st.integers(0, 2), "b": st.integers(0, 2)})
    _dict_module._set_mutant(1)
    try:
        found = find_race(ConcurrentDict, table, dict, focus="__setitem__", threads=(2, 3),
                          ops_per_thread=(2, 4), examples=60, repetitions=10, initial=initial,
                          shrink_seconds=0.5, budget="ci")
    finally:
        _dict_module._set_mutant(0)
    assert "__setitem__" in str(found)

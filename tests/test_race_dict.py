"""Race tests: ConcurrentDict is linearizable against the builtin dict, every op included.

Every op gets its own campaign in which each scenario calls it at least once,
next to writers on the same few keys.  Single-key histories are checked key
by key (P-compositionality), so the per-key test affords more threads and
longer sequences.  ConcurrentDict iterates over a snapshot
(docs/guarantees.md), so its iteration ops (``iter``, ``keys``, ``values``,
``items``) are single atomic steps and are checked too.
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from nogil_collections import ConcurrentDict
from nogil_collections.testing import DICT_OPS, RaceReport, explore, race_test

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
    report = explore(ConcurrentDict, table, dict, focus=op, threads=(2, 3),
                     ops_per_thread=(1, 3), examples=10, repetitions=5)
    if op in report.ops_skipped:
        pytest.skip(f"ConcurrentDict has no {op!r} (yet)")
    assert op in report.ops_seen, report


@race_test(factory=ConcurrentDict, model=dict, ops=PER_KEY, threads=(2, 4),
           ops_per_thread=(2, 8), examples=25, repetitions=6)
def test_race_dict_per_key_operations_many_threads(report: RaceReport) -> None:
    assert report.calls >= 25 * 6 * 4


@race_test(factory=ConcurrentDict, model=dict, ops=CONTENDED, threads=(2, 3),
           ops_per_thread=(1, 3), examples=40, repetitions=10)
def test_race_dict_compound_operations(report: RaceReport) -> None:
    assert not set(COMPOUND) & set(report.ops_skipped), report

"""Race tests: ConcurrentDict is linearizable against the builtin dict, every op included.

Single-key histories are checked key by key (P-compositionality), so the
per-key test can afford more threads and longer sequences.  ConcurrentDict
iterates over a snapshot (docs/guarantees.md), so its iteration ops (``iter``,
``keys``, ``values``, ``items``) are single atomic steps and are checked too.
"""

from __future__ import annotations

from hypothesis import strategies as st

from nogil_collections import ConcurrentDict
from nogil_collections.testing import DICT_OPS, RaceReport, race_test

COMPOUND = ("snapshot", "compare_and_set", "get_or_insert", "update_item", "pop_if")

ALL_OPS = DICT_OPS  # snapshot iteration: the iteration ops are linearizable too

PER_KEY = DICT_OPS.only(
    "__setitem__", "__getitem__", "get", "__contains__", "__delitem__", "pop", "pop_default",
    "setdefault", "compare_and_set", "get_or_insert", "update_item", "pop_if", "update",
)

CONTENDED = DICT_OPS.only(*COMPOUND, "__setitem__", "pop", "setdefault", "get", "len").with_domain(
    keys=st.sampled_from("ab"), values=st.integers(0, 1)
)


def _covered(report: RaceReport, table_names: list[str], floor: float) -> None:
    usable = [n for n in table_names if n not in report.ops_skipped]
    seen = report.ops_seen & set(usable)
    assert len(seen) >= floor * len(usable), (sorted(set(usable) - seen), str(report))


@race_test(factory=ConcurrentDict, model=dict, ops=ALL_OPS, threads=(2, 3),
           ops_per_thread=(1, 3), examples=40, repetitions=6)
def test_race_dict_every_operation(report: RaceReport) -> None:
    _covered(report, ALL_OPS.names, 0.8)


@race_test(factory=ConcurrentDict, model=dict, ops=PER_KEY, threads=(2, 4),
           ops_per_thread=(2, 8), examples=25, repetitions=6)
def test_race_dict_per_key_operations_many_threads(report: RaceReport) -> None:
    _covered(report, PER_KEY.names, 0.8)


@race_test(factory=ConcurrentDict, model=dict, ops=CONTENDED, threads=(2, 3),
           ops_per_thread=(1, 3), examples=40, repetitions=10)
def test_race_dict_compound_operations(report: RaceReport) -> None:
    assert not set(COMPOUND) & set(report.ops_skipped), report
    assert set(COMPOUND) <= report.ops_seen, report

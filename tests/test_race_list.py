"""Race tests: ConcurrentList is linearizable against the builtin list, every op included.

Each test generates concurrent scenarios (hypothesis), runs each several times
on real threads, and checks every history with the linearizability checker
(nogil_collections.testing).  Budgets are CI-sized; ``make race`` runs them
with ``--race-budget=deep``.  On GIL builds the executor shrinks the switch
interval, so ops that call back into Python (``update``'s fn, ``__eq__``)
still interleave.
"""

from __future__ import annotations

from hypothesis import strategies as st

from nogil_collections import ConcurrentList
from nogil_collections.testing import LIST_OPS, RaceReport, race_test

# Iteration (``iter``/``reversed``) is not one atomic step: ConcurrentList
# promises weaker things for it (docs/guarantees.md), tested elsewhere.
ALL_OPS = LIST_OPS.linearizable()

COMPOUND = ("snapshot", "append_if_absent", "compare_and_set", "update")

# Few distinct values and short lists: the compound ops collide often.
CONTENDED = LIST_OPS.only(
    *COMPOUND, "append", "pop", "__setitem__", "insert", "remove", "__getitem__", "len"
).with_domain(values=st.integers(0, 1), indices=st.integers(-2, 1), max_initial=3)


def _covered(report: RaceReport, table_names: list[str], floor: float) -> None:
    usable = [n for n in table_names if n not in report.ops_skipped]
    seen = report.ops_seen & set(usable)
    assert len(seen) >= floor * len(usable), (sorted(set(usable) - seen), str(report))


@race_test(factory=ConcurrentList, model=list, ops=ALL_OPS, threads=(2, 3),
           ops_per_thread=(1, 3), examples=40, repetitions=6)
def test_race_list_every_operation(report: RaceReport) -> None:
    _covered(report, ALL_OPS.names, 0.8)


@race_test(factory=ConcurrentList, model=list, ops=CONTENDED, threads=(2, 3),
           ops_per_thread=(1, 3), examples=40, repetitions=10)
def test_race_list_compound_operations(report: RaceReport) -> None:
    # The compound ops are the point of this test: they must all exist and run.
    assert not set(COMPOUND) & set(report.ops_skipped), report
    assert set(COMPOUND) <= report.ops_seen, report

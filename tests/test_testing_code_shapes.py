"""Everyday code shapes under both executors (issue 22, item 1): never a crash.

For each shape of ``tests/_code_shapes.py`` (try/except/finally, ``with``,
generators, properties, descriptors, ``cached_property``, dataclasses,
``__slots__``, closures, recursion, ``queue.Queue``, ``threading.Condition``,
``time.sleep``, coroutines driven by ``send``...):

- the racy class is reported as the race it is: ``NotLinearizable`` on the
  operations of its race scenario, with a report that formats;
- the fixed class (locked, or atomic) passes its race scenario and a short
  generated campaign.

Both executors, on every interpreter ``make test`` covers.  The budget is
small and bounded (a few hundred schedules or runs per shape).
"""

from __future__ import annotations

import sys

import pytest

from _code_shapes import SHAPES, Shape
from nogil_collections.testing import NotLinearizable, check_scenario, explore

EXECUTORS = ["threads", "controlled"]

# Free-threaded 3.13 and 3.14 change a generator's frame state without atomics:
# two threads resuming one generator at once can crash the process (SIGSEGV,
# seen on 3.13.15t and 3.14.7t here) instead of raising "generator already
# executing".  The fix (CPython gh-120321) is in 3.15.
_GENERATORS_CRASH_ON_THREADS = (
    not getattr(sys, "_is_gil_enabled", lambda: True)() and sys.version_info < (3, 15)
)


def test_the_corpus_has_at_least_20_shapes() -> None:
    assert len(SHAPES) >= 20
    assert len({s.name for s in SHAPES}) == len(SHAPES)


def _racy_report(shape: Shape, executor: str) -> NotLinearizable | None:
    # Controlled: one deterministic search (PCT, seeded) finds it.  Real
    # threads: the pause() in every race window makes each run likely to hit
    # it; a few rounds bound the (rare) misses on a loaded machine.
    rounds, reps = (1, 300) if executor == "controlled" else (6, 40)
    for _ in range(rounds):
        try:
            check_scenario(shape.scenario, shape.racy, shape.ops, shape.model,
                           repetitions=reps, executor=executor, seed=0)
        except NotLinearizable as e:
            return e
    return None


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_the_racy_version_is_reported_as_its_race(shape: Shape, executor: str) -> None:
    if executor == "threads" and shape.shares_a_generator and _GENERATORS_CRASH_ON_THREADS:
        pytest.skip("two threads resuming one generator at once can crash free-threaded "
                    "CPython before 3.15 (CPython gh-120321); the controlled executor, "
                    "which runs one thread at a time, reports this race")
    found = _racy_report(shape, executor)
    if not shape.races():
        assert found is None, f"{shape.name}: no race on this interpreter, yet:\n{found}"
        return
    assert found is not None, f"{shape.name}: the race was not found under {executor}"
    text = str(found)
    assert "NOT linearizable" in text
    assert found.scenario == shape.scenario
    ops = {s.op for t in shape.scenario.threads for s in t}
    assert any(f"{op}(" in text for op in ops), text
    if executor == "controlled":
        assert found.schedule is not None
        assert "per-thread timeline of the schedule" in text
        # The failing schedule replays to the same history.
        assert found.history is not None
        assert found.replay().calls == found.history.calls


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_the_fixed_version_passes(shape: Shape, executor: str) -> None:
    check_scenario(shape.scenario, shape.fixed, shape.ops, shape.model,
                   repetitions=60 if executor == "controlled" else 30,
                   executor=executor, seed=0)
    report = explore(shape.fixed, shape.ops, shape.model, threads=2, ops_per_thread=(1, 2),
                     examples=4, repetitions=10 if executor == "controlled" else 5,
                     budget="ci", executor=executor, seed=0)
    assert report.ops_seen, report

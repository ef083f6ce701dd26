"""The controlled executor is deterministic per interpreter (issue 20).

A given seed gives the same first failing scenario and the same schedule in
every run on one interpreter: twice in one process (the second campaign runs
on warmed-up, specialised code), and in fresh processes with different hash
seeds (``PYTHONHASHSEED``) and thread ids.  The campaigns are the one-window
races of ``tests/test_testing_selfcheck.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nogil_collections

TESTS = Path(__file__).resolve().parent

CHILD = r"""
import json, sys
import test_testing_selfcheck as m
from nogil_collections.testing import find_race

CASES = {"stale-cache": (m.StaleCacheDict, m.STALE_OPS, dict),
         "torn-pair": (m.TornPair, m.PAIR_OPS, m.PairSpec),
         "lazy-total": (m.LazyTotalCounter, m.TOTAL_OPS, m.TotalSpec)}

def first(name):
    factory, ops, model = CASES[name]
    e = find_race(factory, ops, model, attempts=1, threads=2, ops_per_thread=(1, 3),
                  examples=40, repetitions=50, budget="ci", shrink_seconds=0,
                  executor="controlled", seed=1)
    scenario, schedule, before = e.first_failure
    return [str(scenario), str(schedule), before]

twice = sys.argv[1] == "twice"
out = {}
for name in sys.argv[2:]:
    # twice: cold, then on warmed-up (specialised) code after the first campaign
    out[name] = [first(name), first(name)] if twice else [first(name)]
print(json.dumps(out))
"""


def _child(names: list[str], hashseed: str, twice: bool) -> dict[str, list[list[object]]]:
    package_root = Path(nogil_collections.__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONHASHSEED=hashseed,
               PYTHONPATH=os.pathsep.join([str(package_root), str(TESTS)]))
    r = subprocess.run([sys.executable, "-c", CHILD, "twice" if twice else "once", *names],
                       capture_output=True, text=True, timeout=240, env=env, cwd=TESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    result: dict[str, list[list[object]]] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def test_same_seed_same_first_failure_across_processes() -> None:
    # Two of the three one-window races (the stale cache needs ~10x more
    # schedules; test_testing_selfcheck.py compares all three in one process).
    names = ["torn-pair", "lazy-total"]
    a = _child(names, "0", twice=True)
    b = _child(names, "12345", twice=False)
    for name in names:
        cold_a, warm_a = a[name]
        (cold_b,) = b[name]
        assert cold_a == warm_a, (name, cold_a, warm_a)  # one process: cold == warm
        assert cold_a == cold_b, (name, cold_a, cold_b)  # across processes and hash seeds


class _Total:
    """A few lines of Python per call: every line start is a switch point."""

    def __init__(self, initial: int = 0) -> None:
        self.items = [initial]
        self.total_ = initial

    def add(self, v: int) -> None:
        self.items.append(v)
        self.total_ = sum(self.items)

    def total(self) -> int:
        t = self.total_
        return t


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_another_tools_line_events_do_not_change_the_switch_points() -> None:
    # On 3.14t, once another sys.monitoring tool has had LINE events (and has
    # gone), threads started later lost our INSTRUCTION event at the first
    # instruction of every line (thread-local bytecode): the same schedule ran
    # fewer switch points.  Each pool now re-instruments after such a tool.
    from hypothesis import strategies as st

    from nogil_collections.testing import Op, OpTable, Scenario, Step
    from nogil_collections.testing._controlled import controlled_runs
    from nogil_collections.testing._schedule import GuidedChooser

    ops = OpTable("total", (Op("add", st.tuples(st.integers(1, 2))), Op("total")),
                  initial=lambda d: st.just(0))
    scenario = Scenario(0, ((Step("add", (1,)), Step("total")), (Step("total"),)))

    def steps() -> int:
        runs = controlled_runs(scenario, _Total, ops, schedules=1, choosers=[GuidedChooser()])
        return next(iter(runs)).steps

    before = steps()
    # The other tool comes first and goes last, as hypothesis's explain phase
    # wraps each test case (and the pools of a campaign step inside it).
    mon = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
    tool = next(t for t in (3, 2, 1, 0, 5, 4) if mon.get_tool(t) is None)
    mon.use_tool_id(tool, "another tool")
    try:
        mon.register_callback(tool, mon.events.LINE, lambda code, line: None)
        mon.set_events(tool, mon.events.LINE)
        steps()
    finally:
        mon.set_events(tool, 0)
        mon.register_callback(tool, mon.events.LINE, None)
        mon.free_tool_id(tool)
    assert steps() == before

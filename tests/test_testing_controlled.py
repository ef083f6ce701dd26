"""The controlled executor: schedules, strategies, replay, modelled primitives, shrinking."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Any

import pytest
from hypothesis import strategies as st

from _counters import CounterSpec
from nogil_collections import ConcurrentDict, ConcurrentList
from nogil_collections.testing import (
    DICT_OPS,
    LIST_OPS,
    Deadlock,
    ExecutorError,
    NotLinearizable,
    Op,
    OpTable,
    Scenario,
    Schedule,
    Step,
    Strategy,
    as_model,
    check_history,
    default_executor,
    explore,
    gil_enabled,
    replay,
)
from nogil_collections.testing._controlled import controlled_runs
from nogil_collections.testing._schedule import GuidedChooser


class Counter:
    """value = value + 1 in two steps (no sleep: a window of a few bytecodes)."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def incr(self) -> int:
        v = self.value
        self.value = v + 1
        return v + 1

    def get(self) -> int:
        return self.value


OPS = OpTable("counter", (Op("incr"), Op("get", mutates=False)),
              initial=lambda d: st.just(0))
TWO_INCRS = Scenario(0, ((Step("incr"),), (Step("incr"),)))
MODEL = as_model(CounterSpec, OPS)


def _first_failure(strategy: Strategy, scenario: Scenario = TWO_INCRS,
                   schedules: int = 500) -> tuple[int, Any]:
    with contextlib.closing(controlled_runs(scenario, Counter, OPS, schedules=schedules,
                                            strategy=strategy)) as runs:
        for i, run in enumerate(runs, 1):
            if not check_history(run.history, OPS, MODEL):
                return i, run
    raise AssertionError(f"no failure in {schedules} schedules")


# --------------------------------------------------------------------------- schedules


def test_schedule_text_round_trips() -> None:
    s = Schedule((0, 0, 0, 1, 0, 0), "line")
    assert str(s) == "line: 0*3 1 0*2"
    assert Schedule.parse(str(s)) == s
    assert s.segments() == [(0, 3), (1, 1), (0, 2)]
    assert s.switches == 2
    assert Schedule.parse("opcode: (default choices only)") == Schedule((), "opcode")
    with pytest.raises(ValueError):
        Schedule((), "bytecode")
    with pytest.raises(ValueError):
        Strategy("chess")


@pytest.mark.parametrize("kind", ["pct", "random", "exhaustive"])
def test_each_strategy_finds_a_lost_update_and_it_replays(kind: str) -> None:
    n, run = _first_failure(Strategy(kind, seed=7))
    assert n <= 200
    again = replay(run.schedule, TWO_INCRS, Counter, OPS)
    assert again.calls == run.history.calls  # same results, same stamps
    assert again.schedule == run.schedule
    # The text form replays too.
    assert replay(str(run.schedule), TWO_INCRS, Counter, OPS).calls == run.history.calls
    # And the same seed gives the same first failing schedule.
    n2, run2 = _first_failure(Strategy(kind, seed=7))
    assert (n2, run2.schedule) == (n, run.schedule)


def test_every_schedule_replays_exactly() -> None:
    scenario = Scenario(0, ((Step("incr"), Step("get")), (Step("incr"), Step("incr"))))
    runs = list(controlled_runs(scenario, Counter, OPS, schedules=30,
                                strategy=Strategy("random", seed=3)))
    assert len({r.schedule for r in runs}) > 10
    for r in runs:
        assert replay(r.schedule, scenario, Counter, OPS).calls == r.history.calls


def test_exhaustive_search_is_complete_and_terminates() -> None:
    schedules = [r.schedule for r in controlled_runs(
        TWO_INCRS, Counter, OPS, schedules=10_000,
        strategy=Strategy("exhaustive", max_preemptions=1))]
    assert len(schedules) < 10_000  # the search ran out, it was not cut off
    outcomes = set()
    for s in schedules:
        h = replay(s, TWO_INCRS, Counter, OPS)
        outcomes.add(tuple(sorted(c.result for c in h.calls)))
    # Both serial orders and the lost update are among the schedules.
    assert outcomes == {(1, 2), (1, 1)}


def test_line_granularity_has_fewer_switch_points() -> None:
    by = {}
    for g in ("opcode", "line"):
        (run,) = controlled_runs(TWO_INCRS, Counter, OPS, schedules=1, granularity=g)
        by[g] = run.steps
    assert by["line"] < by["opcode"]


def test_segments_say_where_each_thread_stopped() -> None:
    _, run = _first_failure(Strategy("exhaustive"))
    text = "\n".join(str(s) for s in run.segments)
    assert "preempted at test_testing_controlled.py" in text
    assert "Counter.incr" in text
    assert run.segments[-1].reason == "finished"


# --------------------------------------------------------------------------- primitives


class Handoff:
    """A queue, an event, a semaphore and a condition, used across two threads."""

    def __init__(self, initial: Any = None) -> None:
        self.q: queue.Queue[int] = queue.Queue()
        self.ev = threading.Event()
        self.sem = threading.Semaphore(0)
        self.cond = threading.Condition()
        self.ready = False

    def put(self) -> int:
        self.q.put(1)
        self.ev.set()
        self.sem.release()
        with self.cond:
            self.ready = True
            self.cond.notify_all()
        return 0

    def take(self) -> int:
        v = self.q.get()
        self.ev.wait()
        self.sem.acquire()
        with self.cond:
            self.cond.wait_for(lambda: self.ready)
        return int(v)

    def wait_briefly(self) -> bool:
        return self.ev.wait(30.0)  # nobody sets it: times out at once, no real wait


class HandoffSpec:
    def __init__(self, initial: Any = None) -> None:
        pass

    def put(self) -> int:
        return 0

    def take(self) -> int:
        return 1

    def wait_briefly(self) -> bool:
        return False


HANDOFF = OpTable("handoff", (Op("put"), Op("take"), Op("wait_briefly")),
                  initial=lambda d: st.none())


def test_blocking_primitives_are_modelled() -> None:
    scenario = Scenario(None, ((Step("take"),), (Step("put"),)))
    model = as_model(HandoffSpec, HANDOFF)
    runs = list(controlled_runs(scenario, Handoff, HANDOFF, schedules=300,
                                strategy=Strategy("exhaustive", max_preemptions=1)))
    assert len(runs) > 2
    for r in runs:  # no deadlock, no hang, and take always gets the item
        assert check_history(r.history, HANDOFF, model)


def test_a_timed_wait_times_out_when_nothing_else_can_run() -> None:
    scenario = Scenario(None, ((Step("wait_briefly"),),))
    start = time.perf_counter()
    (run,) = controlled_runs(scenario, Handoff, HANDOFF, schedules=1)
    assert run.history.calls[0].result is False
    assert time.perf_counter() - start < 10


def test_waiting_for_an_item_that_never_comes_is_a_deadlock() -> None:
    scenario = Scenario(None, ((Step("take"),), (Step("take"),)))
    with pytest.raises(Deadlock) as exc:
        list(controlled_runs(scenario, Handoff, HANDOFF, schedules=5))
    text = str(exc.value)
    assert "thread 0 waits for" in text and "thread 1 waits for" in text
    assert "Queue.get" in text
    assert "Handoff.take" in text
    assert "no cycle of lock holders" in text
    assert exc.value.schedule is not None


class Spinner:
    def __init__(self, initial: Any = None) -> None:
        self.flag = False

    def spin(self) -> int:
        while not self.flag:
            pass
        return 1

    def release(self) -> int:
        self.flag = True
        return 0


def test_a_spin_loop_that_never_ends_is_a_livelock() -> None:
    ops = OpTable("spin", (Op("spin"), Op("release")))
    scenario = Scenario(None, ((Step("spin"),), (Step("release"),)))
    with pytest.raises(ExecutorError, match="livelock"):
        list(controlled_runs(scenario, Spinner, ops, choosers=[GuidedChooser([0])],
                             max_steps=20_000))
    # Letting the other thread run once ends the spin.
    (run,) = controlled_runs(scenario, Spinner, ops, choosers=[GuidedChooser([0, 1])])
    assert sorted(c.result for c in run.history.calls) == [0, 1]


# --------------------------------------------------------------------------- campaigns


def test_explore_shrinks_the_schedule() -> None:
    with pytest.raises(NotLinearizable) as exc:
        explore(Counter, OPS, CounterSpec, threads=2, ops_per_thread=(1, 2), examples=30,
                repetitions=50, executor="controlled", strategy="random", seed=5,
                shrink_seconds=30)  # a bound, not a duration: it takes well under 1 s
    e = exc.value
    first = e.first_failure
    assert first is not None and first[1] is not None
    assert e.schedule is not None and e.history is not None
    assert e.schedule.switches <= 2 < first[1].switches  # random schedules switch a lot
    assert e.replay().calls == e.history.calls
    assert "seed=5" in str(e)


def test_executor_choice() -> None:
    assert default_executor() == ("controlled" if gil_enabled() else "threads")
    with pytest.raises(ValueError, match="executor"):
        explore(Counter, OPS, CounterSpec, executor="greenlets", examples=1)


def test_controlled_campaigns_honour_the_budget() -> None:
    report = explore(Counter, OPS.only("get"), CounterSpec, threads=2, ops_per_thread=1,
                     examples=3, repetitions=4, executor="controlled", budget="deep", seed=1,
                     initial=st.integers(0, 1000))
    assert report.executor == "controlled"
    # deep: 10x the examples (hypothesis may stop early on a tiny space), 5x the schedules.
    assert report.scenarios > 3
    assert report.runs == report.scenarios * 4 * 5, report
    assert "schedules" in str(report)


# No false positives on the project's containers over the whole op tables:
# their operations are C functions, atomic between two switch points.
@pytest.mark.parametrize(("factory", "ops", "model"), [
    pytest.param(ConcurrentList, LIST_OPS.linearizable(), list, id="ConcurrentList"),
    pytest.param(ConcurrentDict, DICT_OPS, dict, id="ConcurrentDict"),
])
def test_concurrent_containers_pass_under_the_controlled_executor(
        factory: Any, ops: OpTable, model: Any) -> None:
    report = explore(factory, ops, model, threads=(2, 3), ops_per_thread=(1, 3), examples=60,
                     repetitions=10, executor="controlled", seed=11)
    assert report.ops_skipped == []
    assert len(report.ops_seen) >= len(ops) * 2 // 3, report


def test_a_first_execution_has_the_same_switch_points_as_later_ones() -> None:
    # Fresh code objects: on 3.12+ sys.settrace would deliver fewer events the
    # first time they run (lazy instrumentation), and replay would diverge.
    namespace: dict[str, Any] = {}
    exec(compile(
        "class Fresh:\n"
        "    def __init__(self, initial=None):\n"
        "        self.v = 0\n"
        "    def helper(self, x):\n"
        "        return x + 1\n"
        "    def incr(self):\n"
        "        v = self.v\n"
        "        self.v = self.helper(v)\n"
        "        return v\n", "<fresh>", "exec"), namespace)
    ops = OpTable("fresh", (Op("incr"),))
    scenario = Scenario(None, ((Step("incr"),), (Step("incr"),)))
    steps = [r.steps for r in controlled_runs(scenario, namespace["Fresh"], ops,
                                              choosers=[GuidedChooser([])] * 3)]
    assert steps[0] == steps[1] == steps[2] > 20, steps


def test_exhaustive_without_preemptions_runs_each_start_order_once() -> None:
    # Bound 0: one schedule per starting thread, each thread running to its end.
    schedules = [r.schedule for r in controlled_runs(
        TWO_INCRS, Counter, OPS, schedules=100,
        strategy=Strategy("exhaustive", max_preemptions=0))]
    assert len(schedules) == 2
    for s in schedules:
        h = replay(s, TWO_INCRS, Counter, OPS)
        assert sorted(c.result for c in h.calls) == [1, 2]

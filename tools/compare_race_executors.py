"""Side-by-side: the self-check containers under every executor we can run here.

Produces the comparison table of docs/testing.md.  Usage (from the checkout)::

    .venv/bin/python tools/compare_race_executors.py        # 3.14t (.venv-315t, .venv-313t: same)
    .venv-gil/bin/python tools/compare_race_executors.py    # 3.11

interleave-test (3.12+ only) and frontrun (no free-threaded wheel; its sdist
needs Rust crates) are used when importable; they are not project
dependencies: install them into a scratch environment that also sees this
checkout's packages to reproduce those columns.

Each case is one fixed, minimal scenario (the external tools take a fixed
model, not generated scenarios), and the oracle is the same for every tool:
our linearizability check of the history, with invocation/response stamps
from one counter (exact under a controlled scheduler: one thread runs at a
time).  Columns: caught within the budget, schedules (or runs) to the first
failure, seconds to the first failure, and whether the failing schedule
replays to a failure again.  Timings are wall-clock on a shared, loaded
machine: compare within one run only.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import test_testing_selfcheck as sc
from _counters import CounterSpec
from nogil_collections import ConcurrentDict
from nogil_collections.testing import (
    DICT_OPS,
    LIST_OPS,
    Call,
    ExecutorError,
    History,
    OpTable,
    Scenario,
    Step,
    Strategy,
    as_model,
    check_history,
    replay,
    run_scenario,
)
from nogil_collections.testing._controlled import controlled_runs

BUDGET = 1000  # schedules or runs per cell

SD = DICT_OPS.only("setdefault", "get", "__setitem__")
LP = LIST_OPS.only("append", "pop", "insert")
CASES: list[tuple[str, bool, Callable[[Any], Any], OpTable, Any, Scenario]] = [
    ("check-then-act setdefault (sleep)", True, sc.CheckThenActSetdefaultDict, SD, dict,
     Scenario({}, ((Step("setdefault", ("a", 1)),), (Step("setdefault", ("a", 2)),)))),
    ("pop from len() (sleep)", True, sc.LenThenPopList, LP, list,
     Scenario([0, 1], ((Step("pop"),), (Step("pop"),)))),
    ("counter read/write (sleep)", True, sc.RacyCounter, sc.COUNTER_OPS, CounterSpec,
     Scenario(0, ((Step("incr"),), (Step("incr"),)))),
    ("stale cache", True, sc.StaleCacheDict, sc.STALE_OPS, dict,
     Scenario({"a": 0}, ((Step("get", ("a",)), Step("get", ("a",))),
                         (Step("__setitem__", ("a", 1)),)))),
    ("torn pair", True, sc.TornPair, sc.PAIR_OPS, sc.PairSpec,
     Scenario(0, ((Step("get"),), (Step("set", (1,)),)))),
    ("lazy total", True, sc.LazyTotalCounter, sc.TOTAL_OPS, sc.TotalSpec,
     Scenario(0, ((Step("add", (1,)), Step("total"), Step("total")),
                  (Step("add", (2,)), Step("total"))))),
    ("lock-order deadlock", True, sc.Accounts, sc.ACCOUNT_OPS, sc.AccountsSpec,
     Scenario(None, ((Step("transfer", ("a", "b")),), (Step("transfer", ("b", "a")),)))),
    ("locked counter", False, sc.LockedCounter, sc.COUNTER_OPS, CounterSpec,
     Scenario(0, ((Step("incr"), Step("get")), (Step("incr"),)))),
    ("locked setdefault", False, sc.LockedSetdefaultDict, SD, dict,
     Scenario({}, ((Step("setdefault", ("a", 1)),), (Step("setdefault", ("a", 2)),)))),
    ("locked stale cache", False, sc.LockedStaleCacheDict, sc.STALE_OPS, dict,
     Scenario({"a": 0}, ((Step("get", ("a",)), Step("get", ("a",))),
                         (Step("__setitem__", ("a", 1)),)))),
    ("locked torn pair", False, sc.LockedTornPair, sc.PAIR_OPS, sc.PairSpec,
     Scenario(0, ((Step("get"),), (Step("set", (1,)),)))),
    ("ConcurrentDict setdefault", False, ConcurrentDict, SD, dict,
     Scenario({}, ((Step("setdefault", ("a", 1)), Step("get", ("a",))),
                   (Step("setdefault", ("a", 2)),)))),
]

Row = tuple[str, int | None, float, str]  # verdict, schedules to failure, seconds, replays


def ours_threads(factory: Any, ops: OpTable, model: Any, scenario: Scenario) -> Row:
    m = as_model(model, ops)
    start = time.perf_counter()
    done = 0
    try:
        while done < BUDGET:
            for h in run_scenario(scenario, factory, ops, repetitions=50, timeout=2.0):
                done += 1
                if not check_history(h, ops, m):
                    return "caught", done, time.perf_counter() - start, "no (no schedule)"
    except ExecutorError:
        return "hang (timeout)", done + 1, time.perf_counter() - start, "no"
    return "missed", None, time.perf_counter() - start, "-"


def ours_controlled(factory: Any, ops: OpTable, model: Any, scenario: Scenario) -> Row:
    from nogil_collections.testing import Deadlock

    m = as_model(model, ops)
    start = time.perf_counter()
    n = 0
    try:
        with contextlib.closing(controlled_runs(scenario, factory, ops, schedules=BUDGET,
                                                strategy=Strategy("pct", 1))) as runs:
            for n, run in enumerate(runs, 1):
                if not check_history(run.history, ops, m):
                    took = time.perf_counter() - start
                    again = replay(run.schedule, scenario, factory, ops)
                    same = "yes (same history)" if again.calls == run.history.calls else "NO"
                    return "caught", n, took, same
    except Deadlock as d:
        took = time.perf_counter() - start
        try:
            assert d.schedule is not None
            replay(d.schedule, scenario, factory, ops)
            same = "NO"
        except Deadlock:
            same = "yes (same deadlock)"
        return "deadlock", n + 1, took, same
    return "passed", None, time.perf_counter() - start, "-"


class _Recorder:
    """Runs one scenario thread's steps, stamping each call (for the external tools)."""

    def __init__(self, factory: Any, ops: OpTable, scenario: Scenario) -> None:
        self.obj = factory(scenario.initial_copy())
        self.ops = {op.name: op for op in ops.ops}
        self.scenario = scenario
        self.counter = itertools.count(1)
        self.calls: list[Call] = []

    def run_thread(self, t: int) -> None:
        for step in self.scenario.threads[t]:
            op = self.ops[step.op]
            inv = next(self.counter)
            try:
                result, exc = op.runner(self.obj, *step.args), None
            except Exception as e:
                result, exc = None, e
            resp = next(self.counter)
            if exc is None:
                self.calls.append(Call(t, step.op, step.args, inv, resp, op.norm(result)))
            else:
                self.calls.append(Call(t, step.op, step.args, inv, resp, None, type(exc)))

    def linearizable(self, table: OpTable, model: Any) -> bool:
        h = History(self.scenario.initial_copy(), sorted(self.calls, key=lambda c: c.invoke))
        return bool(check_history(h, table, as_model(model, table)))


def run_interleave_test(factory: Any, ops: OpTable, model: Any, scenario: Scenario) -> Row:
    import interleave_test as it

    def model_fn() -> None:
        rec = _Recorder(factory, ops, scenario)
        tasks = [it.spawn(rec.run_thread, t) for t in range(len(scenario.threads))]
        for task in tasks:
            task.join()
        assert rec.linearizable(ops, model), "not linearizable"

    start = time.perf_counter()
    try:
        it.explore(model_fn, iterations=BUDGET, strategy="pct", seed=1)
    except (it.RaceFound, it.DeadlockError, it.HangError) as e:
        took = time.perf_counter() - start
        failure = e.failure
        try:
            it.replay(model_fn, failure)
            same = "NO"
        except it.InterleaveError:
            same = "yes"
        verdict = {"exception": "caught", "deadlock": "deadlock"}.get(failure.kind, failure.kind)
        return verdict, failure.iteration + 1, took, same
    return "passed", None, time.perf_counter() - start, "-"


def run_frontrun(factory: Any, ops: OpTable, model: Any, scenario: Scenario) -> Row:
    import frontrun

    workers = [(lambda t: lambda rec: rec.run_thread(t))(t)
               for t in range(len(scenario.threads))]
    start = time.perf_counter()
    result = frontrun.explore(
        setup=lambda: _Recorder(factory, ops, scenario), workers=workers,
        invariant=lambda rec: rec.linearizable(ops, model), strategy="dpor",
        max_executions=BUDGET, deadlock_timeout=2.0, total_timeout=120.0)
    took = time.perf_counter() - start
    if result.property_holds is False:
        kind = "deadlock" if "deadlock" in (result.explanation or "").lower() else "caught"
        same = f"{result.reproduction_successes}/{result.reproduction_attempts}"
        return kind, result.num_explored, took, same
    if result.property_holds is None:
        return "inconclusive", None, took, "-"
    return "passed", None, took, f"({result.num_explored} explored)"


class ThroughputCounter:
    """A correct, lock-based counter: every schedule runs to the end (no early stop)."""

    def __init__(self, initial: int = 0) -> None:
        import threading

        self._lock = threading.Lock()
        self.value = initial

    def incr(self) -> int:
        with self._lock:
            self.value += 1
            return self.value

    def get(self) -> int:
        return self.value


def throughput(n: int = 500) -> None:
    """Schedules per second, 2 threads x 3 ops (incr, get, incr), every engine available."""
    ops = sc.COUNTER_OPS
    steps = (Step("incr"), Step("get"), Step("incr"))
    scenario = Scenario(0, (steps, steps))
    dict_scenario = Scenario({"a": 0}, (
        (Step("__setitem__", ("a", 1)), Step("get", ("a",)), Step("setdefault", ("b", 2))),
        (Step("get", ("a",)), Step("__setitem__", ("b", 1)), Step("get", ("b",)))))
    rows = []
    for label, factory, table, sc_ in (("locked counter (Python)", ThroughputCounter, ops,
                                        scenario),
                                       ("ConcurrentDict (C ops)", ConcurrentDict, SD,
                                        dict_scenario)):
        for kind in ("pct", "random"):
            for g in ("opcode", "line"):
                start = time.perf_counter()
                with contextlib.closing(controlled_runs(sc_, factory, table, schedules=n,
                                                        strategy=Strategy(kind, 1),
                                                        granularity=g)) as runs:
                    done = sum(1 for _ in runs)
                rows.append((f"controlled {kind}/{g}", label,
                             done / (time.perf_counter() - start)))
        start = time.perf_counter()
        runs_done = len(run_scenario(sc_, factory, table, repetitions=n))
        rows.append(("threads", label, runs_done / (time.perf_counter() - start)))
    with contextlib.suppress(ImportError):
        import interleave_test as it

        for kind in ("pct", "random"):
            for g in ("opcode", "line"):
                def model_fn() -> None:
                    rec = _Recorder(ThroughputCounter, ops, scenario)
                    tasks = [it.spawn(rec.run_thread, t) for t in range(2)]
                    for task in tasks:
                        task.join()

                start = time.perf_counter()
                result = it.explore(model_fn, iterations=n, strategy=kind, seed=1,
                                    granularity=g)
                rows.append((f"interleave-test {kind}/{g}", "locked counter (Python)",
                             result.schedules_run / (time.perf_counter() - start)))
    with contextlib.suppress(ImportError):
        import frontrun

        for strategy in ("dpor", "random"):
            start = time.perf_counter()
            extra: dict[str, Any] = ({"max_executions": n} if strategy == "dpor"
                                     else {"max_attempts": n})
            result = frontrun.explore(
                setup=lambda: _Recorder(ThroughputCounter, ops, scenario),
                workers=[lambda rec: rec.run_thread(0), lambda rec: rec.run_thread(1)],
                invariant=lambda rec: True, strategy=strategy, **extra)
            rows.append((f"frontrun {strategy}", "locked counter (Python)",
                         result.num_explored / (time.perf_counter() - start)))
    print(f"# Python {sys.version.split()[0]}, {n} schedules, load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| engine | scenario (2 threads x 3 ops) | schedules/s |")
    print("|---|---|---|")
    for engine, label, rate in rows:
        print(f"| {engine} | {label} | {rate:.0f} |")


def main() -> None:
    if sys.argv[1:2] == ["--throughput"]:
        throughput()
        return
    tools: list[tuple[str, Callable[..., Row]]] = [
        ("threads", ours_threads), ("controlled", ours_controlled)]
    with contextlib.suppress(ImportError):
        import interleave_test  # noqa: F401

        tools.append(("interleave-test 0.1.0", run_interleave_test))
    with contextlib.suppress(ImportError):
        import frontrun  # noqa: F401

        tools.append(("frontrun 0.7.0", run_frontrun))
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"# Python {sys.version.split()[0]} {'GIL' if gil else 'free-threaded'}, "
          f"budget {BUDGET} schedules/runs per cell, load average {os.getloadavg()[0]:.1f}")
    print("| container | bug? | executor | verdict | schedules to 1st failure | "
          "seconds | replays |")
    print("|---|---|---|---|---|---|---|")
    only = set(sys.argv[1:])
    for name, broken, factory, ops, model, scenario in CASES:
        for tool, fn in tools:
            if only and tool.split()[0] not in only:
                continue
            try:
                verdict, n, secs, same = fn(factory, ops, model, scenario)
            except Exception as e:  # a tool that cannot run a case says so
                verdict, n, secs, same = f"error: {type(e).__name__}: {e}"[:60], None, 0.0, "-"
            if verdict == "missed" and not broken:
                verdict = "passed"
            print(f"| {name} | {'yes' if broken else 'no'} | {tool} | {verdict} | "
                  f"{n if n is not None else '-'} | {secs:.2f} | {same} |", flush=True)


if __name__ == "__main__":
    main()

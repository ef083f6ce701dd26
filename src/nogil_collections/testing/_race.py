"""Race campaigns: generate scenarios, run them on threads, check every history.

:func:`explore` is the engine; :func:`race_test` wraps it as a pytest test.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from nogil_collections.testing._checker import CheckResult, Model, as_model, check_history
from nogil_collections.testing._controlled import (
    Deadlock,
    Replayer,
    controlled_runs,
    replay,
    scenario_seed,
)
from nogil_collections.testing._executor import ExecutorError, gil_enabled, run_scenario
from nogil_collections.testing._history import History
from nogil_collections.testing._ops import OpTable
from nogil_collections.testing._scenario import Scenario, scenarios
from nogil_collections.testing._schedule import Schedule, Strategy
from nogil_collections.testing._shrink import shrink_schedule

__all__ = [
    "Budget",
    "NotLinearizable",
    "RaceReport",
    "check_scenario",
    "current_budget",
    "default_executor",
    "explore",
    "find_race",
    "race_test",
    "set_budget",
]

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- budget


@dataclass(frozen=True)
class Budget:
    """How hard a campaign tries: 'ci' keeps each test's own numbers.

    ``deep`` multiplies examples by 10 and repetitions by 5 (``make race``);
    an integer sets the number of examples and keeps the repetitions.  The
    controlled executor's schedules per scenario scale like repetitions.
    """

    name: str = "ci"
    examples: int | None = None
    example_factor: int = 1
    repetition_factor: int = 1

    @classmethod
    def parse(cls, value: str | int | None) -> Budget:
        if value is None or value == "" or value == "ci":
            return cls("ci")
        if value == "deep":
            return cls("deep", None, 10, 5)
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"--race-budget must be 'ci', 'deep' or a positive integer, not {value!r}"
            ) from None
        if n < 1:
            raise ValueError(f"--race-budget must be at least 1, not {n}")
        return cls(str(n), n)

    def apply(self, examples: int, repetitions: int) -> tuple[int, int]:
        ex = self.examples if self.examples is not None else examples * self.example_factor
        return ex, repetitions * self.repetition_factor


_BUDGET: Budget | None = None


def set_budget(value: str | int | Budget | None) -> Budget:
    """Set the process-wide budget (the pytest plugin calls this for ``--race-budget``)."""
    global _BUDGET
    _BUDGET = value if isinstance(value, Budget) else Budget.parse(value)
    return _BUDGET


def current_budget() -> Budget:
    """The budget set by :func:`set_budget`, else ``$NOGIL_RACE_BUDGET``, else 'ci'."""
    if _BUDGET is not None:
        return _BUDGET
    return Budget.parse(os.environ.get("NOGIL_RACE_BUDGET"))


# --------------------------------------------------------------------------- results


class NotLinearizable(AssertionError):
    """A scenario produced a history that no sequential order explains.

    From the controlled executor, ``schedule`` is the schedule that produced
    ``history``; :meth:`replay` runs it again.  :func:`explore` also sets
    ``first_failure`` (the campaign's first failure before any shrinking:
    scenario, schedule or None, and how many runs/schedules came before it)
    and ``report`` (the campaign so far).
    """

    first_failure: tuple[Scenario, Schedule | None, int] | None = None
    report: RaceReport | None = None

    def __init__(self, scenario: Scenario, result: CheckResult, runs: int,
                 history: History | None = None, schedule: Schedule | None = None,
                 replayer: Callable[[Schedule], History] | None = None) -> None:
        self.scenario = scenario
        self.result = result
        self.runs = runs
        self.history = history
        self.schedule = schedule
        self._replayer = replayer
        super().__init__(self._message())

    def replay(self) -> History:
        """Run the failing schedule again (controlled executor only): the same history."""
        if self.schedule is None or self._replayer is None:
            raise ValueError("only failures found by the controlled executor can be replayed")
        return self._replayer(self.schedule)

    def _message(self) -> str:
        what = "run(s)" if self.schedule is None else "schedule(s)"
        parts = [f"non-linearizable history after {self.runs} {what} of this scenario:\n"
                 f"{self.scenario}\n"]
        if self.schedule is not None:
            parts.append(
                f"schedule ({self.schedule.switches} switch(es); "
                f"nogil_collections.testing.replay(Schedule.parse(...), scenario, factory, ops) "
                f"reproduces it): {self.schedule}")
            if self.history is not None and self.history.segments:
                parts.append("per-thread timeline of the schedule (switch points run, and "
                             "where each thread stopped):")
                parts.extend(f"  {seg}" for seg in self.history.segments)
            parts.append("")
        parts.append(self.result.report())
        return "\n".join(parts)


@dataclass
class RaceReport:
    """What a campaign did: counts for assertions and for the record."""

    scenarios: int = 0
    runs: int = 0
    calls: int = 0
    check_steps: int = 0
    seconds: float = 0.0
    ops_seen: set[str] = field(default_factory=set)
    ops_skipped: list[str] = field(default_factory=list)
    executor: str = "threads"

    def __str__(self) -> str:
        runs = "runs" if self.executor == "threads" else "schedules"
        return (
            f"{self.scenarios} scenarios, {self.runs} {runs}, {self.calls} calls, "
            f"{self.check_steps} search steps in {self.seconds:.2f} s; "
            f"ops covered: {len(self.ops_seen)}; skipped (missing on target): "
            f"{self.ops_skipped or 'none'}"
        )


EXECUTORS = ("threads", "controlled")


def default_executor() -> str:
    """``$NOGIL_RACE_EXECUTOR``, else ``threads`` on free-threaded builds, else ``controlled``.

    With the GIL, real threads interleave only at the interpreter's switch
    interval, so races a few bytecodes wide are found by luck; the controlled
    executor chooses every interleaving itself.
    """
    env = os.environ.get("NOGIL_RACE_EXECUTOR")
    if env:
        if env not in EXECUTORS:
            raise ValueError(f"NOGIL_RACE_EXECUTOR must be one of {EXECUTORS}, not {env!r}")
        return env
    return "controlled" if gil_enabled() else "threads"


def check_scenario(
    scenario: Scenario,
    factory: Callable[[Any], Any],
    ops: OpTable,
    model: Model | type | Callable[[Any], Any] | None = None,
    *,
    repetitions: int = 10,
    timeout: float = 10.0,
    report: RaceReport | None = None,
    executor: str | None = None,
    strategy: str = "pct",
    granularity: str = "opcode",
    seed: int | str | None = 0,
) -> None:
    """Run ``scenario`` ``repetitions`` times (real threads) or under ``repetitions``
    schedules (controlled executor); raise :class:`NotLinearizable` on a bad history.

    With the controlled executor the schedules come from ``strategy``
    (``pct``, ``random`` or ``exhaustive``) seeded from ``seed`` and the
    scenario, so the same seed gives the same schedules, and checking stops
    at the first failing one.  A deadlock raises
    :class:`~nogil_collections.testing.Deadlock`.
    """
    __tracebackhide__ = True
    m = as_model(model, ops)
    kind = executor or default_executor()
    if kind not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, not {kind!r}")
    if report is not None:
        report.executor = kind
    runs: Iterator[tuple[History, Schedule | None]]
    if kind == "threads":
        runs = iter([(h, None) for h in run_scenario(scenario, factory, ops,
                                                    repetitions=repetitions, timeout=timeout)])
        _check_runs(scenario, factory, ops, m, runs, timeout, report)
        return
    plan = Strategy(strategy, scenario_seed(seed, scenario))
    # Closed explicitly: the worker threads trace until then (see controlled_runs).
    with contextlib.closing(controlled_runs(scenario, factory, ops, schedules=repetitions,
                                            strategy=plan, granularity=granularity,
                                            timeout=timeout)) as controlled:
        _check_runs(scenario, factory, ops, m, ((r.history, r.schedule) for r in controlled),
                    timeout, report)


def _check_runs(scenario: Scenario, factory: Callable[[Any], Any], ops: OpTable, m: Model,
                runs: Iterator[tuple[History, Schedule | None]], timeout: float,
                report: RaceReport | None) -> None:
    __tracebackhide__ = True
    for i, (h, schedule) in enumerate(runs, 1):
        result = check_history(h, ops, m)
        if report is not None:
            report.runs += 1
            report.calls += len(h.calls)
            report.check_steps += result.steps
            report.ops_seen.update(c.op for c in h.calls)
        if result.ok is None:
            raise AssertionError(
                "the linearizability search gave up (budget exhausted): use fewer threads or "
                f"ops per thread\n{scenario}"
            )
        if not result:
            replayer = None
            if schedule is not None:
                replayer = functools.partial(_replay_for, scenario, factory, ops, timeout)
            raise NotLinearizable(scenario, result, i, h, schedule, replayer)


def _replay_for(scenario: Scenario, factory: Callable[[Any], Any], ops: OpTable,
                timeout: float, schedule: Schedule) -> History:
    return replay(schedule, scenario, factory, ops, timeout=timeout)


def _shrunk(error: NotLinearizable | Deadlock, factory: Callable[[Any], Any], ops: OpTable,
            model: Model, timeout: float, seconds: float) -> NotLinearizable | Deadlock:
    """The same failure under the smallest schedule found in ``seconds`` (fewer switches,
    earlier switch points); ``error`` itself when nothing smaller fails."""
    scenario = error.scenario
    if error.schedule is None or scenario is None:
        return error
    found: dict[Schedule, NotLinearizable | Deadlock] = {}
    replayer = Replayer(scenario, factory, ops, error.schedule.granularity, timeout)

    def fails(candidate: Schedule) -> Schedule | None:
        try:
            h = replayer.run(candidate).history
        except Deadlock as d:
            if not isinstance(error, Deadlock) or d.schedule is None:
                return None
            found[d.schedule] = d
            return d.schedule
        if isinstance(error, Deadlock):
            return None
        result = check_history(h, ops, model)
        if result or result.ok is None or h.schedule is None:
            return None
        found[h.schedule] = NotLinearizable(
            scenario, result, 1, h, h.schedule,
            functools.partial(_replay_for, scenario, factory, ops, timeout))
        return h.schedule  # type: ignore[no-any-return]

    try:
        best = shrink_schedule(error.schedule, fails, seconds)
    finally:
        replayer.close()
    return found.get(best, error)


def _target_of(factory: Callable[[Any], Any], table: OpTable) -> object | None:
    """An instance (or the type) to filter the table's ops against; None: don't filter."""
    if isinstance(factory, type):
        return factory
    try:
        target: object = factory([] if table.kind == "list" else {})
        return target
    except Exception:
        return None


def explore(
    factory: Callable[[Any], Any],
    ops: OpTable,
    model: Model | type | Callable[[Any], Any] | None = None,
    *,
    threads: int | tuple[int, int] = (2, 3),
    ops_per_thread: int | tuple[int, int] = (1, 3),
    examples: int = 30,
    repetitions: int = 10,
    initial: st.SearchStrategy[Any] | None = None,
    focus: str | None = None,
    timeout: float = 10.0,
    budget: Budget | str | int | None = None,
    filter_ops: bool = True,
    shrink_seconds: float = 10.0,
    hypothesis_settings: settings | None = None,
    executor: str | None = None,
    schedules: int | None = None,
    strategy: str = "pct",
    granularity: str = "opcode",
    seed: int | None = None,
) -> RaceReport:
    """Search for a non-linearizable execution of ``factory``'s containers.

    Hypothesis generates ``examples`` scenarios (scaled by the budget) from
    ``ops``; each runs ``repetitions`` times on real threads; every history is
    checked against ``model`` (default: the builtin matching ``ops.kind``).
    On failure hypothesis shrinks the scenario and :class:`NotLinearizable` is
    raised with the minimal scenario, its per-thread timeline and why no order
    fits.  ``factory(initial)`` builds a container from a builtin list/dict.
    With ``filter_ops``, ops missing on the container are dropped (and listed
    in the report).  ``focus`` names an op every scenario must call (thread 0
    calls it first); if that op is missing on the container the campaign is
    skipped and the report says so (``report.ops_skipped``).

    Shrinking a race is expensive (every candidate runs on threads, and may
    pass by luck), so it is bounded: ``shrink_seconds`` after the first
    failure, new candidates are no longer run (they count as passing) and the
    smallest failing scenario found so far is reported.

    ``executor`` is ``"threads"`` (real threads, ``repetitions`` runs per
    scenario) or ``"controlled"`` (one thread at a time, ``schedules`` per
    scenario, default ``repetitions``, chosen by ``strategy`` at every
    ``granularity`` switch point: see :func:`check_scenario`); default
    :func:`default_executor`.  With the controlled executor a campaign is
    deterministic for a given ``seed`` (scenarios and schedules alike; no
    seed: a random one, printed in the failure), a failure carries its
    schedule, and after hypothesis has shrunk the scenario the schedule is
    shrunk too (fewer switches, earlier switch points), within another
    ``shrink_seconds``.
    """
    kind = executor or default_executor()
    if kind not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, not {kind!r}")
    campaign_seed = seed if seed is not None else random.getrandbits(32)
    b = current_budget() if budget is None else (
        budget if isinstance(budget, Budget) else Budget.parse(budget))
    n_examples, n_reps = b.apply(examples, repetitions if kind == "threads" or schedules is None
                                 else schedules)
    table = ops
    report = RaceReport(executor=kind)
    target = _target_of(factory, ops) if filter_ops else None
    if target is not None:
        report.ops_skipped = ops.missing_on(target)
        table = ops.for_target(target)
    if focus is not None and focus not in table:
        if focus in ops:
            return report  # the focused op does not exist on this container
        raise KeyError(f"focus op {focus!r} is not in the table")
    m = as_model(model, table)
    failures: dict[str, tuple[Exception, TracebackType | None]] = {}
    # Hypothesis runs some test cases more than once (the same choices) and
    # reports a case that passed before and fails now as flaky
    # ("Inconsistent results from replaying a test case ... last: VALID").  A
    # race can do exactly that, and after a first failure the candidates get
    # more repetitions; so each scenario's verdict is its first run's.
    passed: set[str] = set()
    first_failure = [0.0]
    first: list[tuple[Scenario, Schedule | None, int]] = []

    parent = hypothesis_settings if hypothesis_settings is not None else settings()
    base = settings(
        hypothesis_settings,  # parent: None means the active profile
        max_examples=n_examples,
        # No explain phase: after a failure it traces every test case with its
        # own sys.monitoring tool, and on 3.14t/3.15t another tool's LINE events
        # drop some of ours in worker threads (see _controlled._Monitor), so the
        # controlled executor's schedules would depend on what ran before.
        phases=[p for p in parent.phases if p is not Phase.explain],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        report_multiple_bugs=False,
        database=None,
    )

    @hypothesis_seed(campaign_seed)
    @base
    @given(scenarios(table, threads=threads, ops_per_thread=ops_per_thread, initial=initial,
                     focus=focus))
    def campaign(scenario: Scenario) -> None:
        __tracebackhide__ = True
        key = scenario.key()
        known = failures.get(key)
        if known is not None:
            # Races are not deterministic: once a scenario has failed, keep
            # failing it so hypothesis can shrink and replay consistently.
            # Reset to the first traceback: hypothesis identifies a failure
            # by where it was raised, and re-raising must not pile up frames.
            raise known[0].with_traceback(known[1])
        if key in passed:
            return
        if failures and time.perf_counter() - first_failure[0] > shrink_seconds:
            return  # shrink budget spent: keep the smallest failure found so far
        report.scenarios += 1
        # After a first failure, shrink candidates get more runs to reproduce it.
        reps = n_reps * 2 if failures else n_reps
        try:
            check_scenario(scenario, factory, table, m, repetitions=reps, timeout=timeout,
                           report=report, executor=kind, strategy=strategy,
                           granularity=granularity, seed=campaign_seed)
        except (NotLinearizable, ExecutorError) as e:
            if not failures:
                first_failure[0] = time.perf_counter()
                first.append((scenario, getattr(e, "schedule", None), report.runs))
            failures[key] = (e, e.__traceback__)
            raise
        passed.add(key)

    __tracebackhide__ = True
    start = time.perf_counter()
    try:
        campaign()
    except (NotLinearizable, Deadlock) as e:
        # For the record: the first failure, before any shrinking (deterministic
        # for a given seed with the controlled executor), and the campaign so far.
        e.first_failure = first[0] if first else None
        e.report = report
        if kind != "controlled" or e.schedule is None:
            raise
        shrunk = _shrunk(e, factory, table, m, timeout, shrink_seconds)
        shrunk.first_failure = e.first_failure
        shrunk.report = report
        shrunk.args = (f"{shrunk.args[0]}\n(controlled executor, strategy {strategy}, "
                       f"seed={campaign_seed})",)
        raise shrunk from None
    finally:
        report.seconds = time.perf_counter() - start
    return report


def find_race(
    factory: Callable[[Any], Any],
    ops: OpTable,
    model: Model | type | Callable[[Any], Any] | None = None,
    *,
    attempts: int = 3,
    **options: Any,
) -> NotLinearizable:
    """Run up to ``attempts`` independent campaigns (see :func:`explore`) and
    return the first :class:`NotLinearizable` found.

    For tests asserting that a race *is* detected (self-validation, mutants):
    detection is probabilistic, so one campaign that misses with probability
    p becomes ``attempts`` campaigns that all miss with probability p**attempts.
    Raises AssertionError when every campaign passes.
    """
    reports = []
    seed = options.pop("seed", None)
    for attempt in range(attempts):
        if seed is not None:
            options["seed"] = seed + attempt
        try:
            reports.append(explore(factory, ops, model, **options))
        except NotLinearizable as e:
            return e
    raise AssertionError(
        f"no non-linearizable history found in {attempts} campaign(s): "
        + "; ".join(str(r) for r in reports)
    )


def race_test(
    factory: Callable[[Any], Any],
    ops: OpTable,
    model: Model | type | Callable[[Any], Any] | None = None,
    **options: Any,
) -> Callable[[F], F]:
    """Decorator: turn a test function into a race campaign (see :func:`explore`).

    The decorated function takes no argument, or one: the :class:`RaceReport`,
    for extra assertions (e.g. on coverage).  The campaign honours
    ``--race-budget``.  Example::

        @race_test(factory=ConcurrentDict, model=dict, ops=DICT_OPS, examples=40)
        def test_dict_is_linearizable(report):
            assert "compare_and_set" in report.ops_seen
    """

    def decorate(fn: F) -> F:
        import inspect

        takes_report = len(inspect.signature(fn).parameters) >= 1

        @functools.wraps(fn)
        def wrapper() -> None:
            __tracebackhide__ = True
            report = explore(factory, ops, model, **options)
            if takes_report:
                fn(report)
            else:
                fn()

        wrapper.__signature__ = inspect.Signature()  # type: ignore[attr-defined]
        wrapper.race_options = dict(options, factory=factory, ops=ops, model=model)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate

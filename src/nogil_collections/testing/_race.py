"""Race campaigns: generate scenarios, run them on threads, check every history.

:func:`explore` is the engine; :func:`race_test` wraps it as a pytest test.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from nogil_collections.testing._checker import (
    NO_FINAL,
    CheckResult,
    Model,
    _Fresh,
    as_model,
    check_history,
    class_model,
)
from nogil_collections.testing._controlled import (
    Deadlock,
    Replayer,
    controlled_runs,
    replay,
    scenario_seed,
)
from nogil_collections.testing._executor import ExecutorError, gil_enabled, run_scenario
from nogil_collections.testing._history import Call, History
from nogil_collections.testing._ops import OpTable
from nogil_collections.testing._scenario import Scenario, scenarios
from nogil_collections.testing._schedule import Schedule, Strategy
from nogil_collections.testing._shrink import shrink_schedule
from nogil_collections.testing._spec import observe

__all__ = [
    "Budget",
    "NotLinearizable",
    "RaceReport",
    "check_scenario",
    "current_budget",
    "default_executor",
    "explore",
    "find_race",
    "is_pure_python",
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
    ops_available: list[str] = field(default_factory=list)
    pairs_seen: set[tuple[str, str]] = field(default_factory=set)
    """Pairs of ops (sorted names) that ran concurrently: their calls overlapped in
    time in two threads, at least once."""
    methods_skipped: dict[str, str] = field(default_factory=dict)
    """Public methods :meth:`OpTable.from_class` left out, and why."""
    notes: dict[str, str] = field(default_factory=dict)
    """Methods whose arguments were guessed (no type hint, no default)."""

    def __str__(self) -> str:
        runs = "runs" if self.executor == "threads" else "schedules"
        text = (
            f"{self.scenarios} scenarios, {self.runs} {runs}, {self.calls} calls, "
            f"{self.check_steps} search steps in {self.seconds:.2f} s; "
            f"ops covered: {len(self.ops_seen)}; skipped (missing on target): "
            f"{self.ops_skipped or 'none'}"
        )
        if self.methods_skipped:
            text += "; methods skipped: " + ", ".join(
                f"{n} ({why})" for n, why in self.methods_skipped.items())
        return text

    def coverage(self) -> str:
        """Which ops ran, which pairs of ops ran concurrently, and what was left out."""
        ops = self.ops_available or sorted(self.ops_seen)
        lines = [f"executor {self.executor}: {self.scenarios} scenarios, {self.runs} runs"]
        lines.append("ops run: " + (", ".join(o for o in ops if o in self.ops_seen) or "none"))
        never = [o for o in ops if o not in self.ops_seen]
        if never:
            lines.append("ops never run: " + ", ".join(never))
        all_pairs = {tuple(sorted((a, b))) for i, a in enumerate(ops) for b in ops[i:]}
        seen = sorted(self.pairs_seen)
        lines.append(f"pairs run concurrently ({len(seen)} of {len(all_pairs)}): "
                     + (", ".join(f"{a}||{b}" for a, b in seen) or "none"))
        missing = sorted(p for p in all_pairs if p not in self.pairs_seen)
        if missing:
            lines.append("pairs never concurrent: "
                         + ", ".join(f"{a}||{b}" for a, b in missing))
        for name, why in self.methods_skipped.items():
            lines.append(f"skipped {name}: {why}")
        for name, what in self.notes.items():
            lines.append(f"guessed {name}: {what}")
        if self.ops_skipped:
            lines.append("ops missing on the target: " + ", ".join(self.ops_skipped))
        return "\n".join(lines)

    def record(self, history: History) -> None:
        """Count one checked history: calls, ops, and pairs of ops that overlapped."""
        self.runs += 1
        self.calls += len(history.calls)
        self.ops_seen.update(c.op for c in history.calls)
        self.pairs_seen.update(_concurrent_pairs(history.calls))


def _concurrent_pairs(calls: list[Call]) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for i, a in enumerate(calls):
        for b in calls[i + 1:]:
            if a.thread != b.thread and a.invoke < b.response and b.invoke < a.response:
                x, y = sorted((a.op, b.op))
                pairs.add((x, y))
    return pairs


EXECUTORS = ("threads", "controlled")


def is_pure_python(target: object) -> bool:
    """True when ``target`` (a class or an object) has methods written in Python.

    A class defined in Python, or a Python subclass of a C type that
    overrides or adds methods, is; ``list``, ``dict``, ``ConcurrentDict`` and a
    Python subclass adding nothing are not.  Only instance methods and
    properties count (a C type may carry a Python ``__class_getitem__``).
    """
    typ = target if isinstance(target, type) else type(target)
    for klass in typ.__mro__:
        if klass is object:
            continue
        # Not by module name: a class made by exec() without __name__ in its
        # globals has __module__ "builtins".
        for value in vars(klass).values():
            if isinstance(value, (types.FunctionType, property)):
                return True
    return False


def default_executor(target: object | None = None) -> str:
    """The executor a campaign uses when none is named (``executor=None`` or ``"auto"``).

    1. ``$NOGIL_RACE_EXECUTOR`` when set;
    2. ``controlled`` for a pure-Python target (see :func:`is_pure_python`),
       on every build: it finds races in Python code deterministically;
    3. otherwise (a C-implemented target, or none given) ``threads`` on
       free-threaded builds, where real parallelism reaches inside C code,
       and ``controlled`` with the GIL, where real threads interleave only at
       the switch interval.
    """
    env = os.environ.get("NOGIL_RACE_EXECUTOR")
    if env:
        if env not in EXECUTORS:
            raise ValueError(f"NOGIL_RACE_EXECUTOR must be one of {EXECUTORS}, not {env!r}")
        return env
    if target is not None and is_pure_python(target):
        return "controlled"
    return "controlled" if gil_enabled() else "threads"


def _executor_for(executor: str | None, target: object | None) -> str:
    kind = default_executor(target) if executor in (None, "auto") else executor
    assert kind is not None
    if kind not in EXECUTORS:
        raise ValueError(f"executor must be one of {(*EXECUTORS, 'auto')}, not {kind!r}")
    return kind


class _Recording:
    """A factory that remembers the objects it built, to look at them after each run."""

    def __init__(self, factory: Callable[[Any], Any]) -> None:
        self.factory = factory
        self.made: list[Any] = []

    def __call__(self, initial: Any) -> Any:
        obj = self.factory(initial)
        self.made.append(obj)
        return obj

    def take(self) -> list[Any]:
        objs, self.made = self.made, []
        return objs


@dataclass
class _Post:
    """What to check on the object under test itself after each run."""

    observe: Callable[[Any], Any] | None = None  # final state, compared with the model's
    invariant: Callable[[Any], Any] | None = None

    def __bool__(self) -> bool:
        return self.observe is not None or self.invariant is not None


def _verdict(h: History, ops: OpTable, m: Model, obj: Any, post: _Post) -> CheckResult:
    """The history's verdict: linearizable (with the final state), then the invariant."""
    final = NO_FINAL
    if post.observe is not None and obj is not None:
        final = post.observe(obj)
    result = check_history(h, ops, m, final=final)
    if not result or post.invariant is None or obj is None:
        return result
    try:
        ok = post.invariant(obj)
        why = f"invariant {getattr(post.invariant, '__name__', post.invariant)!r} returned {ok!r}"
    except Exception as e:
        ok = False
        why = f"invariant {getattr(post.invariant, '__name__', post.invariant)!r} raised {e!r}"
    if ok:
        return result
    shown = final if final is not NO_FINAL else observe(obj)
    return CheckResult(False, h, m.name, f"{why} on the final state {shown!r}", None,
                       list(h.calls), [], result.partitions, result.steps, kind="invariant")


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
    state: Callable[[Any], Any] | None = None,
    invariant: Callable[[Any], Any] | None = None,
) -> None:
    """Run ``scenario`` ``repetitions`` times (real threads) or under ``repetitions``
    schedules (controlled executor); raise :class:`NotLinearizable` on a bad history.

    With the controlled executor the schedules come from ``strategy``
    (``pct``, ``random`` or ``exhaustive``) seeded from ``seed`` and the
    scenario, so the same seed gives the same schedules, and checking stops
    at the first failing one.  A deadlock raises
    :class:`~nogil_collections.testing.Deadlock`.  ``state`` and
    ``invariant`` are as for :func:`explore`.
    """
    __tracebackhide__ = True
    m, post = _model_and_post(model, ops, state, invariant)
    kind = _executor_for(executor, _target_of(factory, ops))
    if report is not None:
        report.executor = kind
    _run_and_check(scenario, factory, ops, m, post, repetitions=repetitions, timeout=timeout,
                   report=report, kind=kind, strategy=strategy, granularity=granularity,
                   seed=seed)


def _model_and_post(model: Model | type | Callable[[Any], Any] | None, ops: OpTable,
                    state: Callable[[Any], Any] | None,
                    invariant: Callable[[Any], Any] | None) -> tuple[Model, _Post]:
    """The model, and what to compare/check on the object after each run.

    A class model (the table's source class, see ``OpTable.from_class``)
    compares final states by default (``state``, else :func:`observe`);
    another model only when ``state`` is given (applied to both sides).
    """
    if model is None and ops.source is not None:
        return class_model(ops.source, state), _Post(state or observe, invariant)
    m = as_model(model, ops)
    if m.final is not None:
        return m, _Post(state or observe, invariant)
    if state is not None:
        return replace(m, final=state), _Post(state, invariant)
    return m, _Post(None, invariant)


def _run_and_check(scenario: Scenario, factory: Callable[[Any], Any], ops: OpTable, m: Model,
                   post: _Post, *, repetitions: int, timeout: float, report: RaceReport | None,
                   kind: str, strategy: str, granularity: str,
                   seed: int | str | None) -> None:
    __tracebackhide__ = True
    recording = _Recording(factory) if post else None
    run_factory: Callable[[Any], Any] = recording if recording is not None else factory
    if kind == "threads":
        histories = run_scenario(scenario, run_factory, ops, repetitions=repetitions,
                                 timeout=timeout)
        objs: list[Any] = recording.take() if recording is not None else []
        runs = iter([(h, None, objs[i] if i < len(objs) else None)
                     for i, h in enumerate(histories)])
        _check_runs(scenario, factory, ops, m, post, runs, timeout, report)
        return
    plan = Strategy(strategy, scenario_seed(seed, scenario))
    # Closed explicitly: the worker threads trace until then (see controlled_runs).
    with contextlib.closing(controlled_runs(scenario, run_factory, ops, schedules=repetitions,
                                            strategy=plan, granularity=granularity,
                                            timeout=timeout)) as controlled:
        _check_runs(scenario, factory, ops, m, post,
                    ((r.history, r.schedule, _last(recording)) for r in controlled),
                    timeout, report)


def _last(recording: _Recording | None) -> Any:
    if recording is None:
        return None
    objs = recording.take()
    return objs[-1] if objs else None


def _check_runs(scenario: Scenario, factory: Callable[[Any], Any], ops: OpTable, m: Model,
                post: _Post, runs: Iterator[tuple[History, Schedule | None, Any]],
                timeout: float, report: RaceReport | None) -> None:
    __tracebackhide__ = True
    for i, (h, schedule, obj) in enumerate(runs, 1):
        result = _verdict(h, ops, m, obj, post)
        if report is not None:
            report.record(h)
            report.check_steps += result.steps
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
            model: Model, timeout: float, seconds: float,
            post: _Post | None = None) -> NotLinearizable | Deadlock:
    """The same failure under the smallest schedule found in ``seconds`` (fewer switches,
    earlier switch points); ``error`` itself when nothing smaller fails."""
    scenario = error.scenario
    if error.schedule is None or scenario is None:
        return error
    post = post or _Post()
    found: dict[Schedule, NotLinearizable | Deadlock] = {}
    recording = _Recording(factory)
    replayer = Replayer(scenario, recording, ops, error.schedule.granularity, timeout)

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
        result = _verdict(h, ops, model, _last(recording), post)
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


@dataclass
class _Setup:
    factory: Callable[[Any], Any]
    table: OpTable
    model: Model
    post: _Post
    target: object | None


def _setup(factory: Any, ops: OpTable | None, model: Any, state: Callable[[Any], Any] | None,
           invariant: Callable[[Any], Any] | None, overrides: Mapping[str, Any] | None,
           filter_ops: bool) -> tuple[_Setup, RaceReport]:
    """Resolve what a campaign tests: spec-free (``ops`` None: the class is the spec)
    or with a table; the factory runs build objects with; the model; the checks."""
    report = RaceReport()
    if ops is None:
        if not isinstance(factory, type):
            raise TypeError(
                "without ops=, the target must be a class (its public methods become the ops "
                f"and it is its own specification), not {factory!r}")
        try:
            factory()
        except Exception as e:
            raise TypeError(
                f"spec-free testing builds each object as {factory.__qualname__}(), which "
                f"raised {e!r}: give the class a no-argument constructor (a subclass will "
                "do), or pass ops= and a factory") from e
        ops = OpTable.from_class(factory, overrides)
        if not ops.ops:
            raise ValueError(f"no method of {factory.__qualname__} can be tested:\n"
                             f"{ops.describe()}")
    elif overrides is not None:
        raise TypeError("overrides= applies to spec-free use (no ops=); "
                        "use OpTable.from_class(cls, overrides) to build a table")
    if ops.source is not None and factory is ops.source:
        factory = _Fresh(factory)
    report.methods_skipped = ops.skipped_methods
    report.notes = dict(ops.notes)
    table = ops
    target = _target_of(factory, ops)
    if filter_ops and target is not None:
        report.ops_skipped = ops.missing_on(target)
        table = ops.for_target(target)
    m, post = _model_and_post(model, table, state, invariant)
    report.ops_available = table.names
    return _Setup(factory, table, m, post, target), report


def explore(
    factory: type | Callable[[Any], Any],
    ops: OpTable | None = None,
    model: Model | type | Callable[[Any], Any] | None = None,
    *,
    state: Callable[[Any], Any] | None = None,
    invariant: Callable[[Any], Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
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
    """Search for a non-linearizable execution of ``factory``'s objects.

    **Spec-free** (no ``ops``): ``factory`` is a class.  Its public methods
    become the ops (:meth:`OpTable.from_class`, with ``overrides``), each
    run calls them on a fresh ``cls()``, and the class itself is the
    sequential specification: a fresh instance, one call at a time.  Results
    compare by value, exceptions by type and message, and the object's final
    state must equal the model's after the chosen order (``state(obj)``,
    default :func:`~nogil_collections.testing._spec.observe`: its
    attributes, locks left out): this is what catches a lost update no
    read saw.

    **With a table**: hypothesis generates ``examples`` scenarios (scaled by
    the budget) from ``ops``; every history is checked against ``model``
    (default: the table's source class, else the builtin matching
    ``ops.kind``); ``factory(initial)`` builds an object from a builtin
    list/dict.  With ``filter_ops``, optional ops (those of the built-in
    catalogues) missing on the object are dropped and listed in the report;
    an op named explicitly and missing is an error
    (:class:`~nogil_collections.testing.MissingOpError`).  ``focus`` names an
    op every scenario must call (thread 0 calls it first); if that op is an
    optional one missing on the object the campaign is skipped and the
    report says so (``report.ops_skipped``).  ``state`` (applied to both the
    object and the model state) adds the final-state comparison.

    ``invariant(obj)`` is checked on the object after every run: falsy or
    raising is a failure.

    On failure hypothesis shrinks the scenario and :class:`NotLinearizable` is
    raised with the minimal scenario, its per-thread timeline and why no order
    fits.  Shrinking a race is expensive, so it is bounded: ``shrink_seconds``
    after the first failure, new candidates are no longer run (they count as
    passing) and the smallest failing scenario found so far is reported.

    ``executor`` is ``"threads"`` (real threads, ``repetitions`` runs per
    scenario), ``"controlled"`` (one thread at a time, ``schedules`` per
    scenario, default ``repetitions``, chosen by ``strategy`` at every
    ``granularity`` switch point: see :func:`check_scenario`) or ``"auto"``
    / None (:func:`default_executor`: controlled for pure-Python targets).
    A campaign's scenarios (and, with the controlled executor, its schedules)
    are deterministic for a given ``seed``; the default seed is
    ``$NOGIL_RACE_SEED``, else 0.  With the controlled executor a failure
    carries its schedule, and after hypothesis has shrunk the scenario the
    schedule is shrunk too (fewer switches, earlier switch points), within
    another ``shrink_seconds``.  The report counts scenarios, runs, ops run,
    pairs of ops that ran concurrently (``report.coverage()``) and the
    methods left out.
    """
    setup, report = _setup(factory, ops, model, state, invariant, overrides, filter_ops)
    make, table, m, post = setup.factory, setup.table, setup.model, setup.post
    kind = _executor_for(executor, setup.target)
    report.executor = kind
    campaign_seed = seed if seed is not None else _default_seed()
    b = current_budget() if budget is None else (
        budget if isinstance(budget, Budget) else Budget.parse(budget))
    n_examples, n_reps = b.apply(examples, repetitions if kind == "threads" or schedules is None
                                 else schedules)
    if focus is not None and focus not in table:
        if ops is not None and focus in ops:
            return report  # the focused (optional) op does not exist on this container
        raise KeyError(f"focus op {focus!r} is not in the table")
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
            _run_and_check(scenario, make, table, m, post, repetitions=reps,
                           timeout=timeout, report=report, kind=kind, strategy=strategy,
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
        shrunk = _shrunk(e, make, table, m, timeout, shrink_seconds, post)
        shrunk.first_failure = e.first_failure
        shrunk.report = report
        shrunk.args = (f"{shrunk.args[0]}\n(controlled executor, strategy {strategy}, "
                       f"seed={campaign_seed})",)
        raise shrunk from None
    finally:
        report.seconds = time.perf_counter() - start
    return report


def _default_seed() -> int:
    env = os.environ.get("NOGIL_RACE_SEED")
    if env:
        try:
            return int(env)
        except ValueError:
            raise ValueError(f"NOGIL_RACE_SEED must be an integer, not {env!r}") from None
    return 0


def find_race(
    factory: type | Callable[[Any], Any],
    ops: OpTable | None = None,
    model: Model | type | Callable[[Any], Any] | None = None,
    *,
    attempts: int = 3,
    **options: Any,
) -> NotLinearizable | Deadlock | None:
    """The first race found by up to ``attempts`` campaigns (see :func:`explore`), or None.

    ``find_race(MyClass)`` tests a class with nothing else (spec-free, see
    :func:`explore`), so a test can read ``assert find_race(Counter) is None``.
    A race is returned as the :class:`NotLinearizable` (or
    :class:`~nogil_collections.testing.Deadlock`) explore would raise: its
    ``str()`` is the full report.  Campaign ``k`` uses seed ``seed + k``
    (default seed 0): with the controlled executor the answer is the same on
    every run; with real threads a campaign that misses with probability p
    becomes ``attempts`` campaigns that all miss with probability p**attempts.
    """
    seed = options.pop("seed", None)
    base = seed if seed is not None else _default_seed()
    for attempt in range(attempts):
        options["seed"] = base + attempt
        try:
            explore(factory, ops, model, **options)
        except (NotLinearizable, Deadlock) as e:
            return e
    return None


def race_test(
    factory: type | Callable[[Any], Any],
    ops: OpTable | None = None,
    model: Model | type | Callable[[Any], Any] | None = None,
    **options: Any,
) -> Callable[[F], F]:
    """Decorator: turn a test function into a race campaign (see :func:`explore`).

    ``@race_test(MyClass)`` alone tests a class spec-free.  The decorated
    function takes no argument, or one: the :class:`RaceReport`, for extra
    assertions (e.g. on coverage).  The campaign honours ``--race-budget``.
    Example::

        @race_test(ConcurrentDict, DICT_OPS, dict, examples=40)
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

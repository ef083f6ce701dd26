"""The controlled executor: scenario threads run one at a time, in an order we choose.

Each scenario thread is a real thread, but it runs Python code only while it
holds the scheduler's token.  A trace function (``sys.settrace``, with
``f_trace_opcodes`` for bytecode granularity) makes every bytecode, or every
line, of code under test a *switch point*; the harness adds one before each
operation.  At a switch point the thread that holds the token asks the
strategy which thread runs next; if it is another, it hands the token over
(releases that thread's gate) and parks on its own gate.  The decision is
taken by the token holder itself, so staying on the same thread costs no
context switch.  Code inside a C function (a ``ConcurrentDict`` operation, a
builtin ``dict`` method) runs between two switch points: atomic, as its
linearizability claim says.  On 3.13t the other scenario threads are parked
on their gates, so the C containers see one Python thread at a time.

Blocking primitives are modelled (``_primitives``): a thread that would
block tells the scheduler, which runs another thread, and reports a deadlock
(who waits for what, and the cycle) when every unfinished thread waits.

Every run yields its :class:`~nogil_collections.testing._schedule.Schedule`;
:func:`replay` runs the same decisions again and gives the same history.
"""

from __future__ import annotations

import _thread
import contextlib
import linecache
import os
import sys
import threading
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from nogil_collections.testing._executor import ExecutorError
from nogil_collections.testing._history import Call, History
from nogil_collections.testing._ops import OpTable
from nogil_collections.testing._primitives import (
    ModelLock,
    describe_wait,
    modelled_primitives,
    register_thread,
    unregister_thread,
    user_frame,
)
from nogil_collections.testing._primitives import (
    _is_library as is_library,
)
from nogil_collections.testing._scenario import Scenario
from nogil_collections.testing._schedule import (
    GRANULARITIES,
    Chooser,
    GuidedChooser,
    Schedule,
    Strategy,
    default_choice,
)

__all__ = ["Deadlock", "Replayer", "Segment", "controlled_runs", "replay", "scenario_seed"]

MAX_STEPS = 200_000
"""Switch points per run before it is reported as a livelock (a spin loop that never ends)."""

_RUNNABLE, _BLOCKED, _DONE = 0, 1, 2


class _Abort(BaseException):
    """Unwinds a scenario thread out of an aborted run (deadlock, livelock, harness error)."""


class Deadlock(ExecutorError):
    """Every unfinished scenario thread waits on a modelled primitive.

    Like :class:`~nogil_collections.testing.NotLinearizable`, it carries the
    ``scenario`` and ``schedule``, and after :func:`explore` its
    ``first_failure`` and ``report``.
    """

    first_failure: Any = None
    report: Any = None

    def __init__(self, message: str, scenario: Scenario | None = None,
                 schedule: Schedule | None = None) -> None:
        self.scenario = scenario
        self.schedule = schedule
        self.description = message
        super().__init__(self._text())

    def _text(self) -> str:
        parts = [self.description]
        if self.scenario is not None:
            parts.append(f"scenario:\n{self.scenario}")
        if self.schedule is not None:
            parts.append(f"schedule: {self.schedule}")
        return "\n".join(parts)


@dataclass(frozen=True)
class Segment:
    """One stretch of a controlled run: ``thread`` ran ``steps`` switch points, then stopped."""

    thread: int
    steps: int
    stopped_at: str  # where it was preempted or parked ("" when it finished its ops)
    reason: str  # "preempted", "blocked", "finished"

    def __str__(self) -> str:
        where = f" at {self.stopped_at}" if self.stopped_at else ""
        return f"T{self.thread}: {self.steps} step(s), {self.reason}{where}"


def scenario_seed(seed: int | str | None, scenario: Scenario) -> str:
    """A seed for the schedules of one scenario, stable across processes."""
    return f"{seed}:{zlib.crc32(scenario.key().encode())}"


def _location(frame: FrameType | None) -> tuple[str, int, str] | None:
    """Where a thread stopped, captured cheaply (formatted later, outside the run)."""
    if frame is None:
        return None
    code = frame.f_code
    return code.co_filename, frame.f_lineno, getattr(code, "co_qualname", code.co_name)


def _format_location(where: tuple[str, int, str] | None) -> str:
    if where is None:
        return "the start of its next operation"
    filename, lineno, name = where
    line = linecache.getline(filename, lineno).strip() if lineno is not None else ""
    text = f"{os.path.basename(filename)}:{lineno} in {name}"
    return f"{text} `{line}`" if line else text


class _Worker:
    __slots__ = ("active", "blocked_frame", "gate", "index", "slot", "state", "timed",
                 "timed_out", "waiting_on")

    def __init__(self, index: int) -> None:
        self.index = index
        self.gate = _thread.allocate_lock()  # held while the thread is parked
        self.gate.acquire()
        self.state = _RUNNABLE
        self.waiting_on: ModelLock | None = None
        self.blocked_frame: FrameType | None = None
        self.timed = False
        self.timed_out = False
        self.slot: list[Any] = []
        self.active = False  # True while the thread runs an operation: trace new frames


class _Run:
    """The scheduler state of one run.  Only the token holder touches it."""

    def __init__(self, workers: list[_Worker], chooser: Chooser, done: Any,
                 max_steps: int = MAX_STEPS) -> None:
        self.workers = workers
        self.max_steps = max_steps
        self.chooser = chooser
        self.done = done  # released when the run is over
        self.runnable = [w.index for w in workers]
        self.steps = 0
        self.clock = 0
        self.decisions: list[int] = []
        # (thread, steps, where it stopped, why): plain tuples, as nothing the
        # scheduler calls may be code the tracer would trace.
        self.segments: list[tuple[int, int, tuple[str, int, str] | None, str]] = []
        self.segment_start = 0
        self.failure: BaseException | None = None
        for w in workers:
            w.state = _RUNNABLE
            w.waiting_on = None
            w.blocked_frame = None
            w.timed = w.timed_out = False

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    # -- switch points

    def switch(self, thread: int, frame: FrameType | None) -> None:
        """A switch point reached from code under test (``time.sleep``), not from the tracer."""
        w = self.workers[thread]
        active, w.active = w.active, False  # the scheduler's own calls are not traced
        try:
            self.step(thread, frame)
        finally:
            w.active = active

    def step(self, thread: int, frame: FrameType | None) -> None:
        """A switch point: maybe hand the token to another thread (called by the tracer)."""
        self.steps += 1
        if self.failure is not None:
            return  # unwinding an aborted run: no more scheduling
        if self.steps > self.max_steps:
            self.abort(ExecutorError(
                f"a run exceeded {self.max_steps} switch points (livelock: a thread spinning "
                f"on a condition only another thread can change?)"))
            raise _Abort
        runnable = self.runnable
        if len(runnable) == 1 or self.workers[thread].state != _RUNNABLE:
            return
        nxt = self.chooser.pick(runnable, thread, self.steps)
        self.decisions.append(nxt)
        if nxt != thread:
            self._end_segment(thread, _location(frame), "preempted")
            self._transfer(thread, nxt)

    def _end_segment(self, thread: int, where: tuple[str, int, str] | None,
                     reason: str) -> None:
        self.segments.append((thread, self.steps - self.segment_start, where, reason))
        self.segment_start = self.steps

    def _transfer(self, me: int, nxt: int) -> None:
        self.workers[nxt].gate.release()
        self.workers[me].gate.acquire()
        if self.failure is not None:
            raise _Abort

    # -- blocking

    def block(self, thread: int, lock: ModelLock, timed: bool, frame: FrameType | None) -> bool:
        w = self.workers[thread]
        active, w.active = w.active, False  # the scheduler's own calls are not traced
        try:
            return self._block(w, lock, timed, frame)
        finally:
            w.active = active

    def _block(self, w: _Worker, lock: ModelLock, timed: bool, frame: FrameType | None) -> bool:
        thread = w.index
        if self.failure is not None:
            raise _Abort
        w.state = _BLOCKED
        w.waiting_on = lock
        w.blocked_frame = frame
        w.timed = timed
        w.timed_out = False
        self.runnable.remove(thread)
        self._end_segment(thread, _location(user_frame(frame)), "blocked")
        nxt = self._next(thread)
        if nxt is not None and nxt != thread:
            self._transfer(thread, nxt)
        elif self.failure is not None:
            raise _Abort
        return not w.timed_out

    def wake(self, lock: ModelLock) -> None:
        # Only builtins and this module's code run here: nothing the tracer would trace.
        for w in self.workers:
            if w.state == _BLOCKED and w.waiting_on is lock:
                self._make_runnable(w)

    def _make_runnable(self, w: _Worker) -> None:
        w.state = _RUNNABLE
        w.waiting_on = None
        w.blocked_frame = None
        self.runnable.append(w.index)
        self.runnable.sort()

    def finish(self, thread: int) -> None:
        """``thread`` ran all its ops (or unwound): run another, or end the run."""
        w = self.workers[thread]
        if w.state == _RUNNABLE:
            self.runnable.remove(thread)
        w.state = _DONE
        if self.failure is None:
            self._end_segment(thread, None, "finished")
        nxt = self._next(thread)
        if nxt is None:
            self.done.release()
        else:
            self.workers[nxt].gate.release()

    def _next(self, thread: int) -> int | None:
        """Who runs now that ``thread`` cannot; None when the run is over."""
        if self.failure is not None:
            # Unwind the parked threads one at a time.
            for w in self.workers:
                if w.state != _DONE and w.index != thread:
                    return w.index
            return None
        runnable = self.runnable
        if len(runnable) > 1:
            nxt = self.chooser.pick(runnable, None, self.steps)
            self.decisions.append(nxt)
            return nxt
        if runnable:
            return runnable[0]
        waiting = [w for w in self.workers if w.state == _BLOCKED]
        if not waiting:
            return None
        timed = [w for w in waiting if w.timed]
        if timed:
            # Nothing else can happen: the first timed wait times out.
            w = timed[0]
            w.timed_out = True
            self._make_runnable(w)
            return w.index
        self.abort(Deadlock(self._deadlock_report(waiting)))
        return self._next(thread)

    def abort(self, failure: BaseException) -> None:
        if self.failure is None:
            self.failure = failure

    def _deadlock_report(self, waiting: Sequence[_Worker]) -> str:
        lines = ["deadlock: every unfinished scenario thread is blocked"]
        waits_for: dict[int, int] = {}
        for w in waiting:
            assert w.waiting_on is not None
            lock = w.waiting_on
            held = ""
            if lock.holder is not None and lock.kind != "waiter":
                held = f" (held by thread {lock.holder})"
                waits_for[w.index] = lock.holder
            lines.append(f"  thread {w.index} waits for "
                         f"{describe_wait(lock, w.blocked_frame)}{held}")
        cycle = _find_cycle(waits_for)
        if cycle:
            lines.append("cycle: " + " -> ".join(f"thread {t}" for t in cycle))
        else:
            lines.append("no cycle of lock holders: the threads wait for events that no "
                         "running thread will cause")
        return "\n".join(lines)


def _find_cycle(edges: dict[int, int]) -> list[int]:
    for start in sorted(edges):
        path = [start]
        t = edges.get(start)
        while t is not None and t not in path:
            path.append(t)
            t = edges.get(t)
        if t is not None:
            return [*path[path.index(t):], t]
    return []


_OPCODE_EVENT = {"opcode": "opcode", "line": "line"}


def _package_dir(module: str) -> str | None:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return None
    return os.path.dirname(os.path.realpath(spec.origin))


_STDLIB_DIR = os.path.dirname(os.path.realpath(threading.__file__))
_FRAMEWORK_DIRS = tuple(d for d in map(_package_dir, ("hypothesis", "_pytest", "pluggy"))
                        if d is not None)


def untraced(filename: str) -> bool:
    """True for code that is never a switch point: the standard library (outside
    site-packages), the test framework, and this package's machinery.  Their Python
    code runs atomically, like C code; code under test they call back is traced."""
    if is_library(filename) or filename.startswith("<frozen"):
        return True
    real = os.path.realpath(filename)
    if real.startswith(_STDLIB_DIR + os.sep) and "-packages" + os.sep not in real:
        return True
    return real.startswith(_FRAMEWORK_DIRS)


USE_MONITORING = sys.version_info >= (3, 12)
"""How switch points are delivered: ``sys.monitoring`` (3.12+) or ``sys.settrace`` (3.11).

On 3.12+ ``sys.settrace`` is built on ``sys.monitoring`` and instruments a code
object lazily: measured on 3.13t, the first traced execution of a function
delivers about half the opcode events of later ones (17 vs 32 for a small
method), so a schedule recorded on a first execution would not replay.
``sys.monitoring`` with events set globally delivers the same events from the
first execution on (interleave-test makes the same choice, for the same reason).
"""


def _mon() -> Any:
    return sys.monitoring  # type: ignore[attr-defined,unused-ignore]


class _Monitor:
    """The ``sys.monitoring`` tool shared by every live pool (3.12+).

    Events are global (every thread, every code object): the callback returns
    ``DISABLE`` for untraced code, which switches the event off at that code
    location for good, and ignores other threads' code under test.
    """

    def __init__(self) -> None:
        self.users = 0
        self.tool = -1
        self.event = 0
        self.workers: dict[int, tuple[_Pool, _Worker]] = {}
        self.skip: dict[str, bool] = {}

    def acquire(self, granularity: str) -> None:
        mon = _mon()
        event = mon.events.INSTRUCTION if granularity == "opcode" else mon.events.LINE
        if self.users:
            if event != self.event:
                raise ValueError("controlled runs of both granularities cannot overlap")
            self.users += 1
            return
        for tool in (4, 3, 5, 2, 1, 0):  # prefer ids no debugger/coverage/profiler claims
            if mon.get_tool(tool) is None:
                break
        else:
            raise ExecutorError("no free sys.monitoring tool id (6 tools already in use)")
        mon.use_tool_id(tool, "nogil_collections.testing")
        mon.register_callback(tool, event, self._callback)
        mon.set_events(tool, event)
        self.tool, self.event, self.users = tool, event, 1

    def release(self) -> None:
        self.users -= 1
        if self.users:
            return
        mon = _mon()
        mon.set_events(self.tool, 0)
        mon.register_callback(self.tool, self.event, None)
        mon.free_tool_id(self.tool)
        self.tool = -1

    def _callback(self, code: Any, where: int) -> Any:
        name = code.co_filename
        skip = self.skip.get(name)
        if skip is None:
            skip = self.skip[name] = untraced(name)
        if skip:
            return _mon().DISABLE  # by path, so right for every thread
        entry = self.workers.get(_thread.get_ident())
        if entry is None:
            return None  # code under test run by another thread (the factory, a check)
        pool, w = entry
        if w.active:
            run = pool.run
            if run is not None:
                run.step(w.index, sys._getframe(1))
        return None


_MONITOR = _Monitor()


class _Pool:
    """One parked worker thread per scenario thread, reused for every schedule of a scenario."""

    def __init__(self, steps: list[list[tuple[Any, str, tuple[Any, ...]]]],
                 granularity: str) -> None:
        self.steps = steps
        self.n = len(steps)
        self.granularity = granularity
        self.workers = [_Worker(i) for i in range(self.n)]
        self.run: _Run | None = None
        self.obj: Any = None
        self.raw: list[list[tuple[Any, int, int, Any, BaseException | None]]] = [
            [] for _ in range(self.n)]
        self.stop = False
        self.broken = False
        if USE_MONITORING:
            _MONITOR.acquire(granularity)
        self.threads = [threading.Thread(target=self._worker, args=(w,), daemon=True,
                                         name=f"controlled-{w.index}")
                        for w in self.workers]
        for th in self.threads:
            th.start()

    def _tracer(self, w: _Worker) -> Callable[[FrameType, str, Any], Any]:
        opcodes = self.granularity == "opcode"
        event_kind = _OPCODE_EVENT[self.granularity]
        skip: dict[str, bool] = {}
        index = w.index

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == event_kind:
                run = self.run
                if run is not None:
                    run.step(index, frame)
            return local

        def global_(frame: FrameType, event: str, arg: Any) -> Any:
            if not w.active:
                return None  # harness code between operations
            name = frame.f_code.co_filename
            lib = skip.get(name)
            if lib is None:
                lib = skip[name] = untraced(name)
            if lib:
                return None
            if opcodes:
                frame.f_trace_opcodes = True
                frame.f_trace_lines = False
            return local

        return global_

    def _worker(self, w: _Worker) -> None:
        w.slot = register_thread(w.index)
        if USE_MONITORING:
            _MONITOR.workers[_thread.get_ident()] = (self, w)
        else:
            sys.settrace(self._tracer(w))
        try:
            while True:
                w.gate.acquire()
                if self.stop:
                    return
                run = self.run
                assert run is not None
                w.slot[0] = run
                try:
                    self._run_ops(run, w.index)
                except _Abort:
                    pass
                except BaseException as e:  # the harness failed: end the run, report it
                    run.abort(ExecutorError(f"the controlled executor failed: {e!r}"))
                    run.failure.__cause__ = e  # type: ignore[union-attr]
                w.slot[0] = None
                run.finish(w.index)
        finally:
            if USE_MONITORING:
                _MONITOR.workers.pop(_thread.get_ident(), None)
            else:
                sys.settrace(None)
            unregister_thread()

    def _run_ops(self, run: _Run, t: int) -> None:
        w = self.workers[t]
        out = self.raw[t]
        obj = self.obj
        for op, _name, args in self.steps[t]:
            runner = op.runner
            run.step(t, None)
            inv = run.tick()
            w.active = True
            try:
                result = runner(obj, *args)
                exc = None
            except Exception as e:
                result, exc = None, e
            finally:
                w.active = False
            resp = run.tick()
            out.append((op, inv, resp, result, exc))

    def execute(self, obj: Any, chooser: Chooser, timeout: float, max_steps: int) -> _Run:
        for r in self.raw:
            r.clear()
        self.obj = obj
        done = _thread.allocate_lock()
        done.acquire()
        run = _Run(self.workers, chooser, done, max_steps)
        self.run = run
        self.workers[0].gate.release()  # thread 0 starts; its first switch point decides
        if not done.acquire(True, timeout):
            self.broken = True
            raise ExecutorError(
                f"a controlled run did not finish within {timeout} s: a scenario thread is "
                "blocked outside the scheduler's control (a primitive created before the run, "
                "or a C call that waits for another thread) or loops inside C code")
        self.run = None
        self.obj = None
        return run

    def close(self) -> None:
        try:
            if self.broken:
                return  # a worker is stuck for good: leave the daemon threads behind
            self.stop = True
            for w in self.workers:
                w.gate.release()
            for th in self.threads:
                th.join(5)
        finally:
            if USE_MONITORING:
                _MONITOR.release()


@dataclass
class ControlledRun:
    """One schedule's outcome: the history, the schedule, and the per-thread segments."""

    history: History
    schedule: Schedule
    segments: tuple[Segment, ...]
    steps: int


def _segments(run: _Run) -> tuple[Segment, ...]:
    return tuple(Segment(t, k, _format_location(where) if reason != "finished" else "", reason)
                 for t, k, where, reason in run.segments)


def _collect(scenario: Scenario, pool: _Pool, segments: tuple[Segment, ...],
             schedule: Schedule) -> History:
    calls = []
    for t, records in enumerate(pool.raw):
        for (op, name, args), (_, inv, resp, result, exc) in zip(pool.steps[t], records,
                                                                 strict=True):
            if exc is None:
                calls.append(Call(t, name, args, inv, resp, op.norm(result)))
            else:
                calls.append(Call(t, name, args, inv, resp, None, type(exc), str(exc)))
    calls.sort(key=lambda c: c.invoke)
    return History(scenario.initial_copy(), calls, schedule=schedule,
                   segments=tuple(str(s) for s in segments))


class _TrackingChooser(Chooser):
    """Wraps a strategy's chooser, remembering which choices were the default one."""

    def __init__(self, inner: Chooser) -> None:
        self.inner = inner
        self.defaults: list[bool] = []

    def pick(self, runnable: Sequence[int], current: int | None, step: int) -> int:
        choice = self.inner.pick(runnable, current, step)
        self.defaults.append(choice == default_choice(runnable, current))
        return choice


def _trimmed(chooser: _TrackingChooser, run: _Run, granularity: str) -> Schedule:
    """The run's decisions without the trailing ones a replay would take by default."""
    end = len(chooser.defaults)
    while end and chooser.defaults[end - 1]:
        end -= 1
    return Schedule(tuple(run.decisions[:end]), granularity)


def controlled_runs(
    scenario: Scenario,
    factory: Callable[[Any], Any],
    table: OpTable,
    *,
    schedules: int = 100,
    strategy: Strategy | None = None,
    granularity: str = "opcode",
    timeout: float = 10.0,
    choosers: Iterable[Chooser] | None = None,
    max_steps: int = MAX_STEPS,
) -> Generator[ControlledRun, None, None]:
    """Run ``scenario`` under up to ``schedules`` controlled schedules, yielding each outcome.

    The schedules come from ``strategy`` (default: PCT seeded from the
    scenario), or from ``choosers`` when given.  Each run builds a fresh
    container with ``factory(initial)``; blocking primitives are modelled
    during the factory call and the run.  Raises :class:`Deadlock` when a
    schedule deadlocks and :class:`ExecutorError` on a livelock, a hang
    outside the scheduler's control or a harness failure.  Stop iterating
    early to stop running schedules, and close the generator then (the
    worker threads keep tracing enabled until it is closed, and on 3.12+
    tracing in any thread slows every thread down).
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, not {granularity!r}")
    ops = {op.name: op for op in table.ops}
    steps = [[(ops[s.op], s.op, s.args) for s in thread] for thread in scenario.threads]
    if strategy is None:
        strategy = Strategy("pct", scenario_seed(0, scenario))
    source: Iterator[Chooser] = iter(choosers) if choosers is not None \
        else strategy.choosers(len(steps))
    pool = _Pool(steps, granularity)
    try:
        for _ in range(schedules):
            inner = next(source, None)
            if inner is None:
                return  # an exhaustive search is complete
            chooser = _TrackingChooser(inner)
            with modelled_primitives():
                obj = factory(scenario.initial_copy())
                run = pool.execute(obj, chooser, timeout, max_steps)
            strategy.observed(run.steps)
            schedule = _trimmed(chooser, run, granularity)
            if run.failure is not None:
                failure = run.failure
                if isinstance(failure, Deadlock):
                    raise Deadlock(failure.description, scenario, schedule)
                raise ExecutorError(f"{failure}\nscenario:\n{scenario}\nschedule: {schedule}"
                                    ) from failure.__cause__
            segments = _segments(run)
            yield ControlledRun(_collect(scenario, pool, segments, schedule), schedule,
                                segments, run.steps)
    finally:
        pool.close()


class Replayer:
    """Replays many schedules of one scenario on one set of worker threads (for shrinking:
    starting threads and switching tracing on and off per replay is slow on 3.13t)."""

    def __init__(self, scenario: Scenario, factory: Callable[[Any], Any], table: OpTable,
                 granularity: str, timeout: float = 10.0) -> None:
        self._args = (scenario, factory, table, granularity, timeout)
        self._feed: list[Chooser] = []
        self._runs: Generator[ControlledRun, None, None] | None = None

    def _source(self) -> Iterator[Chooser]:
        while self._feed:
            yield self._feed.pop()

    def run(self, schedule: Schedule) -> ControlledRun:
        """The outcome of ``schedule``; raises :class:`Deadlock` if it deadlocks."""
        scenario, factory, table, granularity, timeout = self._args
        if self._runs is None:
            self._runs = controlled_runs(scenario, factory, table, schedules=sys.maxsize,
                                         granularity=granularity, timeout=timeout,
                                         choosers=self._source())
        self._feed.append(GuidedChooser(schedule.decisions))
        try:
            return next(self._runs)
        except BaseException:
            self._runs = None  # the generator has finished (and closed its pool)
            raise

    def close(self) -> None:
        if self._runs is not None:
            self._runs.close()
            self._runs = None


def replay(
    schedule: Schedule | str,
    scenario: Scenario,
    factory: Callable[[Any], Any],
    table: OpTable,
    *,
    timeout: float = 10.0,
) -> History:
    """Run ``scenario`` once under ``schedule`` and return the history.

    On the same interpreter, the same scenario and the same code under test
    this reproduces the recorded history exactly (same results, same stamps).
    A deadlocking schedule raises :class:`Deadlock` again.
    """
    if isinstance(schedule, str):
        schedule = Schedule.parse(schedule)
    with contextlib.closing(controlled_runs(
            scenario, factory, table, schedules=1, granularity=schedule.granularity,
            timeout=timeout, choosers=[GuidedChooser(schedule.decisions)])) as runs:
        for outcome in runs:
            return outcome.history
    raise AssertionError("unreachable: one schedule was requested")

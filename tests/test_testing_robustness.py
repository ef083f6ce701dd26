"""The race tester never crashes on the code it tests (issue 22, item 1).

Whatever frame a scenario thread stops in (an instruction without a line
number, a generator or coroutine frame, a frame with an exception in
flight), and whatever the code under test returns or raises (objects whose
``repr`` fails, exceptions whose ``str`` fails, ``SystemExit``), both
executors report: a failure of our own formatting gives a less detailed
report, never an exception of its own.  The everyday code shapes are in
``tests/test_testing_code_shapes.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st

from nogil_collections.testing import (
    DICT_OPS,
    ExecutorError,
    NotLinearizable,
    Op,
    OpTable,
    Scenario,
    Step,
    Strategy,
    check_scenario,
    explore,
)
from nogil_collections.testing._controlled import (
    _format_location,
    _location,
    controlled_runs,
)

EXECUTORS = ["threads", "controlled"]


class TryGetDict(dict[Any, Any]):
    """The dict subclass of issue 22: ``get`` through try/except KeyError."""

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


GET_SET = DICT_OPS.only("get", "__setitem__")


def test_every_stop_of_a_try_except_get_is_reported() -> None:
    # Every schedule with up to 2 preemptions of get(missing) against a
    # write stops the reader at every instruction of the except handler,
    # among them one with no line number (frame.f_lineno is None): before
    # the fix, formatting that segment raised TypeError from linecache.
    scenario = Scenario({}, ((Step("get", ("a",)),), (Step("__setitem__", ("a", 1)),)))
    stops = set()
    runs = controlled_runs(scenario, TryGetDict, GET_SET, schedules=2000,
                           strategy=Strategy("exhaustive"))
    for run in runs:
        stops.update(s.stopped_at for s in run.segments if s.thread == 0)
    assert any("`except KeyError:`" in s for s in stops), stops
    assert any("`return default`" in s for s in stops), stops
    # The whole check passes (the container is correct) on the same schedules.
    check_scenario(scenario, TryGetDict, GET_SET, dict, repetitions=2000,
                   executor="controlled", strategy="exhaustive")


def test_a_location_without_a_line_number_is_described() -> None:
    def handler() -> Any:
        try:
            raise KeyError("x")
        except KeyError:
            return _location(__import__("sys")._getframe())

    code, _line, lasti = handler()
    text = _format_location((code, None, lasti))
    assert "no line number" in text and "handler" in text, text
    assert "test_testing_robustness.py" in text
    # Garbage in, a degraded description out: never an exception.
    assert _format_location((None, None, -1)) == "an unknown location (no code object)"
    assert _format_location((object(), 3, 0)) == "an unknown location (no code object)"
    assert _format_location((code, 10**9, 0)).endswith(".handler")  # no such line: no source
    assert _format_location(None) == "the start of its next operation"


class Unprintable:
    """A value whose ``repr`` raises."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unprintable) and other.v == self.v

    def __hash__(self) -> int:
        return self.v

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class BadStrError(Exception):
    def __str__(self) -> str:
        raise ValueError("no str for you")


class RacyBox:
    """``put`` reads then writes: a lost update, with results that do not print."""

    def __init__(self, initial: int = 0) -> None:
        self.v = initial

    def put(self, d: int) -> Unprintable:
        v = self.v
        self.v = v + d
        return Unprintable(v + d)

    def fail(self) -> None:
        raise BadStrError()


class BoxSpec(RacyBox):
    pass


BOX_OPS = OpTable("box", (Op("put", st.tuples(st.integers(1, 2))), Op("fail", mutates=False)),
                  initial=lambda d: st.just(0))


@pytest.mark.parametrize("executor", EXECUTORS)
def test_unprintable_results_and_exceptions_are_reported(executor: str) -> None:
    scenario = Scenario(0, ((Step("put", (1,)), Step("fail")), (Step("put", (2,)),)))
    try:
        for _ in range(3 if executor == "threads" else 1):
            check_scenario(scenario, RacyBox, BOX_OPS, BoxSpec, repetitions=100,
                           executor=executor, seed=0)
    except NotLinearizable as e:
        text = str(e)  # formatting the report does not raise
        assert "<Unprintable object (repr failed: RuntimeError)>" in text
    else:
        # Real threads may miss the race; the history was still recorded and checked.
        assert executor == "threads"
    # The exception with the failing __str__ is recorded with a stand-in text.
    from nogil_collections.testing import run_scenario

    h = run_scenario(scenario, RacyBox, BOX_OPS)[0]
    fail = next(c for c in h.calls if c.op == "fail")
    assert fail.exc_type is BadStrError
    assert fail.exc_text == "<str() of BadStrError failed: ValueError>"


class Quitter:
    def __init__(self, initial: Any = None) -> None:
        pass

    def quit(self) -> None:
        raise SystemExit(3)

    def noop(self) -> None:
        pass


QUIT_OPS = OpTable("quit", (Op("noop", mutates=False), Op("quit", mutates=False)),
                   initial=lambda d: st.none())


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_operation_raising_system_exit_is_named(executor: str) -> None:
    scenario = Scenario(None, ((Step("noop"),), (Step("quit"),)))
    with pytest.raises(ExecutorError) as exc:
        check_scenario(scenario, Quitter, QUIT_OPS, Quitter, repetitions=3, executor=executor)
    text = str(exc.value)
    assert "operation quit() in thread 1 raised SystemExit: 3" in text, text
    assert isinstance(exc.value.__cause__, SystemExit)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_failing_normalize_is_named(executor: str) -> None:
    ops = OpTable("box", (Op("put", st.tuples(st.integers(1, 2)), normalize=lambda r: 1 / 0),),
                  initial=lambda d: st.just(0))
    with pytest.raises(ExecutorError, match="the normalize= function of op 'put' raised "
                       "ZeroDivisionError on the result <Unprintable object"):
        explore(RacyBox, ops, BoxSpec, threads=2, ops_per_thread=1, examples=2,
                repetitions=1, executor=executor, seed=0)


EXEC_SOURCE = '''
class ExecCounter:
    def __init__(self, initial=0):
        self.value = initial

    def incr(self):
        try:
            v = self.value
        finally:
            pass
        self.value = v + 1
        return self.value

    def get(self):
        return self.value
'''


def test_code_without_source_is_reported() -> None:
    # exec'd code: linecache has no source for "<exec-counter>"; the report
    # gives the file name, line and function, without the source text.
    namespace: dict[str, Any] = {}
    exec(compile(EXEC_SOURCE, "<exec-counter>", "exec"), namespace)
    from _counters import CounterSpec

    ops = OpTable("counter", (Op("incr"), Op("get", mutates=False)),
                  initial=lambda d: st.just(0))
    scenario = Scenario(0, ((Step("incr"),), (Step("incr"),)))
    with pytest.raises(NotLinearizable) as exc:
        check_scenario(scenario, namespace["ExecCounter"], ops, CounterSpec, repetitions=200,
                       executor="controlled", seed=0)
    assert "<exec-counter>:" in str(exc.value) and "in ExecCounter.incr" in str(exc.value)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_normalize_failing_on_the_model_result_is_named(executor: str) -> None:
    # normalize= works on the real result (run wraps it) but not on the
    # model's: before the fix the checker's _step let the AttributeError out
    # as an anonymous traceback (the executors already named theirs).
    class Wrapped:
        def __init__(self, v: Any) -> None:
            self.v = v

    ops = OpTable("dict", (
        Op("setitem", st.tuples(st.just(1), st.integers(0, 3)),
           run=lambda d, k, v: d.__setitem__(k, v), model=lambda d, k, v: d.__setitem__(k, v),
           requires=("__setitem__",)),
        Op("get", st.tuples(st.just(1)), run=lambda d, k: Wrapped(d.get(k)),
           model=lambda d, k: d.get(k), normalize=lambda r: r.v, mutates=False),
    ))
    # The model's result is None or an int, whichever order the checker tries
    # first (the threads executor's real order varies): neither has .v.
    with pytest.raises(ExecutorError, match=r"the normalize= function of op 'get' raised "
                       r"AttributeError on the model's result (None|[0-3])"):
        explore(lambda init: dict(init), ops, dict, threads=2, ops_per_thread=1, examples=3,
                repetitions=1, executor=executor, seed=0)

"""The race-testing machinery: stamps, executor, op tables, scenarios, budget, pytest plugin."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from nogil_collections.testing import (
    ABSENT,
    DICT_OPS,
    LIST_OPS,
    STAMP_COUNTER_KIND,
    Budget,
    ExecutorError,
    Op,
    OpTable,
    Scenario,
    Step,
    container_absent,
    current_budget,
    explore,
    get_table,
    make_stamp_counter,
    race_test,
    register_table,
    run_scenario,
    scenarios,
    set_budget,
    switch_interval,
)
from nogil_collections.testing._executor import gil_enabled

# --------------------------------------------------------------------------- stamps


def _atomics_importable() -> bool:
    try:
        import atomics  # noqa: F401
    except Exception:
        return False
    return True


def test_default_stamp_counter_choice() -> None:
    expected = "atomics" if _atomics_importable() else "count"
    assert expected == STAMP_COUNTER_KIND


@pytest.mark.parametrize("kind", ["atomics", "count", "lock"])
def test_stamps_are_unique_and_increasing_across_threads(kind: str) -> None:
    if kind == "atomics" and not _atomics_importable():
        pytest.skip("atomics does not load on this interpreter (documented fallback: count)")
    _, stamp = make_stamp_counter(kind)
    per_thread = 5000
    n = 4
    out: list[list[int]] = [[] for _ in range(n)]
    barrier = threading.Barrier(n)

    def work(t: int) -> None:
        barrier.wait()
        mine = out[t]
        for _ in range(per_thread):
            mine.append(stamp())

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    everything = [s for seq in out for s in seq]
    assert len(set(everything)) == n * per_thread  # no duplicates: no lost increments
    for seq in out:
        assert all(a < b for a, b in itertools.pairwise(seq))  # monotonic per thread


def test_unknown_stamp_kind() -> None:
    with pytest.raises(ValueError, match="unknown stamp counter"):
        make_stamp_counter("rdtsc")


# --------------------------------------------------------------------------- executor


def test_executor_records_each_thread_in_order() -> None:
    scenario = Scenario([1], (
        (Step("append", (2,)), Step("pop", ()), Step("pop", ())),
        (Step("__getitem__", (5,)),),
    ))
    [h1, h2] = run_scenario(scenario, list, LIST_OPS, repetitions=2)
    for h in (h1, h2):
        h.validate()
        assert h.initial == [1]
        t0 = h.by_thread(0)
        assert [c.op for c in t0] == ["append", "pop", "pop"]
        [t1] = h.by_thread(1)
        assert t1.exc_type is IndexError and t1.exc_text == "list index out of range"
        assert all(c.invoke < c.response for c in h.calls)


def test_executor_results_are_normalized_and_containers_fresh() -> None:
    built: list[Any] = []

    def factory(initial: Any) -> Any:
        obj = list(initial)
        built.append(obj)
        return obj

    scenario = Scenario([3], ((Step("copy", ()),), (Step("append", (4,)),)))
    histories = run_scenario(scenario, factory, LIST_OPS, repetitions=3)
    assert len(built) == 3 and len({id(b) for b in built}) == 3
    for h in histories:
        [copy_call] = [c for c in h.calls if c.op == "copy"]
        assert type(copy_call.result) is list and copy_call.result in ([3], [3, 4])


def test_executor_reports_a_hung_thread() -> None:
    release = threading.Event()

    def blocker(obj: Any) -> None:
        release.wait(5)

    table = OpTable("x", (Op("block", run=blocker), Op("noop", run=lambda obj: None)))
    scenario = Scenario(None, ((Step("block"),), (Step("noop"),)))
    t0 = time.perf_counter()
    with pytest.raises(ExecutorError, match="did not finish"):
        run_scenario(scenario, lambda init: None, table, timeout=0.3)
    release.set()
    assert time.perf_counter() - t0 < 4


def test_executor_reports_harness_failure() -> None:
    scenario = Scenario(None, ((Step("noop"),), (Step("noop"),)))
    table = OpTable("x", (Op("noop", run=lambda obj: None, normalize=lambda v: 1 / 0),))
    # A failing normalize= is an error of the op table: named, with its cause.
    with pytest.raises(ExecutorError, match="normalize= function of op 'noop' raised "
                       "ZeroDivisionError") as exc:
        run_scenario(scenario, lambda init: None, table)
    assert isinstance(exc.value.__cause__, ZeroDivisionError)


def test_switch_interval_is_shrunk_and_restored() -> None:
    before = sys.getswitchinterval()
    seen: list[float] = []
    table = OpTable("x", (Op("probe", run=lambda obj: seen.append(sys.getswitchinterval())),))
    run_scenario(Scenario(None, ((Step("probe"),),)), lambda init: None, table, interval=1e-5)
    assert sys.getswitchinterval() == before
    if gil_enabled():
        assert seen[0] == pytest.approx(1e-5)
    else:
        assert seen[0] == before  # irrelevant without the GIL: left alone
    with switch_interval(None):
        assert sys.getswitchinterval() == before


# --------------------------------------------------------------------------- tables


def test_tables_filter_by_target() -> None:
    assert LIST_OPS.missing_on(list) == ["snapshot", "append_if_absent", "compare_and_set",
                                         "update", "heappush", "heappop", "heappushpop",
                                         "heapreplace", "heapify"]
    assert DICT_OPS.missing_on(dict) == ["compare_and_set", "get_or_insert", "update_item",
                                         "pop_if", "snapshot"]
    assert "snapshot" not in LIST_OPS.for_target(list)
    assert len(LIST_OPS.for_target(list)) == len(LIST_OPS) - 9


def test_table_editing_and_registry() -> None:
    assert LIST_OPS.only("append", "pop").names == ["append", "pop"]
    assert "append" not in LIST_OPS.without("append")
    with pytest.raises(KeyError):
        LIST_OPS.only("nope")
    assert "iter" in LIST_OPS and "iter" not in LIST_OPS.linearizable()
    assert all(not op.mutates for op in DICT_OPS.read_only())
    extra = LIST_OPS.plus(Op("append", run=lambda obj, v: None))
    assert len(extra) == len(LIST_OPS) and extra["append"].run is not None
    with pytest.raises(ValueError, match="duplicate"):
        OpTable("x", (Op("a"), Op("a")))
    assert get_table("list") is LIST_OPS and get_table("dict") is DICT_OPS
    mine = OpTable("mine", (Op("a"),))
    register_table("test-mine", mine)
    assert get_table("test-mine") is mine
    with pytest.raises(ValueError, match="already registered"):
        register_table("test-mine", mine)
    with pytest.raises(KeyError, match="no op table"):
        get_table("nothing-here")


def test_absent_sentinel_translation() -> None:
    class WithOwn(dict[Any, Any]):
        ABSENT = object()

    assert container_absent(WithOwn()) is WithOwn.ABSENT
    assert container_absent({}) is ABSENT
    assert repr(ABSENT) == "ABSENT"


@settings(max_examples=40, deadline=None)
@given(scenarios(DICT_OPS, threads=(2, 4), ops_per_thread=(1, 3)))
def test_scenarios_respect_bounds(scenario: Scenario) -> None:
    assert 2 <= len(scenario.threads) <= 4
    assert all(1 <= len(t) <= 3 for t in scenario.threads)
    assert all(s.op in DICT_OPS for t in scenario.threads for s in t)
    assert isinstance(scenario.initial, dict)
    assert str(scenario).startswith("initial: ")


@settings(max_examples=30, deadline=None)
@given(scenarios(LIST_OPS, threads=(2, 3), ops_per_thread=(0, 2), focus="update"))
def test_scenarios_focus_on_one_op(scenario: Scenario) -> None:
    assert scenario.threads[0][0].op == "update"


def test_explore_focus_on_a_missing_op_is_skipped() -> None:
    report = explore(list, LIST_OPS, list, focus="snapshot", examples=3, repetitions=1)
    assert "snapshot" in report.ops_skipped and report.runs == 0
    with pytest.raises(KeyError, match="focus op"):
        explore(list, LIST_OPS, list, focus="nope", examples=3, repetitions=1)


def test_scenario_bounds_are_validated() -> None:
    with pytest.raises(ValueError):
        scenarios(LIST_OPS, threads=(3, 2))
    with pytest.raises(ValueError, match="empty"):
        scenarios(LIST_OPS.only(), threads=2).example()


# --------------------------------------------------------------------------- budget


def test_budget_parsing() -> None:
    assert Budget.parse("ci").apply(30, 10) == (30, 10)
    assert Budget.parse("deep").apply(30, 10) == (300, 50)
    assert Budget.parse("7").apply(30, 10) == (7, 10)
    assert Budget.parse(None).name == "ci"
    for bad in ("shallow", "0", "-3"):
        with pytest.raises(ValueError):
            Budget.parse(bad)


def test_budget_is_process_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    old = current_budget()
    try:
        set_budget("deep")
        assert current_budget().name == "deep"
    finally:
        set_budget(old)


def test_explore_honours_an_integer_budget() -> None:
    report = explore(list, LIST_OPS.only("append", "pop"), list, examples=50, repetitions=2,
                     budget=3)
    assert report.scenarios <= 3 and report.runs <= 6


calls_seen: list[Any] = []


@race_test(factory=list, model=list, ops=LIST_OPS.only("append", "len"), examples=5,
           repetitions=2, budget="ci")
def test_race_test_decorator_passes_the_report(report: Any) -> None:
    calls_seen.append(report)
    assert report.scenarios >= 1 and report.ops_seen <= {"append", "len"}


def test_race_test_decorated_function_has_no_fixture_parameters() -> None:
    import inspect

    assert not inspect.signature(test_race_test_decorator_passes_the_report).parameters
    assert test_race_test_decorator_passes_the_report.race_options["examples"] == 5  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- pytest plugin


def _run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["nogil_collections.testing.pytest_plugin"]\n'
    )
    (tmp_path / "test_budget.py").write_text(textwrap.dedent("""
        from nogil_collections.testing import current_budget

        def test_budget(race_budget):
            print("BUDGET", current_budget().name, race_budget.apply(10, 4))
    """))
    # The child imports the same nogil_collections as this process: the
    # installed package, or an in-place build if PYTHONPATH points at src/.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider",
         "-o", "addopts=", str(tmp_path), *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )


def test_plugin_race_budget_option(tmp_path: Path) -> None:
    r = _run_pytest(tmp_path, "--race-budget=deep")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BUDGET deep (100, 20)" in r.stdout
    assert "race testing: budget=deep" in r.stdout
    r = _run_pytest(tmp_path, "--race-budget=oops")
    assert r.returncode != 0
    assert "--race-budget must be" in r.stderr


def test_find_race_returns_none_when_nothing_is_found() -> None:
    from nogil_collections.testing import find_race

    assert find_race(list, LIST_OPS.only("append", "len"), list, attempts=2, examples=3,
                     repetitions=1, budget="ci") is None

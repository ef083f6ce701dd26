"""The benchmark harness at tiny sizes, so that it cannot rot (measures nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `benchmarks` is a package at the repository root
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import realcode, registry, report, scaling  # noqa: E402


def test_cli_smoke_writes_table_json_markdown_and_plots(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--no-progress", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "== scaling: dict-like" in proc.stdout
    assert "churn writes, reads/writes 90/10 churn" in proc.stdout
    assert "== single-thread cost per operation (list-like), C loop" in proc.stdout
    assert "== single-thread cost, Python loop" in proc.stdout
    assert "ceiling check: NOT MEASURED" in proc.stdout  # the smoke plan has no tuple partial

    result = json.loads((tmp_path / "latest.json").read_text())
    env_info = result["environment"]
    assert env_info["machine"]["cpu_count"] >= 1
    assert env_info["interpreter"]["version"] == sys.version.split()[0]
    assert "nogil_collections" in env_info["packages"]
    names = {i["name"] for i in result["implementations"]}
    assert {
        "dict",
        "dict+Lock",
        "ConcurrentDict",
        "list",
        "list+Lock",
        "ConcurrentList",
        "tuple",
    } <= names
    # Every available implementation of the case's family was measured at every thread count.
    points = {(p["impl"], p["family"], p["threads"]) for p in result["scaling"]}
    for impl in result["implementations"]:
        if impl["by_name_only"]:  # real-code-only variants: checked below
            continue
        if impl["available"] and (impl["family"] == "seq" or "setitem" in impl["ops"]):
            assert {(impl["name"], impl["family"], t) for t in (1, 2)} <= points, impl["name"]
        if not impl["available"]:
            assert impl["note"], f"{impl['name']} unavailable without a reason"
    assert all(p["median_ops_per_s"] > 0 for p in result["scaling"])
    ops = {(c["impl"], c["op"]) for c in result["single_thread"]}
    assert {("dict", "getitem"), ("dict", "pop"), ("list", "append"), ("list", "len")} <= ops
    assert {m["impl"] for m in result["memory"]} >= {"dict", "list", "tuple"}
    shapes = {(c["impl"], c["shape"]) for c in result["single_thread_python_loop"]}
    assert {("list", "append"), ("ConcurrentList", "append"), ("list", "pop()"),
            ("ConcurrentList", "pop()"), ("dict", "d.pop(k)+refill"),
            ("ConcurrentDict", "d.pop(k)+refill"), ("ConcurrentList", "iter 1000"),
            ("ConcurrentList", "x in lst (16)")} <= shapes
    assert result["ceiling_check"]["quotable"] is False

    md = (tmp_path / "latest.md").read_text()
    assert "| implementation | 1T med/best | 2T med/best |" in md
    assert "#### Headline" in md
    assert "== headline" in proc.stdout
    # The real-code suite: labelled headline next to the C-loop one, loops, applications.
    assert "== headline (container only, C loop)" in proc.stdout
    assert "== headline (real code, Python loop" in proc.stdout
    assert "#### Headline (real code: Python loop)" in md
    assert "== real code: applications" in proc.stdout
    loops = {(r["impl"], r["access"], r["mix"], r["threads"]) for r in result["realcode_loops"]}
    assert {("ConcurrentDict", "handle", "read", 2), ("dict", "local", "read", 2),
            ("ConcurrentList", "handle", "read", 1), ("tuple", "local", "read", 2)} <= loops
    assert ("dict+Lock", "partial", "churn", 2) in loops
    # The immortal variants: reached by name only, never in the container-only suites.
    assert {("ConcurrentDict.immortal()", "local", "read", 2),
            ("ConcurrentList.immortal()", "local", "read", 2)} <= loops
    assert not {(i, a) for i, a, _, _ in loops if i.endswith(".immortal()")} - {
        (i, a) for i in ("ConcurrentDict.immortal()", "ConcurrentList.immortal()")
        for a in ("local", "global", "attr", "closure")}
    assert not any(p["impl"].endswith(".immortal()") for p in result["scaling"])
    assert all(r["median_ops_per_s"] > 0 for r in result["realcode_loops"])
    apps = {(a["workload"], a["threads"]) for a in result["realcode_apps"]}
    assert {("memo cache", 1), ("memo cache", 2), ("word count", 1), ("word count", 2),
            ("registry", 1), ("registry", 2)} <= apps
    plots = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    if report.can_plot():
        assert plots == ["throughput-100-0.png", "throughput-90-10.png"]
    else:  # no matplotlib wheel for this interpreter (3.15t): skipped, and said so
        assert plots == []
        assert "plots skipped: matplotlib is not installed" in md


class _Placeholder:
    """Like the placeholder classes that exist before the real containers land."""

    def __init__(self, *args: object) -> None:
        pass


def test_registry_turns_a_non_working_class_into_a_skip_with_reason() -> None:
    impl = registry._finish(registry.Impl("fake", registry.MAP, _Placeholder, "ours"))
    assert not impl.available
    assert "not subscriptable" in impl.note


def test_registry_probes_missing_operations() -> None:
    class NoLen(dict):  # type: ignore[type-arg]
        def __len__(self) -> int:
            raise TypeError("no len")

    impl = registry._finish(registry.Impl("nolen", registry.MAP, NoLen, "peer"))
    assert impl.available
    assert "len" not in impl.ops
    assert {"getitem", "setitem", "get", "contains", "iter", "pop"} <= impl.ops


@pytest.mark.parametrize("mix", [100, 99, 90, 50])
def test_schedule_has_the_advertised_write_share(mix: int) -> None:
    case = scaling.Case(registry.MAP, mix, "str", "immortal", "local")
    sched = scaling._schedule(case, 100 - mix)
    assert len(sched) == scaling.CYCLE
    assert sum(sched) == 100 - mix


@pytest.mark.parametrize("keytype", ["str", "int"])
@pytest.mark.parametrize("name", ["dict", "ConcurrentDict"])
def test_churn_writes_delete_and_reinsert_without_changing_the_contents(
    keytype: str, name: str
) -> None:
    impl = next(i for i in registry.load_implementations() if i.name == name)
    assert "delitem" in impl.ops
    case = scaling.Case(registry.MAP, 50, keytype, "immortal", "local", "churn")
    assert scaling.applicable(impl, case)
    container, keys, values = scaling.build_container(impl, case, 64)
    before = dict(zip(keys, values, strict=True))
    rate = scaling.run_threads(container, case, keys, values, threads=2, cycles_per_thread=2)
    assert rate > 0
    assert dict(container.items()) == before  # the churn keys are gone again, nothing else moved
    assert not set(scaling.churn_keys(case, 0)) & set(scaling.churn_keys(case, 1))
    assert not set(scaling.churn_keys(case, 0)) & set(keys)


@pytest.mark.parametrize("key", ["key:0000001", 1_000_003, 10**30])
def test_local_copies_are_equal_but_distinct_objects(key: object) -> None:
    copy = scaling._local_copy(key)
    assert copy == key
    assert copy is not key


@pytest.mark.parametrize(
    ("access", "opname", "name"),
    [("local", "LOAD_FAST", "c"), ("global", "LOAD_GLOBAL", "C"), ("attr", "LOAD_ATTR", "c"),
     ("closure", "LOAD_DEREF", "c"), ("handle", "LOAD_FAST", "h")],
)
def test_real_code_loops_reach_the_container_as_named(access: str, opname: str, name: str) -> None:
    import dis
    import types

    for mix in realcode.MIXES:
        fn = realcode.compile_loop(access, mix, {"C": None})
        code = fn.__code__
        if access == "closure":
            code = next(c for c in code.co_consts if isinstance(c, types.CodeType))
        ops = list(dis.get_instructions(code))
        # 3.14 spells subscription BINARY_OP with the '[]' operator (no BINARY_SUBSCR).
        assert any(i.opname.endswith("SUBSCR") or (i.opname == "BINARY_OP" and i.argrepr == "[]")
                   for i in ops), (access, mix)
        # 3.13 fuses two local loads (LOAD_FAST_LOAD_FAST, argval a tuple).
        loads = [i for i in ops if i.opname.startswith(opname)
                 and (i.argval == name or (isinstance(i.argval, tuple) and name in i.argval))]
        assert loads, (access, mix, [(i.opname, i.argval) for i in ops])


def _fake_result(impl: str, access: str, threads: int, rate: float) -> realcode.Result:
    cell = realcode.Cell(impl, "ceiling", registry.SEQ, access, "read")
    return realcode.Result(cell, threads, 1, [rate])


@pytest.mark.parametrize(
    ("two", "quotable"), [(1.69, False), (1.70, True), (1.95, True), (2.30, True), (2.31, False)]
)
def test_the_ceiling_check_marks_a_run_that_did_not_scale_not_quotable(
    two: float, quotable: bool
) -> None:
    results = [_fake_result("tuple", "partial", 1, 1.0), _fake_result("tuple", "partial", 2, two),
               _fake_result("tuple", "local", 2, 9.0)]
    check = realcode.ceiling_check(results)
    assert check.quotable is quotable
    assert ("NOT QUOTABLE" in check.line()) is not quotable
    assert ("baseline was disturbed" in check.line()) is (two > 2.3)
    assert not realcode.ceiling_check(results[1:]).quotable  # no 1-thread figure: not measured
    # A machine busy at the start is never quotable, whatever the tuple did in a lull.
    busy = {"machine": {"load_average_at_start": [2.5, 2.0, 2.0], "usable_cpus": 2}}
    quiet = {"machine": {"load_average_at_start": [1.02, 1.3, 1.5], "usable_cpus": 2}}
    assert not realcode.ceiling_check(results, busy).quotable
    assert "busy" in realcode.ceiling_check(results, busy).line()
    assert realcode.ceiling_check(results, quiet).quotable is quotable


def test_real_code_loops_compute_with_every_mix() -> None:
    impls = [i for i in registry.load_implementations() if i.name in ("dict", "ConcurrentDict")]
    plan = {mix: realcode.ACCESSES for mix in realcode.MIXES}
    results = realcode.measure_loops(impls, plan, [1, 2], 64, 1, 0.001, 2)
    cells = {(r.cell.impl, r.cell.access, r.cell.mix) for r in results}
    assert ("ConcurrentDict", "handle", "churn") in cells
    assert ("dict", "handle", "read") not in cells  # handles are ours only
    assert ("dict", "closure", "90/10") in cells


def test_an_application_that_computes_a_wrong_answer_fails() -> None:
    app = next(a for a in realcode.applications() if a.variant == "dict + Lock"
               and a.workload == "word count")
    assert realcode.run_app_once(app, 2, 1) > 0

    def miscount(state: object, tid: int, reps: int) -> int:
        ops = app.worker(state, tid, reps)
        if reps:
            # Under the application's own lock: an unlocked += could lose
            # an update to the other thread's locked one, and the two
            # errors could cancel out (seen once on 3.15t in CI).
            with state["lock"]:  # type: ignore[index]
                state["d"]["w000"] += 1  # type: ignore[index]
        return ops

    wrong = realcode.App(app.workload, app.variant, app.role, app.setup, miscount, app.check)
    with pytest.raises(AssertionError, match="word count"):
        realcode.run_app_once(wrong, 2, 1)
    memo = next(a for a in realcode.applications() if "handle" in a.variant
                and a.workload == "memo cache")
    assert realcode.run_app_once(memo, 2, 1) > 0


def test_registry_check_catches_torn_reads_and_a_stale_table() -> None:
    for app in realcode.applications():
        if app.workload == "registry":
            assert realcode.run_app_once(app, 2, 1) > 0
    last = dict.fromkeys(realcode.REGISTRY_KEYS, 3)
    state = {"torn": [], "version": [3], "current": lambda: last}
    realcode._registry_check(state, 2, 1)
    with pytest.raises(AssertionError, match="torn"):
        realcode._registry_check(dict(state, torn=[500]), 2, 1)
    stale = dict.fromkeys(realcode.REGISTRY_KEYS, 3)
    stale[realcode.REGISTRY_KEYS[0]] = 2
    with pytest.raises(AssertionError, match="last version"):
        realcode._registry_check(dict(state, current=lambda: stale), 2, 1)


def test_thread_owned_binds_the_container_without_partial_on_315() -> None:
    import functools
    import operator
    import sys
    import types

    from benchmarks import harness

    get = harness.thread_owned(operator.getitem, (10, 20, 30))
    assert get(1) == 20 and list(map(get, [2, 0])) == [30, 10]
    # 3.15's partial increfs its (shared) function on every call: there it
    # wraps the thread's own bound method (benchmarks/harness.py, thread_owned).
    assert type(get) is functools.partial
    inner = types.MethodType if sys.version_info >= (3, 15) else type(operator.getitem)
    assert type(get.func) is inner

"""Peer race tools on the race-bug corpus (tests/_race_bugs.py): the table of docs/testing.md.

Runs racecheck, interleave-test, pyvft and pytest-run-parallel on every bug of the corpus and on
its locked version, with the driver a user of each tool writes: the racy
pair of calls and what to assert afterwards (``PEER_CASES``).  None of them
is a project dependency: install them into a throwaway environment of a
free-threaded interpreter and run this script there (it does not import
nogil_collections)::

    python3.14t -m venv /tmp/peers && /tmp/peers/bin/pip install racecheck \\
        interleave-test pyvft pytest pytest-run-parallel
    /tmp/peers/bin/python tools/compare_race_peers.py

Our own column comes from tests/test_testing_race_bugs.py (``find_race(cls)``).
A tool that is not importable is reported as such.  Times are wall clock on
the machine of the run: compare within a run only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests")
sys.path.insert(0, TESTS)

import _race_bugs as bugs  # noqa: E402

Op = Callable[[Any], Any]
Check = Callable[[Any, list[Any]], bool]

# bug name -> (setup after construction, the racy calls (one per thread), the
# user's assertion on (object, results)).  Exceptions and hangs count as caught.
PEER_CASES: dict[str, tuple[Callable[[Any], None], tuple[Op, ...], Check]] = {
    "lost_update": (lambda o: None, (lambda o: o.increment(), lambda o: o.increment()),
                    lambda o, r: o.value == 2),
    "get_or_set": (lambda o: None,
                   (lambda o: o.get_or_set("a", 1), lambda o: o.get_or_set("a", 2)),
                   lambda o, r: r[0] == r[1]),
    "lazy_init": (lambda o: None, (lambda o: o.register(1), lambda o: o.register(2)),
                  lambda o, r: sorted(o.items()) == [1, 2]),
    "torn_pair": (lambda o: None, (lambda o: o.set(1, 1), lambda o: o.get()),
                  lambda o, r: r[1] in ((0, 0), (1, 2))),
    "stale_cache": (lambda o: None, (lambda o: o.doubled(), lambda o: o.set_price(2)),
                    lambda o, r: o.doubled() == 4),
    "publication": (lambda o: None, (lambda o: o.publish(1), lambda o: o.read()),
                    lambda o, r: r[1] in (-1, 1)),
    "iterator": (lambda o: o.add("a", 1), (lambda o: o.add("b", 1), lambda o: o.total()),
                 lambda o, r: True),
    "deadlock": (lambda o: None, (lambda o: o.a_to_b(1), lambda o: o.b_to_a(1)),
                 lambda o, r: True),
    "compare_then_set": (lambda o: None, (lambda o: o.compare_and_set(0, 1),
                                          lambda o: o.compare_and_set(0, 2)),
                         lambda o, r: r.count(True) == 1),
    "bank": (lambda o: None, (lambda o: o.transfer("a", "b", 3),
                              lambda o: o.transfer("a", "b", 3)),
             lambda o, r: sum(o.balances.values()) == 20 and min(o.balances.values()) >= 0),
    "duplicate_id": (lambda o: None, (lambda o: o.allocate(), lambda o: o.allocate()),
                     lambda o, r: r[0] != r[1]),
    "check_then_remove": (lambda o: None, (lambda o: o.discard("a"), lambda o: o.discard("a")),
                          lambda o, r: True),
}

TRIALS = int(os.environ.get("RACECHECK_TRIALS", "400"))
"""racecheck trials per cell (its default is 2000; 400 keeps the table's run short)."""

LINES = {"racecheck": 6, "interleave-test": 8, "pyvft": 7, "pytest-run-parallel": 13}
"""Lines a user writes per bug (imports, the driver, the assertion), counted on the
drivers below; find_race(cls) is 1 (3 with the import and the def)."""


def _racecheck(cls: type, name: str) -> str:
    import racecheck

    setup_more, ops, check = PEER_CASES[name]

    def setup() -> tuple[Any, list[Any]]:
        obj = cls()
        setup_more(obj)
        return obj, [None] * len(ops)

    def wrap(i: int, op: Op) -> Callable[[tuple[Any, list[Any]]], None]:
        def run(state: tuple[Any, list[Any]]) -> None:
            state[1][i] = op(state[0])
        return run

    try:
        result = racecheck.check(setup=setup, ops=[wrap(i, op) for i, op in enumerate(ops)],
                                 invariant=lambda s: check(s[0], s[1]), trials=TRIALS, seed=0,
                                 timeout=5.0, warn_on_gil=False)
    except TimeoutError:
        return "caught (hang: TimeoutError)"
    if result.ok:
        return f"passed ({result.trials} trials)"
    return f"caught (trial {result.violations[0].trial})"


def _interleave(cls: type, name: str) -> str:
    import interleave_test as it

    setup_more, ops, check = PEER_CASES[name]

    def model() -> None:
        obj = cls()
        setup_more(obj)
        tasks = [it.spawn(op, obj) for op in ops]
        for t in tasks:
            t.join()
        assert check(obj, [t.result() for t in tasks])

    try:
        result = it.explore(model, iterations=500, seed=0, strategy="pct", timeout=10.0)
    except it.DeadlockError:
        return "caught (deadlock)"
    except it.RaceFound as e:
        failure = getattr(e, "failure", None)
        where = getattr(failure, "iteration", None)
        return "caught" + (f" (schedule {where})" if where is not None else "")
    except it.InterleaveError as e:
        return f"error: {type(e).__name__}"
    return "passed" if getattr(result, "ok", True) else "caught"


PYVFT_DRIVER = """\
import sys, threading
sys.path.insert(0, {tests!r})
import _race_bugs as m
o = m.{cls}()
PEER = __import__("compare_race_peers").PEER_CASES[{name!r}]
PEER[0](o)
ts = [threading.Thread(target=op, args=(o,), daemon=True) for op in PEER[1]]
for t in ts: t.start()
for t in ts: t.join(10)
print("HUNG" if any(t.is_alive() for t in ts) else "DONE", flush=True)
"""


def _pyvft(cls: type, name: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "driver.py")
        with open(path, "w") as f:
            f.write(PYVFT_DRIVER.format(tests=TESTS, cls=cls.__qualname__, name=name))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), TESTS]))
        try:
            r = subprocess.run([sys.executable, "-m", "pyvft", path], capture_output=True,
                               text=True, timeout=60, env=env)
        except subprocess.TimeoutExpired:
            return "caught (hang)"
    out = r.stdout + r.stderr
    if "HUNG" in out:
        return "caught (hang, 10 s)"
    for line in out.splitlines():
        if "DATA RACE" in line and "DETECTED" in line:
            count = "".join(ch for ch in line.split("pyvft:")[-1] if ch.isdigit())
            if count and count != "0":
                return f"caught ({count} data race(s))"
    if r.returncode != 0:
        return f"error (exit {r.returncode})"
    return "passed"


RUN_PARALLEL_TEST = """\
import threading
import _race_bugs as m
from compare_race_peers import PEER_CASES
setup, ops, check = PEER_CASES[{name!r}]
barrier = threading.Barrier(2)
state = {{}}

def test_bug(thread_index):
    if thread_index == 0:
        state["obj"] = m.{cls}(); setup(state["obj"]); state["r"] = [None, None]
    barrier.wait()
    state["r"][thread_index] = ops[thread_index](state["obj"])
    barrier.wait()
    ok = check(state["obj"], state["r"])
    barrier.wait()
    assert ok
"""


def _run_parallel(cls: type, name: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "test_driver.py")
        with open(path, "w") as f:
            f.write(RUN_PARALLEL_TEST.format(cls=cls.__qualname__, name=name))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), TESTS]))
        try:
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                "--parallel-threads=2", f"--iterations={TRIALS}", path],
                               capture_output=True, text=True, timeout=60, env=env, cwd=tmp)
        except subprocess.TimeoutExpired:
            return "caught (hang)"
    tail = (r.stdout.strip().splitlines() or [""])[-1]
    if r.returncode == 0:
        return f"passed ({TRIALS} iterations)"
    if "failed" in tail or "error" in tail:
        return "caught"
    return f"error (exit {r.returncode})"


TOOLS: dict[str, Callable[[type, str], str]] = {
    "racecheck": _racecheck, "interleave-test": _interleave, "pyvft": _pyvft,
    "pytest-run-parallel": _run_parallel}


def main() -> None:
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"# {sys.version.split()[0]} {'GIL' if gil else 'free-threaded'}")
    available = {}
    for tool in TOOLS:
        module = {"racecheck": "racecheck", "interleave-test": "interleave_test",
                  "pyvft": "pyvft", "pytest-run-parallel": "pytest_run_parallel"}[tool]
        try:
            __import__(module)
            available[tool] = True
        except ImportError:
            available[tool] = False
            print(f"# {tool}: not importable")
    print("| bug | " + " | ".join(t for t in TOOLS if available[t]) + " |")
    locked_tools = os.environ.get("PEER_LOCKED_TOOLS", ",".join(TOOLS)).split(",")
    for bug in bugs.BUGS:
        for cls, label in ((bug.buggy, bug.name), (bug.locked, f"{bug.name} (locked)")):
            cells = []
            for tool, run in TOOLS.items():
                if not available[tool]:
                    continue
                if cls is bug.locked and tool not in locked_tools:
                    cells.append("not run")
                    continue
                start = time.perf_counter()
                try:
                    verdict = run(cls, bug.name)
                except Exception as e:
                    verdict = f"error: {e!r}"[:60]
                cells.append(f"{verdict}, {time.perf_counter() - start:.1f} s")
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:  # only these tools: compare_race_peers.py pyvft racecheck
        TOOLS = {k: v for k, v in TOOLS.items() if k in sys.argv[1:]}
    main()

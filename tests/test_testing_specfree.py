"""Spec-free use of nogil_collections.testing (issue 22, items 2-4).

``find_race(cls)``, ``explore(cls)`` and ``@race_test(cls)`` with nothing else:
ops from the public methods, the class as its own model, final states
compared, optional invariant, coverage; explicit ops are explicit; the model
is never the ``run`` wrapper; the executor is chosen for the user.
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import strategies as st

from _race_bugs import Counter, GetOrSetCache, LockedCounter, LockedGetOrSetCache
from nogil_collections import ConcurrentDict
from nogil_collections.testing import (
    LIST_OPS,
    Call,
    History,
    MissingOpError,
    NotLinearizable,
    Op,
    OpTable,
    RaceReport,
    SpecError,
    check_history,
    class_model,
    default_executor,
    explore,
    find_race,
    gil_enabled,
    is_pure_python,
    observe,
    race_test,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


# --------------------------------------------------------------------------- the docs


def test_docs_open_with_the_three_line_example() -> None:
    text = DOCS.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert text.index("```python") < text.index("\n## "), "the example must come first"
    test_code, counter_code = blocks[0], blocks[1]
    lines = [ln for ln in test_code.splitlines() if ln.strip()]
    assert lines[0] == "from nogil_collections.testing import find_race"
    assert len(lines) <= 3, lines
    # Run it: it fails on the racy Counter the docs show, and passes once locked.
    racy: dict[str, Any] = {}
    exec(compile(counter_code + test_code, "docs/testing.md", "exec"), racy)
    with pytest.raises(AssertionError):
        racy["test_counter"]()
    fixed: dict[str, Any] = {}
    exec(compile(test_code, "docs/testing.md", "exec"), fixed)
    fixed["Counter"] = LockedCounter
    fixed["test_counter"]()


# --------------------------------------------------------------------------- ops


class Everything:
    """Every kind of public member from_class must sort out."""

    limit = 3  # a data attribute: not a method, not an op

    def __init__(self) -> None:
        self.items: list[Any] = []

    def typed(self, x: int, name: str, flag: bool) -> int:
        self.items.append((x, name, flag))
        return x

    def defaulted(self, x=2):  # type: ignore[no-untyped-def]
        self.items.append(x)

    def untyped(self, x):  # type: ignore[no-untyped-def]
        self.items.append(x)

    def literal(self, which: Literal["l", "r"], n: int | None) -> None:
        self.items.append((which, n))

    def kwonly(self, *, x: int) -> None:
        self.items.append(x)

    def star(self, *args: int, **kwargs: int) -> int:
        return len(args)

    @property
    def size(self) -> int:
        return len(self.items)

    @staticmethod
    def helper(x: int) -> int:
        return x

    @classmethod
    def build(cls) -> Everything:
        return cls()

    def walk(self) -> Any:
        yield from self.items

    async def later(self) -> None:
        pass

    def _private(self) -> None:
        pass


def test_from_class_derives_ops_and_says_what_it_skipped() -> None:
    table = OpTable.from_class(Everything)
    assert table.source is Everything
    assert set(table.names) == {"typed", "defaulted", "untyped", "literal", "star", "size"}
    skipped = table.skipped_methods
    assert "static method" in skipped["helper"]
    assert "class method" in skipped["build"]
    assert "generator" in skipped["walk"]
    assert "coroutine" in skipped["later"]
    assert "keyword-only" in skipped["kwonly"]
    assert "limit" not in table.names and "_private" not in table.names
    assert "untyped" in dict(table.notes)
    assert "skipped helper" in table.describe()
    strict = OpTable.from_class(Everything, untyped="skip")
    assert "untyped" not in strict.names
    assert "no type hint and no default" in strict.skipped_methods["untyped"]


def _draw(table: OpTable, name: str, n: int = 60) -> list[tuple[Any, ...]]:
    strategy = table[name].arg_strategy(table.domain)
    seen: list[tuple[Any, ...]] = []

    @st.composite
    def many(draw: Any) -> list[tuple[Any, ...]]:
        return [draw(strategy) for _ in range(n)]

    from hypothesis import given, settings

    @settings(max_examples=1, database=None)
    @given(many())
    def grab(values: list[tuple[Any, ...]]) -> None:
        seen.extend(values)

    grab()
    return seen


def test_from_class_strategies_come_from_hints_and_defaults() -> None:
    table = OpTable.from_class(Everything)
    for x, name, flag in _draw(table, "typed"):
        assert x in range(4) and name in "abc" and isinstance(flag, bool)
    for (which, n) in _draw(table, "literal"):
        assert which in ("l", "r") and (n is None or n in range(4))
    for (x,) in _draw(table, "defaulted"):
        assert x in range(4)
    assert _draw(table, "size") == [()] * len(_draw(table, "size"))


def test_from_class_overrides() -> None:
    table = OpTable.from_class(Everything, {
        "typed": {"x": st.just(7)},
        "untyped": st.tuples(st.just("z")),
        "star": None,
        "helper": Op("helper", st.tuples(st.just(1)), run=lambda obj, x: x,
                     model=lambda state, x: x),
    })
    assert {x for x, _, _ in _draw(table, "typed")} == {7}
    assert _draw(table, "untyped", 5) == [("z",)] * 5
    assert "star" not in table.names and "excluded" in table.skipped_methods["star"]
    assert "helper" in table.names
    with pytest.raises(MissingOpError, match="nope"):
        OpTable.from_class(Everything, {"nope": None})
    with pytest.raises(MissingOpError, match="unknown parameters"):
        OpTable.from_class(Everything, {"typed": {"y": st.just(1)}})
    with pytest.raises(MissingOpError, match="does not have"):
        OpTable.from_class(Everything, include=["typed", "missing"])
    assert OpTable.from_class(Everything, include=["typed"]).names == ["typed"]


class CacheDict(dict[str, int]):
    """The dict subclass of issue 22: ``get`` through try/except KeyError."""

    def get(self, k: str, d: int | None = None) -> int | None:  # type: ignore[override]
        try:
            return self[k]
        except KeyError:
            return d

    def put_if_absent(self, k: str, v: int) -> int:
        if self.get(k) is None:
            self[k] = v
        return self[k]


def test_from_class_skips_methods_inherited_from_c_and_says_so() -> None:
    table = OpTable.from_class(CacheDict)
    assert set(table.names) == {"get", "put_if_absent"}
    assert "implemented in C" in table.skipped_methods["setdefault"]
    found = find_race(CacheDict)
    assert isinstance(found, NotLinearizable)
    assert "put_if_absent" in str(found)


# --------------------------------------------------------------------------- model


def test_the_class_is_its_own_model_with_final_state() -> None:
    report = explore(LockedCounter)
    assert report.scenarios > 0 and report.ops_seen == {"increment"}
    found = find_race(Counter)
    assert isinstance(found, NotLinearizable)
    text = str(found)
    assert "none ends in the observed final state" in text
    assert "('value', 1)" in text and "('value', 2)" in text


def test_state_function_replaces_the_default_final_state() -> None:
    # Counter's race shows only in its final state: a state function that
    # sees nothing hides it, one that sees the value finds it.
    assert find_race(Counter, state=lambda c: 0) is None
    assert find_race(Counter, state=lambda c: c.value) is not None


def test_invariant_is_checked_after_every_run() -> None:
    def never(obj: Any) -> bool:
        return False

    found = find_race(LockedCounter, invariant=never)
    assert isinstance(found, NotLinearizable)
    assert found.result.kind == "invariant"
    assert "invariant 'never' returned False" in str(found)

    def boom(obj: Any) -> bool:
        raise RuntimeError("x")

    found = find_race(LockedCounter, invariant=boom)
    assert found is not None and "raised RuntimeError('x')" in str(found)
    assert find_race(LockedCounter, invariant=lambda c: c.value >= 0) is None


class Raiser:
    def __init__(self) -> None:
        self.n = 0

    def bump(self) -> None:
        self.n += 1

    def fail(self) -> None:
        raise ValueError(f"n={self.n}")


def test_exceptions_compare_by_type_and_message() -> None:
    model = class_model(Raiser)
    table = OpTable.from_class(Raiser)

    def history(text: str) -> History:
        return History(None, [Call(0, "bump", (), 1, 2),
                              Call(1, "fail", (), 3, 4, None, ValueError, text)])

    assert check_history(history("n=1"), table, model)
    assert not check_history(history("n=0"), table, model)
    assert not check_history(History(None, [Call(0, "fail", (), 1, 2, None, KeyError, "n=0")]),
                             table, model)


def test_results_of_identity_objects_compare_by_value() -> None:
    class Chain:
        """Returns itself (a fluent API): compared as "a Chain", not by identity."""

        def __init__(self) -> None:
            self._lock = threading.Lock()
            self.n = 0

        def add(self, k: int) -> Chain:
            with self._lock:
                self.n += k
            return self

        def read(self) -> int:
            return self.n

    assert find_race(Chain, attempts=1) is None


class Box:
    """A user table whose run wraps the object under test (``.inner``)."""

    def __init__(self, initial: Any = None) -> None:
        self.inner = {"k": 1}


class BoxSpec:
    def __init__(self, initial: Any = None) -> None:
        self.d = {"k": 1}

    def get(self, k: str) -> int | None:
        return self.d.get(k)


def test_model_is_never_the_run_wrapper() -> None:
    ops = OpTable("box", (Op("get", st.tuples(st.just("k")),
                             run=lambda obj, k: obj.inner.get(k), requires=()),))
    # Before: the spec got the wrapper lambda and raised AttributeError
    # (BoxSpec has no .inner), reported as a race.
    assert find_race(Box, ops, BoxSpec, attempts=1, examples=5) is None
    assert ops["get"].model_runner(BoxSpec(), "k") == 1

    class NoGet:
        def __init__(self, initial: Any = None) -> None:
            pass

    with pytest.raises(SpecError, match="has no method 'get'"):
        explore(Box, ops, NoGet, examples=3)


# --------------------------------------------------------------------------- explicit


def test_an_explicit_op_missing_on_the_target_is_an_error() -> None:
    ops = OpTable("box", (Op("get", st.tuples(st.just("k")), run=lambda obj, k: obj.get(k)),))
    with pytest.raises(MissingOpError, match="'get'"):
        explore(Box, ops, BoxSpec, examples=3)
    # A catalogue op is optional: filtered and listed, as before ...
    report = explore(list, LIST_OPS.only("append", "len").plus(), list, examples=2,
                     repetitions=1)
    assert report.ops_skipped == []
    report = explore(list, LIST_OPS, list, examples=2, repetitions=1)
    assert "snapshot" in report.ops_skipped
    # ... unless named: only() makes it explicit.
    with pytest.raises(MissingOpError, match="snapshot"):
        explore(list, LIST_OPS.only("append", "snapshot"), list, examples=2)


def test_spec_free_needs_a_class() -> None:
    with pytest.raises(TypeError, match="must be a class"):
        explore(lambda initial: Counter())

    class NeedsArgs:
        def __init__(self, n: int) -> None:
            self.n = n

        def get(self) -> int:
            return self.n

    with pytest.raises(TypeError, match=r"no-argument constructor"):
        find_race(NeedsArgs)

    class Empty:
        pass

    with pytest.raises(ValueError, match="no method of"):
        explore(Empty)


# --------------------------------------------------------------------------- coverage


def test_report_covers_methods_and_concurrent_pairs() -> None:
    report = explore(LockedGetOrSetCache)
    assert ("get_or_set", "get_or_set") in report.pairs_seen
    text = report.coverage()
    assert "pairs run concurrently (1 of 1): get_or_set||get_or_set" in text

    class Two(LockedCounter):
        def read(self) -> int:
            with self._lock:
                return self.value

    report = explore(Two)
    assert report.pairs_seen == {("increment", "increment"), ("increment", "read"),
                                 ("read", "read")}
    report = explore(Everything)
    assert "skipped helper: static method" in report.coverage()
    assert report.methods_skipped["walk"].startswith("generator")


# --------------------------------------------------------------------------- executor


def test_executor_auto_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOGIL_RACE_EXECUTOR", raising=False)
    assert is_pure_python(Counter) and is_pure_python(Counter())
    assert is_pure_python(CacheDict)
    assert not is_pure_python(dict) and not is_pure_python(ConcurrentDict)
    assert not is_pure_python(type("Plain", (dict,), {}))
    made: dict[str, Any] = {}
    exec("class Made:\n    def get(self):\n        return 1\n", made)  # no __name__: "builtins"
    assert made["Made"].__module__ == "builtins" and is_pure_python(made["Made"])
    assert default_executor(Counter) == "controlled"
    c_kind = "controlled" if gil_enabled() else "threads"
    assert default_executor(ConcurrentDict) == c_kind
    assert default_executor() == c_kind
    assert explore(LockedCounter).executor == "controlled"
    assert explore(LockedCounter, executor="auto").executor == "controlled"
    monkeypatch.setenv("NOGIL_RACE_EXECUTOR", "threads")
    assert default_executor(Counter) == "threads"


def test_spec_free_campaigns_are_deterministic() -> None:
    a = find_race(GetOrSetCache)
    b = find_race(GetOrSetCache)
    assert isinstance(a, NotLinearizable) and isinstance(b, NotLinearizable)
    assert a.first_failure is not None and b.first_failure is not None
    # The first failure (scenario, schedule, runs before it) is the same on
    # every interpreter (the controlled executor is deterministic on 3.14t and
    # 3.15t too: tests/test_testing_determinism.py); the reported one is
    # shrunk within a time budget, so it may be smaller or not.
    assert a.first_failure == b.first_failure


def test_race_test_decorates_with_a_class_alone() -> None:
    seen: list[RaceReport] = []

    @race_test(LockedCounter)
    def check(report: RaceReport) -> None:
        seen.append(report)

    check()
    assert seen and seen[0].ops_seen == {"increment"}

    @race_test(Counter)
    def racy() -> None:
        pass

    with pytest.raises(NotLinearizable):
        racy()


# --------------------------------------------------------------------------- observe


class Slotted:
    __slots__ = ("_lock", "a", "b")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.a = 1


class WithState:
    def __init__(self) -> None:
        self.x = 1
        self.cache = object()

    def __getstate__(self) -> dict[str, Any]:
        return {"x": self.x}


def test_observe() -> None:
    assert observe(Slotted()) == ("Slotted", (("a", 1),))
    assert observe(WithState()) == ("WithState", ("dict", (("x", 1),)))
    assert observe({"k": [1, (2,)]}) == ("dict", (("k", ("list", (1, ("tuple", (2,))))),))
    assert observe(functools.partial(print)) != observe(1)
    a: list[Any] = []
    a.append(a)
    assert observe(a) == ("list", (("<cycle>",),))

"""Concurrent scenarios and the hypothesis strategies that generate them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from nogil_collections.testing._ops import OpTable

__all__ = ["Scenario", "Step", "scenarios"]


@dataclass(frozen=True)
class Step:
    """One operation a thread will perform: an op name and its arguments."""

    op: str
    args: tuple[Any, ...] = ()

    def __repr__(self) -> str:
        return f"{self.op}({', '.join(repr(a) for a in self.args)})"


@dataclass(frozen=True)
class Scenario:
    """An initial state and, per thread, the steps that thread runs in order."""

    initial: Any
    threads: tuple[tuple[Step, ...], ...]

    def initial_copy(self) -> Any:
        """A private deep copy of the initial state, to build a container from."""
        return copy.deepcopy(self.initial)

    @property
    def n_ops(self) -> int:
        return sum(len(t) for t in self.threads)

    def key(self) -> str:
        """A stable identity for caching results of this exact scenario."""
        return repr(self)

    def __str__(self) -> str:
        lines = [f"initial: {self.initial!r}"]
        for t, steps in enumerate(self.threads):
            lines.append(f"thread {t}: " + "; ".join(repr(s) for s in steps))
        return "\n".join(lines)


def _stepper(name: str) -> Callable[[tuple[Any, ...]], Step]:
    def make(args: tuple[Any, ...]) -> Step:
        return Step(name, tuple(args))

    return make


def _steps(table: OpTable, min_ops: int, max_ops: int) -> st.SearchStrategy[tuple[Step, ...]]:
    if not table.ops:
        raise ValueError(f"op table {table.kind!r} is empty for this target")
    step = st.one_of(*(op.arg_strategy(table.domain).map(_stepper(op.name)) for op in table.ops))
    return st.lists(step, min_size=min_ops, max_size=max_ops).map(tuple)


def scenarios(
    table: OpTable,
    *,
    threads: int | tuple[int, int] = (2, 3),
    ops_per_thread: int | tuple[int, int] = (1, 3),
    initial: st.SearchStrategy[Any] | None = None,
    focus: str | None = None,
) -> st.SearchStrategy[Scenario]:
    """Strategy of :class:`Scenario` for ``table``.

    ``threads`` and ``ops_per_thread`` are an exact count or an inclusive
    ``(min, max)`` range.  ``initial`` overrides the table's initial-state
    strategy.  Shrinking removes threads and steps and moves towards ops
    listed first in the table.  With ``focus`` (an op name), every scenario
    starts thread 0 with a call of that op, so a campaign is sure to cover it.
    """
    tmin, tmax = (threads, threads) if isinstance(threads, int) else threads
    omin, omax = (ops_per_thread, ops_per_thread) if isinstance(ops_per_thread, int) \
        else ops_per_thread
    if not 1 <= tmin <= tmax or not 0 <= omin <= omax:
        raise ValueError("need 1 <= min threads <= max threads and 0 <= min ops <= max ops")
    init = initial if initial is not None else table.initial_strategy()
    per_thread = _steps(table, omin, omax)
    threads_st = st.lists(per_thread, min_size=tmin, max_size=tmax).map(tuple)
    if focus is not None:
        op = table[focus]
        first = op.arg_strategy(table.domain).map(_stepper(op.name))
        threads_st = st.tuples(first, threads_st).map(_prepend)
    return st.builds(Scenario, init, threads_st)


def _prepend(
    parts: tuple[Step, tuple[tuple[Step, ...], ...]],
) -> tuple[tuple[Step, ...], ...]:
    step, threads = parts
    return ((step, *threads[0]), *threads[1:])

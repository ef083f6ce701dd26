"""Histories: what each thread invoked, when, and what it saw."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Call", "History", "exc_text", "format_call", "format_outcome", "format_timeline",
           "safe_repr"]


@dataclass(frozen=True)
class Call:
    """One completed operation in a history.

    ``invoke`` and ``response`` are stamps from one totally ordered counter:
    ``a.response < b.invoke`` means ``a`` finished before ``b`` started.
    Exactly one of ``result`` (when ``exc_type`` is None) and ``exc_type`` is
    meaningful.
    """

    thread: int
    op: str
    args: tuple[Any, ...]
    invoke: int
    response: int
    result: Any = None
    exc_type: type[BaseException] | None = None
    exc_text: str = ""

    @property
    def raised(self) -> bool:
        return self.exc_type is not None

    def precedes(self, other: Call) -> bool:
        """True if this call returned before ``other`` was invoked (real-time order)."""
        return self.response < other.invoke


@dataclass
class History:
    """The calls of one execution, plus the state the container started from.

    Histories from the controlled executor also carry the ``schedule`` that
    produced them (a :class:`~nogil_collections.testing.Schedule`, for
    :func:`~nogil_collections.testing.replay`) and its ``segments``: which
    thread ran how many switch points, and where it stopped.
    """

    initial: Any
    calls: list[Call] = field(default_factory=list)
    schedule: Any = None
    segments: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.calls)

    def threads(self) -> list[int]:
        return sorted({c.thread for c in self.calls})

    def by_thread(self, thread: int) -> list[Call]:
        return sorted((c for c in self.calls if c.thread == thread), key=lambda c: c.invoke)

    def validate(self) -> None:
        """Raise ValueError if the history is not well formed (intervals, per-thread order)."""
        for c in self.calls:
            if c.response < c.invoke:
                raise ValueError(f"response before invocation: {c}")
        for t in self.threads():
            calls = self.by_thread(t)
            for a, b in itertools.pairwise(calls):
                if not a.precedes(b):
                    raise ValueError(f"thread {t} has overlapping calls: {a} / {b}")


def safe_repr(value: Any) -> str:
    """``repr(value)``, or a stand-in naming the type when the object's ``__repr__`` fails:
    a report must not fail on the objects it reports."""
    try:
        return repr(value)
    except Exception as e:
        try:
            return f"<{type(value).__name__} object (repr failed: {type(e).__name__})>"
        except Exception:
            return "<object (repr failed)>"


def exc_text(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when the exception's ``__str__`` fails."""
    try:
        return str(exc)
    except Exception as e:
        return f"<str() of {type(exc).__name__} failed: {type(e).__name__}>"


def format_call(call: Call) -> str:
    args = ", ".join(safe_repr(a) for a in call.args)
    return f"{call.op}({args})"


def format_outcome(call: Call) -> str:
    if call.exc_type is not None:
        text = f": {call.exc_text}" if call.exc_text else ""
        return f"raise {call.exc_type.__name__}{text}"
    return f"-> {safe_repr(call.result)}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_timeline(calls: Iterable[Call], *, width: int = 34, mark: Sequence[Call] = ()) -> str:
    """A per-thread timeline: one column per thread, one row per event in stamp order.

    ``>`` marks an invocation, ``<`` the matching response, ``|`` an operation in
    flight.  Calls in ``mark`` are flagged with ``*``.
    """
    calls = list(calls)
    if not calls:
        return "(empty history)"
    threads = sorted({c.thread for c in calls})
    events: list[tuple[int, int, Call]] = []
    for c in calls:
        events.append((c.invoke, 0, c))
        events.append((c.response, 1, c))
    events.sort(key=lambda e: (e[0], e[1]))
    marked = {id(c) for c in mark}
    open_calls: dict[int, Call] = {}
    head = ["stamp".rjust(7)] + [_clip(f"thread {t}", width).ljust(width) for t in threads]
    lines = [" | ".join(head).rstrip(), "-" * (10 + (width + 3) * len(threads))]
    for stamp, kind, c in events:
        cells = []
        for t in threads:
            if t != c.thread:
                cells.append(("|" if t in open_calls else "").ljust(width))
                continue
            star = "*" if id(c) in marked else " "
            if kind == 0:
                text = f">{star}{format_call(c)}"
            else:
                text = f"<{star}{format_outcome(c)}"
            cells.append(_clip(text, width).ljust(width))
        if kind == 0:
            open_calls[c.thread] = c
        else:
            open_calls.pop(c.thread, None)
        lines.append(" | ".join([str(stamp).rjust(7), *cells]).rstrip())
    return "\n".join(lines)

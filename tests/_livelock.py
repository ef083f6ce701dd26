"""Helpers of the livelock tests (test_dict_livelock.py, test_list_livelock.py,
test_dict_fast_lock.py): an __eq__ that writes to its container on every call, a
call bounded in time, and the fault-injection hook that runs another thread's
write at a point."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from nogil_collections import _fault_injection as fi

LIMIT = 400


class Livelock(RuntimeError):
    pass


def bounded(fn: Callable[[], Any], timeout: float = 60.0) -> Any:
    """fn() in a thread: its result, or its exception re-raised; a call that
    does not end within timeout fails the test."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(("ok", fn()))
        except BaseException as e:
            out.append(("raised", e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail(f"no result after {timeout} s: a livelock or a deadlock")
    kind, value = out[0]
    if kind == "raised":
        raise value
    return value


class Hostile:
    """A key or value whose __eq__ writes to its container on every call
    (through `write`), counting the calls in the shared `calls` box."""

    def __init__(self, v: Any, write: Callable[[], None], calls: list[int], h: int = 7):
        self.v = v
        self.write = write
        self.calls = calls
        self.h = h

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        self.calls[0] += 1
        if self.calls[0] > LIMIT:
            raise Livelock(f"__eq__ called {self.calls[0]} times")
        self.write()
        return isinstance(other, Hostile) and other.v == self.v

    def __repr__(self) -> str:
        return f"Hostile({self.v!r})"


needs_fi = pytest.mark.skipif(not fi.ENABLED, reason="needs the fault-injection build "
                              "(make fault-injection)")


def at_point_in_another_thread(point: str, action: Callable[[], object]) -> Any:
    """A hook: the first time this thread reaches `point`, run `action` in
    another thread and wait for it (our critical section is suspended)."""
    me = threading.get_ident()
    fired: list[str] = []

    def hook(reached: str) -> None:
        if reached == point and threading.get_ident() == me and not fired:
            fired.append(reached)
            t = threading.Thread(target=action)
            t.start()
            t.join(10)

    return hook, fired


class Eq:
    """Equal to every _Eq with the same v; counts its __eq__ calls."""

    def __init__(self, v: int) -> None:
        self.v = v
        self.calls = 0

    def __eq__(self, other: object) -> bool:
        self.calls += 1
        return isinstance(other, Eq) and other.v == self.v

    __hash__ = None  # type: ignore[assignment]



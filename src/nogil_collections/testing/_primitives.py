"""Blocking primitives modelled for the controlled executor.

Inside a controlled run only one scenario thread runs at a time.  A thread
that blocked on a real lock held by a parked thread would stop the whole run,
so while the controlled executor works, ``threading.Lock``, ``threading.RLock``
and ``threading._allocate_lock`` build the model locks below, and
``time.sleep`` becomes a switch point (and on 3.11 ``functools.cached_property``
takes a model lock instead of the real lock it was defined with).  ``Condition``, ``Event``,
``Semaphore``, ``BoundedSemaphore``, ``Barrier`` and ``queue.Queue`` are pure
Python on top of those names (Lib/threading.py, Lib/queue.py), so they are
modelled too, without being replaced.

A model lock wraps a real lock.  In a scenario thread of an active run, an
acquire that would block tells the scheduler instead ("thread t waits for
this lock") and the scheduler runs another thread; the release wakes the
waiters.  When every unfinished thread waits, the scheduler reports a
deadlock with the cycle of who waits for whom.  In every other thread (the
test's own, helpers of the library under test) a model lock is a plain lock.
"""

from __future__ import annotations

import _thread
import contextlib
import functools
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any, Protocol

__all__ = ["LIBRARY_FILES", "ModelLock", "ModelRLock", "Scheduler", "describe_wait",
           "modelled_primitives", "register_thread", "unregister_thread", "user_frame"]

_real_allocate_lock = _thread.allocate_lock
_real_sleep = time.sleep
_get_ident = _thread.get_ident

# Frames in these files are machinery, not code under test: never switch points.
_TESTING_DIR = os.path.dirname(os.path.abspath(__file__))
LIBRARY_FILES = frozenset({threading.__file__, queue.__file__})


class Scheduler(Protocol):
    """What a model lock needs from the controlled run its thread belongs to."""

    def block(self, thread: int, lock: ModelLock, timed: bool, frame: FrameType | None) -> bool:
        """Park ``thread`` until ``lock`` is released; False if the wait timed out."""

    def wake(self, lock: ModelLock) -> None:
        """``lock`` was released: its waiters may run again."""

    def switch(self, thread: int, frame: FrameType | None) -> None:
        """A switch point in ``thread``."""


# ident of a scenario thread -> (its scheduler while a run is active, its index)
_THREADS: dict[int, list[Any]] = {}


def register_thread(index: int) -> list[Any]:
    """Make the calling thread a scenario thread; set ``slot[0]`` to the active run."""
    slot: list[Any] = [None, index]
    _THREADS[_get_ident()] = slot
    return slot


def unregister_thread() -> None:
    _THREADS.pop(_get_ident(), None)


def _controlled() -> tuple[Scheduler, int] | None:
    slot = _THREADS.get(_get_ident())
    if slot is None or slot[0] is None:
        return None
    return slot[0], slot[1]


class ModelLock:
    """``threading.Lock`` whose blocking acquire, in a scenario thread, yields to the scheduler."""

    kind = "Lock"

    def __init__(self) -> None:
        self._real = _real_allocate_lock()
        self.holder: int | None = None  # scenario thread index, when one holds it
        caller = user_frame(sys._getframe(1))
        self.created_at = _where(caller) if caller is not None else "?"

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        ctl = _controlled()
        if ctl is None:
            got = self._real.acquire(blocking, timeout)
            if got:
                self.holder = None
            return got
        scheduler, me = ctl
        while True:
            if self._real.acquire(False):
                self.holder = me
                return True
            if not blocking:
                return False
            if not scheduler.block(me, self, timeout >= 0, sys._getframe(1)):
                return False

    def release(self) -> None:
        self._real.release()
        self.holder = None
        ctl = _controlled()
        if ctl is not None:
            ctl[0].wake(self)

    def locked(self) -> bool:
        return self._real.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def _at_fork_reinit(self) -> None:
        self._real = _real_allocate_lock()
        self.holder = None

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return f"<model {self.kind} {state} created at {self.created_at}>"


class _WaiterLock(ModelLock):
    """The lock ``Condition.wait`` parks on (from ``threading._allocate_lock``)."""

    kind = "waiter"


class ModelRLock:
    """``threading.RLock`` built on a :class:`ModelLock`, with what ``Condition`` needs."""

    def __init__(self) -> None:
        self._block = ModelLock()
        self._block.kind = "RLock"
        caller = user_frame(sys._getframe(1))
        self._block.created_at = _where(caller) if caller is not None else "?"
        self._owner: int | None = None
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = _get_ident()
        if self._owner == me:
            self._count += 1
            return True
        if not self._block.acquire(blocking, timeout):
            return False
        self._owner = me
        self._count = 1
        return True

    def release(self) -> None:
        if self._owner != _get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if not self._count:
            self._owner = None
            self._block.release()

    def locked(self) -> bool:
        return self._block.locked()

    __enter__ = acquire

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def _is_owned(self) -> bool:
        return self._owner == _get_ident()

    def _release_save(self) -> tuple[int, int | None]:
        if not self._count:
            raise RuntimeError("cannot release un-acquired lock")
        state = (self._count, self._owner)
        self._count = 0
        self._owner = None
        self._block.release()
        return state

    def _acquire_restore(self, state: tuple[int, int | None]) -> None:
        self._block.acquire()
        self._count, self._owner = state

    def _at_fork_reinit(self) -> None:
        self._block._at_fork_reinit()
        self._owner = None
        self._count = 0

    def __repr__(self) -> str:
        return repr(self._block)


def _sleep(seconds: float) -> None:
    """``time.sleep``: in a scenario thread a switch point (no real sleep), elsewhere a sleep."""
    ctl = _controlled()
    if ctl is None:
        _real_sleep(seconds)
        return
    ctl[0].switch(ctl[1], sys._getframe(1))


_real_cached_property_get = functools.cached_property.__get__


def _cached_property_get(self: Any, instance: Any, owner: type | None = None) -> Any:
    """3.11's ``cached_property.__get__`` computes under ``self.lock``, a real RLock made
    when the class was defined: a scenario thread blocking on it while the parked holder
    computes would stop the run.  Give the property a model RLock first (outside a
    controlled run it behaves as the real one), then run the real ``__get__``."""
    if not isinstance(getattr(self, "lock", None), ModelRLock):
        self.lock = ModelRLock()
    return _real_cached_property_get(self, instance, owner)


_patch_depth = 0


@contextlib.contextmanager
def modelled_primitives() -> Iterator[None]:
    """Replace the blocking primitives' constructors and ``time.sleep`` while the block runs.

    Objects created meanwhile (the container under test builds its locks in
    the factory) keep working after the block: outside a controlled run they
    behave as the real primitives.  Nested uses are fine.
    """
    global _patch_depth
    if _patch_depth:
        _patch_depth += 1
        try:
            yield
        finally:
            _patch_depth -= 1
        return
    replacements: list[tuple[Any, str, Any]] = [
        (threading, "Lock", ModelLock),
        (threading, "RLock", ModelRLock),
        (threading, "_allocate_lock", _WaiterLock),
        (time, "sleep", _sleep),
    ]
    if sys.version_info < (3, 12):  # 3.12 dropped cached_property's lock
        replacements.append((functools.cached_property, "__get__", _cached_property_get))
    saved = [(module, name, getattr(module, name)) for module, name, _ in replacements]
    for module, name, value in replacements:
        setattr(module, name, value)
    _patch_depth = 1
    try:
        yield
    finally:
        _patch_depth = 0
        for module, name, value in saved:
            setattr(module, name, value)


# --------------------------------------------------------------------------- reporting


def _is_library(filename: str) -> bool:
    return filename in LIBRARY_FILES or filename.startswith(_TESTING_DIR)


def user_frame(frame: FrameType | None) -> FrameType | None:
    """The innermost frame of code under test (not threading, queue or this package)."""
    while frame is not None and _is_library(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def _where(frame: FrameType) -> str:
    """``file.py:12 in Class.method``; never raises (a frame may have no line number)."""
    try:
        code = frame.f_code
        name = getattr(code, "co_qualname", code.co_name)
        line = frame.f_lineno
        return f"{os.path.basename(code.co_filename)}:{'?' if line is None else line} in {name}"
    except Exception:
        return "?"


def describe_wait(lock: ModelLock, frame: FrameType | None) -> str:
    """What a parked thread waits for, in words: the API it blocked in and where it was called."""
    try:
        return _describe_wait(lock, frame)
    except Exception:
        return f"a {getattr(lock, 'kind', 'lock')} (details unavailable)"


def _describe_wait(lock: ModelLock, frame: FrameType | None) -> str:
    api = None
    f = frame
    while f is not None and _is_library(f.f_code.co_filename):
        if f.f_code.co_filename in LIBRARY_FILES:
            api = getattr(f.f_code, "co_qualname", f.f_code.co_name)  # outermost wins
        f = f.f_back
    where = _where(f) if f is not None else "?"
    if lock.kind == "waiter":
        what = f"{api or 'Condition.wait'} (nothing left to notify it)"
    else:
        what = f"{lock.kind} created at {lock.created_at}"
        if api is not None:
            what = f"{api} on a {what}"
    return f"{what}, called at {where}"

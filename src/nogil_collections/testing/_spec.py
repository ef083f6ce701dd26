"""Spec-free testing: a class is its own sequential specification.

:class:`Instance` is the model state of a class used as its own model: the
calls applied so far, replayed one at a time on a fresh instance whenever the
state is needed (so no deep copy of locks, files or threads is ever taken).
:func:`observe` turns an object into a hashable, comparable value: its
attributes (``__getstate__``, ``vars()`` and ``__slots__``), recursively, with
synchronization primitives and callables reduced to their type name (a lock
of the object under test and a lock of the model are "equal").
"""

from __future__ import annotations

import _thread
import queue
import threading
import types
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["Instance", "SpecError", "observe", "result_value"]


class SpecError(Exception):
    """The specification cannot answer (a missing model method, a class that cannot be built).

    Never compared as an outcome: it stops the check with its message.
    """


def _primitive_types() -> tuple[type, ...]:
    # The controlled executor builds the object under test with its model
    # locks; the checker builds the model's instances with real ones.
    from nogil_collections.testing._primitives import ModelLock, ModelRLock

    return (_thread.LockType, type(threading.RLock()), ModelLock, ModelRLock,
            threading.Condition, threading.Event, threading.Semaphore, threading.Barrier,
            threading.Thread)


_PRIMITIVES = _primitive_types()
_OPAQUE = (*_PRIMITIVES, types.FunctionType, types.MethodType, types.BuiltinFunctionType,
           types.ModuleType, types.GeneratorType, types.CoroutineType, types.FrameType, type)
_LEAVES = (bool, int, float, complex, str, bytes)
_object_getstate = getattr(object, "__getstate__", None)


def _slots(typ: type) -> list[str]:
    names: list[str] = []
    for klass in typ.__mro__:
        s = vars(klass).get("__slots__", ())
        for name in (s,) if isinstance(s, str) else s:
            if name not in ("__dict__", "__weakref__") and name not in names:
                names.append(name)
    return names


def _attrs(x: Any) -> dict[str, Any]:
    """The attributes of ``x`` (``vars()`` and ``__slots__``) minus its locks, conditions,
    events and threads: they hold no state a result depends on."""
    attrs: dict[str, Any] = {}
    d = getattr(x, "__dict__", None)
    if isinstance(d, dict):
        attrs.update(d)
    for name in _slots(type(x)):
        try:
            attrs[name] = getattr(x, name)
        except AttributeError:
            continue
    return {k: v for k, v in attrs.items() if not isinstance(v, _PRIMITIVES)}


def _has_value_eq(typ: type) -> bool:
    return getattr(typ, "__eq__", object.__eq__) is not object.__eq__


def observe(x: Any, _seen: frozenset[int] = frozenset()) -> Hashable:
    """A hashable value standing for the state of ``x``, equal for equal states.

    Leaves (numbers, strings, None) are themselves; lists, tuples, deques,
    dicts (in insertion order) and sets are compared item by item;
    ``queue.Queue`` by its items; an object with its own ``__getstate__`` by
    what that returns; other objects by their attributes (``vars()`` and
    ``__slots__``, sorted by name) together with their type name.  Attributes
    holding locks, conditions, events, semaphores, barriers or threads are
    left out; functions, methods, modules and classes count as their type
    name only: they hold no state a result depends on.
    """
    if x is None or isinstance(x, _LEAVES):
        return x
    typ = type(x)
    if isinstance(x, _PRIMITIVES):
        return ("<synchronization primitive>",)
    if isinstance(x, _OPAQUE):
        return (f"<{typ.__qualname__}>",)
    if id(x) in _seen:
        return ("<cycle>",)
    seen = _seen | {id(x)}
    if isinstance(x, (list, tuple, deque)):
        return (typ.__qualname__, tuple(observe(e, seen) for e in x))
    if isinstance(x, dict):
        items = tuple((observe(k, seen), observe(v, seen)) for k, v in x.items())
        extra = _attrs(x)
        if extra:
            return (typ.__qualname__, items, observe(extra, seen))
        return (typ.__qualname__, items)
    if isinstance(x, (set, frozenset)):
        return (typ.__qualname__, frozenset(observe(e, seen) for e in x))
    if isinstance(x, queue.Queue):
        return (typ.__qualname__, tuple(observe(e, seen) for e in list(x.queue)))
    getstate = getattr(typ, "__getstate__", None)
    if getstate is not None and getstate is not _object_getstate:
        return (typ.__qualname__, observe(x.__getstate__(), seen))
    attrs = _attrs(x)
    if attrs or not _has_value_eq(typ):
        if not attrs and not _has_value_eq(typ):
            return (f"<{typ.__qualname__}>",)
        return (typ.__qualname__,
                tuple((k, observe(attrs[k], seen)) for k in sorted(attrs)))
    try:
        hash(x)
    except TypeError:
        return (typ.__qualname__, repr(x))
    return x  # type: ignore[no-any-return]


def result_value(value: Any) -> Any:
    """A result as the checker compares it: itself when its type compares by value
    (numbers, strings, containers, dataclasses...), else only its type (an object
    that compares by identity: the instance itself for a fluent API, an iterator, a
    lock).  Results are normalized after the run, so looking inside such an object
    would see its state at the end of the run, not when the call returned."""
    if value is None or isinstance(value, (*_LEAVES, list, tuple, dict, set, frozenset)):
        return value
    if _has_value_eq(type(value)) and not isinstance(value, _OPAQUE):
        return value
    return _Kind(type(value).__qualname__)


class _Kind:
    """"An object of this type": the result of a call returning an identity object."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Kind) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<{self.name} object>"


class Instance:
    """The model state of a class used as its own specification.

    It holds the calls applied so far and the instance they produced.
    :meth:`copy` keeps the calls only; the next :meth:`apply` replays them on
    a fresh ``cls()`` (exceptions included, as they happened) before making
    the new call, so an instance is never copied and never shared between two
    branches of the checker's search.
    """

    __slots__ = ("_obj", "calls", "cls", "make")

    def __init__(self, cls: type, make: Callable[[], Any],
                 calls: tuple[tuple[str, tuple[Any, ...], bool], ...] = ()) -> None:
        self.cls = cls
        self.make = make
        self.calls = calls
        self._obj: Any = None

    def _fresh(self) -> Any:
        try:
            obj = self.make()
        except Exception as e:
            raise SpecError(f"cannot build a fresh {self.cls.__qualname__} for the model: "
                            f"{e!r}") from e
        for name, args, attr in self.calls:
            try:
                _invoke(obj, name, args, attr)
            except Exception:
                pass  # it raised the first time too: same state
        return obj

    def obj(self) -> Any:
        """The instance these calls produce."""
        if self._obj is None:
            self._obj = self._fresh()
        return self._obj

    def copy(self) -> Instance:
        return Instance(self.cls, self.make, self.calls)

    def apply(self, name: str, args: tuple[Any, ...], attr: bool = False) -> Any:
        """Make the call on this state (it becomes one call longer) and return its result."""
        obj = self._fresh()
        self.calls = (*self.calls, (name, args, attr))
        self._obj = obj
        return _invoke(obj, name, args, attr)

    def __repr__(self) -> str:
        try:
            return _show_obj(self.obj())
        except SpecError as e:
            return f"<{self.cls.__qualname__}: {e}>"


def _invoke(obj: Any, name: str, args: tuple[Any, ...], attr: bool) -> Any:
    if attr:
        return getattr(obj, name)
    return getattr(obj, name)(*args)


def _show_obj(obj: Any) -> str:
    if getattr(type(obj), "__repr__", None) is not getattr(object, "__repr__", None):
        return repr(obj)
    attrs = _attrs(obj)
    shown = ", ".join(f"{k}={v!r}" for k, v in sorted(attrs.items())
                      if not isinstance(v, _OPAQUE))
    return f"{type(obj).__qualname__}({shown})"


class ClassCall:
    """The model side of a method (or property) op derived from a class.

    On an :class:`Instance` (the class as its own model) it replays and calls;
    on any other model state (a hand-written spec) it calls the method of the
    same name.
    """

    def __init__(self, name: str, attr: bool = False) -> None:
        self.name = name
        self.attr = attr
        self.__name__ = f"model_{name}"

    def __call__(self, state: Any, *args: Any) -> Any:
        if isinstance(state, Instance):
            return state.apply(self.name, args, self.attr)
        if not hasattr(state, self.name):
            raise SpecError(f"the model state ({type(state).__qualname__}) has no attribute "
                            f"{self.name!r}: pass Op({self.name!r}, model=...)")
        return _invoke(state, self.name, args, self.attr)

    def __repr__(self) -> str:
        return f"ClassCall({self.name!r})"

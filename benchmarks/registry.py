"""The implementations the benchmarks compare, and what each one supports.

Every implementation is an :class:`Impl`: a name, a family (``"map"`` or
``"seq"``), a factory that builds a populated instance from items, and the
set of operations it supports.  Support is *probed* on a small instance, never
declared by hand, so a peer that lacks ``len()`` (``ft_utils.ConcurrentDict``
before 0.2.0) or ``in`` (``cereggii.AtomicDict``) shows as "n/a" instead of crashing a run.

An implementation that cannot be imported, or that imports but does not work
(for example the placeholder ``ConcurrentList`` class that exists until the
real one lands), is returned as *unavailable* with the reason, and every
report lists it with that reason.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import operator
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

MAP = "map"
SEQ = "seq"

#: Operations the single-thread suite and the scaling suite may use.
MAP_OPS = ("getitem", "get", "setitem", "delitem", "contains", "iter", "len", "pop")
SEQ_OPS = ("getitem", "setitem", "contains", "iter", "len", "append", "pop")


class LockedDict:
    """A ``dict`` behind one ``threading.Lock``: what a careful user writes today."""

    __slots__ = ("_d", "_lock")

    def __init__(self, items: Iterable[tuple[Any, Any]] = ()) -> None:
        self._d = dict(items)
        self._lock = threading.Lock()

    def __getitem__(self, key: Any) -> Any:
        with self._lock:
            return self._d[key]

    def get(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            return self._d.get(key, default)

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            self._d[key] = value

    def __delitem__(self, key: Any) -> None:
        with self._lock:
            del self._d[key]

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._d

    def __len__(self) -> int:
        with self._lock:
            return len(self._d)

    def __iter__(self) -> Iterator[Any]:
        with self._lock:
            snapshot = list(self._d)
        return iter(snapshot)

    def pop(self, key: Any, *default: Any) -> Any:
        with self._lock:
            return self._d.pop(key, *default)

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + sys.getsizeof(self._d)


class LockedList:
    """A ``list`` behind one ``threading.Lock``."""

    __slots__ = ("_l", "_lock")

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._l = list(items)
        self._lock = threading.Lock()

    def __getitem__(self, index: Any) -> Any:
        with self._lock:
            return self._l[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        with self._lock:
            self._l[index] = value

    def __contains__(self, value: Any) -> bool:
        with self._lock:
            return value in self._l

    def __len__(self) -> int:
        with self._lock:
            return len(self._l)

    def __iter__(self) -> Iterator[Any]:
        with self._lock:
            snapshot = list(self._l)
        return iter(snapshot)

    def append(self, value: Any) -> None:
        with self._lock:
            self._l.append(value)

    def pop(self, *index: Any) -> Any:
        with self._lock:
            return self._l.pop(*index)

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + sys.getsizeof(self._l)


@dataclass
class Impl:
    """One implementation under test."""

    name: str
    family: str  # MAP or SEQ
    factory: Callable[[list[Any]], Any] | None
    #: "ours", "builtin", "locked", "peer" or "ceiling": drives table order and plot style.
    role: str
    package: str | None = None  # distribution name whose version is recorded
    note: str = ""  # why it is unavailable, or a caveat
    ops: frozenset[str] = field(default_factory=frozenset)
    readonly: bool = False
    #: A variant that only differs where the loop reaches the container by
    #: name (ours made immortal: its reference count is never written):
    #: measured only by the real-code suite, through a local, a global,
    #: ``self.c`` and a closure.  The container-only suites skip it.
    by_name_only: bool = False

    @property
    def available(self) -> bool:
        return self.factory is not None

    def make(self, items: list[Any]) -> Any:
        assert self.factory is not None, self.note
        return self.factory(items)

    def supports(self, op: str) -> bool:
        return op in self.ops


def _version(dist: str | None) -> str | None:
    if dist is None:
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _import_attr(module: str, attr: str) -> tuple[Any | None, str]:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken extension raising anything
        return None, f"cannot import {module}: {type(exc).__name__}: {exc}"
    obj = getattr(mod, attr, None)
    if obj is None:
        return None, f"{module} has no {attr}"
    return obj, ""


def _probe_delitem(m: Any) -> bool:
    m["d"] = 4
    del m["d"]
    try:
        m["d"]
    except KeyError:
        return True
    return False


def _probe_map(factory: Callable[[list[Any]], Any]) -> tuple[frozenset[str], str]:
    """Return the operations a mapping factory supports, or raise with the reason."""
    d = factory([("a", 1), ("b", 2)])
    if d["a"] != 1:  # the minimum: a mapping that cannot even read is not benchmarked
        raise AssertionError("d['a'] != 1")
    d["c"] = 3
    if d["c"] != 3:
        raise AssertionError("d['c'] != 3 after d['c'] = 3")
    ops = {"getitem", "setitem"}
    probes: dict[str, Callable[[Any], Any]] = {
        "get": lambda m: m.get("a") == 1 and m.get("zz") is None,
        "contains": lambda m: ("a" in m) and ("zz" not in m),
        "len": lambda m: len(m) == 3,
        "iter": lambda m: sorted(m) == ["a", "b", "c"],
        "pop": lambda m: m.pop("c") == 3 and m.pop("c", None) is None,
        "delitem": _probe_delitem,
    }
    for op, probe in probes.items():
        try:
            if probe(d):
                ops.add(op)
        except (TypeError, AttributeError, NotImplementedError):
            pass
    return frozenset(ops), ""


def _probe_seq(factory: Callable[[list[Any]], Any], readonly: bool) -> tuple[frozenset[str], str]:
    s = factory([10, 20, 30])
    if s[1] != 20:
        raise AssertionError("s[1] != 20")
    ops = {"getitem"}
    probes: dict[str, Callable[[Any], Any]] = {
        "contains": lambda q: (20 in q) and (99 not in q),
        "len": lambda q: len(q) == 3,
        "iter": lambda q: list(q) == [10, 20, 30],
    }
    if not readonly:
        probes.update(
            {
                "setitem": lambda q: operator.setitem(q, 0, 11) is None and q[0] == 11,
                "append": lambda q: q.append(40) is None and q[3] == 40,
                "pop": lambda q: q.pop() == 40 and len(q) == 3,
            }
        )
    for op, probe in probes.items():
        try:
            if probe(s):
                ops.add(op)
        except (TypeError, AttributeError, NotImplementedError):
            pass
    return frozenset(ops), ""


def _finish(impl: Impl) -> Impl:
    """Probe an implementation; turn a non-working one into an unavailable entry."""
    if impl.factory is None:
        return impl
    try:
        if impl.family == MAP:
            impl.ops, _ = _probe_map(impl.factory)
        else:
            impl.ops, _ = _probe_seq(impl.factory, impl.readonly)
    except Exception as exc:
        impl.note = f"does not work yet (placeholder?): {type(exc).__name__}: {exc}"
        impl.factory = None
    return impl


def _from_items_map(cls: Any) -> Callable[[list[Any]], Any]:
    """Factory for mapping types whose constructor may not accept items."""

    def make(items: list[Any]) -> Any:
        try:
            return cls(items)
        except TypeError:
            obj = cls()
            for k, v in items:
                obj[k] = v
            return obj

    return make


def load_implementations() -> list[Impl]:
    """Import and probe every implementation; the unavailable ones carry a note."""
    impls: list[Impl] = []

    # ---- mappings
    impls.append(Impl("dict", MAP, dict, "builtin"))
    impls.append(Impl("dict+Lock", MAP, LockedDict, "locked"))
    cd, why = _import_attr("nogil_collections", "ConcurrentDict")
    impls.append(
        Impl(
            "ConcurrentDict",
            MAP,
            _from_items_map(cd) if cd else None,
            "ours",
            "nogil_collections",
            why,
        )
    )
    impls.append(
        Impl(
            "ConcurrentDict.immortal()",
            MAP,
            _from_items_map(cd.immortal) if cd else None,
            "ours",
            "nogil_collections",
            why,
            by_name_only=True,
        )
    )
    ftd, why = _import_attr("ft_utils.concurrency", "ConcurrentDict")
    if ftd is None and _free_threaded_build():
        why += f" (install: {_venv_hint()}/bin/python -m pip install ft_utils)"
    impls.append(
        Impl(
            "ft_utils.ConcurrentDict",
            MAP,
            _from_items_map(ftd) if ftd else None,
            "peer",
            "ft_utils",
            why,
        )
    )
    ad, why = _import_attr("cereggii", "AtomicDict")
    if ad is None and _free_threaded_build():
        why += f" (install: bash tools/install_cereggii.sh {_venv_hint()})"
    impls.append(
        Impl(
            "cereggii.AtomicDict",
            MAP,
            _from_items_map(ad) if ad else None,
            "peer",
            "cereggii",
            why,
        )
    )

    # ---- sequences
    impls.append(Impl("list", SEQ, list, "builtin"))
    impls.append(Impl("list+Lock", SEQ, LockedList, "locked"))
    cl, why = _import_attr("nogil_collections", "ConcurrentList")
    impls.append(Impl("ConcurrentList", SEQ, cl, "ours", "nogil_collections", why))
    impls.append(
        Impl(
            "ConcurrentList.immortal()",
            SEQ,
            cl.immortal if cl else None,
            "ours",
            "nogil_collections",
            why,
            by_name_only=True,
        )
    )
    impls.append(Impl("tuple", SEQ, tuple, "ceiling", readonly=True, note="immutable: reads only"))

    for impl in impls:
        _finish(impl)
    return impls


def package_versions(impls: list[Impl]) -> dict[str, str | None]:
    """Version of every package a result depends on."""
    names = {"nogil_collections", "ft_utils", "cereggii", "matplotlib", "Cython"}
    names.update(i.package for i in impls if i.package)
    return {name: _version(name) for name in sorted(names)}


def _venv_hint() -> str:
    """The running environment, as a path to give an install command."""
    import os

    prefix = sys.prefix
    try:
        rel = os.path.relpath(prefix)
    except ValueError:
        return prefix
    return prefix if rel.startswith("..") else rel


def _free_threaded_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())

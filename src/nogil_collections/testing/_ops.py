"""Operation tables: what a scenario may call, with which arguments, and what the model does.

An :class:`Op` says how to call one operation on the container under test
(``run``), how the sequential model answers it (``model``), how to generate
its arguments, whether it may change the state, and which keys it touches
(for P-compositional checking).  An :class:`OpTable` is an ordered collection
of ops plus the argument domain and the initial-state strategy.

The built-in tables (:data:`LIST_OPS`, :data:`DICT_OPS`) are catalogues: one
table drives the concurrent container and the builtin, and their ops whose
method is missing on a target (``list`` has no ``snapshot``) are filtered out
by :meth:`OpTable.for_target`.  An op a user names (in an own table, or by
:meth:`OpTable.only`) is explicit: missing on the target, it is an error.

:meth:`OpTable.from_class` derives a table from a class's public methods.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import strategies as st

from nogil_collections.testing._spec import ClassCall, SpecError, result_value

__all__ = [
    "ABSENT",
    "DICT_OPS",
    "LIST_OPS",
    "Domain",
    "Fn",
    "MissingOpError",
    "Op",
    "OpTable",
    "get_table",
    "register_table",
]


class _Absent:
    """The "no such key" sentinel of dict ``compare_and_set`` scenarios."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""Stands for "the key is absent" in generated ``compare_and_set`` arguments.

When an op runs on a real container, :func:`container_absent` translates it to
that container's own sentinel (a class attribute named ``ABSENT``, ``MISSING``
or ``NOTHING`` on the type or its module), so tables stay container-neutral.
"""

_NO_DEFAULT: Any = object()


def container_absent(obj: object) -> Any:
    """The object's own "absent" sentinel for ``compare_and_set``, or :data:`ABSENT`."""
    import sys

    typ = type(obj)
    places: list[object] = [typ, sys.modules.get(typ.__module__)]
    pkg = typ.__module__.partition(".")[0]
    places.append(sys.modules.get(pkg))
    for place in places:
        for name in ("ABSENT", "MISSING", "NOTHING"):
            value = getattr(place, name, None)
            if value is not None:
                return value
    return ABSENT


@dataclass(frozen=True)
class Fn:
    """A named, pure function usable as a generated argument (``update``, factories).

    Equality and ``repr`` use the name, so scenarios print and compare well.
    """

    name: str
    func: Callable[..., Any] = field(compare=False)

    def __call__(self, *args: Any) -> Any:
        return self.func(*args)

    def __repr__(self) -> str:
        return self.name


INC = Fn("inc", lambda v: v + 1)
DOUBLE = Fn("double", lambda v: v * 2)
NEG = Fn("neg", lambda v: -v)
UNARY_FNS: tuple[Fn, ...] = (INC, DOUBLE, NEG)


def _const(v: int) -> Fn:
    return Fn(f"const({v})", lambda: v)


@dataclass(frozen=True)
class Domain:
    """The argument space ops draw from.  Small on purpose: collisions make races."""

    values: st.SearchStrategy[Any] = field(default_factory=lambda: st.integers(0, 3))
    keys: st.SearchStrategy[Any] = field(default_factory=lambda: st.sampled_from("abcd"))
    indices: st.SearchStrategy[int] = field(default_factory=lambda: st.integers(-3, 3))
    fns: st.SearchStrategy[Fn] = field(default_factory=lambda: st.sampled_from(UNARY_FNS))
    max_initial: int = 4


ArgsSpec = (
    st.SearchStrategy[tuple[Any, ...]] | Callable[[Domain], st.SearchStrategy[tuple[Any, ...]]]
)


def _call_method(name: str) -> Callable[..., Any]:
    def run(obj: Any, *args: Any) -> Any:
        return getattr(obj, name)(*args)

    run.__name__ = f"call_{name}"
    return run


def _model_method(name: str) -> Callable[..., Any]:
    """The default model of an op: the method ``name`` of the model state.

    Never the op's ``run`` (that wraps the object under test, not the spec).
    A model state without the method raises :class:`SpecError`, which stops
    the check instead of counting as an outcome.
    """

    def model(state: Any, *args: Any) -> Any:
        try:
            method = getattr(state, name)
        except AttributeError:
            raise SpecError(
                f"op {name!r}: the model state ({type(state).__qualname__}) has no method "
                f"{name!r}; pass Op({name!r}, ..., model=...)") from None
        return method(*args)

    model.__name__ = f"model_{name}"
    return model


class MissingOpError(ValueError):
    """An op named explicitly (a user table, ``only()``) does not exist on the target."""


@dataclass(frozen=True)
class Op:
    """One operation of a table.

    name:      label in histories and timelines (and the default method name).
    args:      a strategy of argument tuples, or a function of the :class:`Domain`.
    run:       ``run(obj, *args)`` on the container under test; default calls
               the method ``name``.
    model:     ``model(state, *args)`` on the sequential model's state; default
               calls the method ``name`` of the state (never ``run``: that
               wraps the object under test).  It may mutate ``state`` (the
               checker copies first when ``mutates`` is true) and may raise.
    mutates:   False if the op never changes the state (no copy needed).
    keys:      ``keys(args)`` -> the keys the op touches, or None for "all of
               them" (``len``, ``snapshot``, ``clear``...).  Ops without
               ``keys`` are treated as touching everything.
    requires:  attribute names the target must have (default ``(name,)``);
               :meth:`OpTable.for_target` drops the op when one is missing.
    normalize: applied to the result on both sides before comparing (e.g.
               ``copy`` returns a ConcurrentList: compare it as a list).
    linearizable: False for ops that are not one atomic step by contract
               (iteration over a changing container); tables keep them but
               :meth:`OpTable.linearizable` drops them.
    optional:  True for ops of a catalogue (the built-in tables): dropped,
               and listed, when the target lacks them.  False (the default)
               means the op was named on purpose: a target without it makes
               :meth:`OpTable.for_target` raise :class:`MissingOpError`.
    """

    name: str
    args: ArgsSpec = field(default_factory=lambda: st.just(()))
    run: Callable[..., Any] | None = None
    model: Callable[..., Any] | None = None
    mutates: bool = True
    keys: Callable[[tuple[Any, ...]], frozenset[Hashable] | None] | None = None
    requires: tuple[str, ...] | None = None
    normalize: Callable[[Any], Any] | None = None
    linearizable: bool = True
    optional: bool = False

    @property
    def runner(self) -> Callable[..., Any]:
        return self.run if self.run is not None else _call_method(self.name)

    @property
    def model_runner(self) -> Callable[..., Any]:
        return self.model if self.model is not None else _model_method(self.name)

    @property
    def required_attrs(self) -> tuple[str, ...]:
        return self.requires if self.requires is not None else (self.name,)

    def arg_strategy(self, domain: Domain) -> st.SearchStrategy[tuple[Any, ...]]:
        if isinstance(self.args, st.SearchStrategy):
            return self.args
        return self.args(domain)

    def touched_keys(self, args: tuple[Any, ...]) -> frozenset[Hashable] | None:
        return None if self.keys is None else self.keys(args)

    def norm(self, value: Any) -> Any:
        return value if self.normalize is None else self.normalize(value)


def _initial_list(domain: Domain) -> st.SearchStrategy[Any]:
    return st.lists(domain.values, max_size=domain.max_initial)


def _initial_dict(domain: Domain) -> st.SearchStrategy[Any]:
    return st.dictionaries(domain.keys, domain.values, max_size=domain.max_initial)


@dataclass(frozen=True)
class OpTable:
    """An ordered, immutable collection of ops with the domain and initial states they use.

    ``kind`` is ``"list"``, ``"dict"`` or anything a user chooses; the builtin
    ``list``/``dict`` models are picked from it when no model is given.
    Order matters: hypothesis shrinks towards ops listed first, so put the
    simplest first.
    """

    kind: str
    ops: tuple[Op, ...]
    domain: Domain = field(default_factory=Domain)
    initial: Callable[[Domain], st.SearchStrategy[Any]] | None = None
    source: type | None = None
    """The class :meth:`from_class` derived the table from (its default model)."""
    skipped: tuple[tuple[str, str], ...] = ()
    """(method, why) for the public methods :meth:`from_class` did not turn into ops."""
    notes: tuple[tuple[str, str], ...] = ()
    """(method, what) for arguments :meth:`from_class` had to guess (no hint, no default)."""

    def __post_init__(self) -> None:
        names = [op.name for op in self.ops]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate op names in table {self.kind!r}: {sorted(dup)}")

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def __contains__(self, name: object) -> bool:
        return any(op.name == name for op in self.ops)

    def __getitem__(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [op.name for op in self.ops]

    def initial_strategy(self) -> st.SearchStrategy[Any]:
        if self.initial is not None:
            return self.initial(self.domain)
        if self.kind == "list":
            return _initial_list(self.domain)
        if self.kind == "dict":
            return _initial_dict(self.domain)
        return st.none()

    def _with(self, ops: Iterable[Op]) -> OpTable:
        return replace(self, ops=tuple(ops))

    def only(self, *names: str) -> OpTable:
        """The sub-table of the named ops (unknown names raise KeyError).

        Naming an op makes it explicit: a target that lacks it is an error,
        even for an op of a built-in catalogue.
        """
        for n in names:
            self[n]
        return self._with(replace(op, optional=False) for op in self.ops if op.name in names)

    def without(self, *names: str) -> OpTable:
        """The table minus the named ops (unknown names raise KeyError)."""
        for n in names:
            self[n]
        return self._with(op for op in self.ops if op.name not in names)

    def plus(self, *ops: Op) -> OpTable:
        """The table with more ops (a name already present is replaced)."""
        new = {op.name for op in ops}
        return self._with([*(op for op in self.ops if op.name not in new), *ops])

    def linearizable(self) -> OpTable:
        """Drop ops that are not atomic by contract (e.g. iteration)."""
        return self._with(op for op in self.ops if op.linearizable)

    def read_only(self) -> OpTable:
        return self._with(op for op in self.ops if not op.mutates)

    def with_domain(self, **changes: Any) -> OpTable:
        return replace(self, domain=replace(self.domain, **changes))

    def for_target(self, target: object) -> OpTable:
        """Keep the ops whose required attributes exist on ``target`` (an object or a type).

        Only optional ops (those of a built-in catalogue) are dropped; an
        explicit op whose attributes are missing raises :class:`MissingOpError`.
        """
        missing = [op for op in self.ops if not op.optional and not _has_all(target, op)]
        if missing:
            what = "; ".join(
                f"{op.name!r} needs {[a for a in op.required_attrs if not hasattr(target, a)]}"
                for op in missing)
            raise MissingOpError(
                f"op(s) named explicitly are missing on {_describe(target)}: {what} "
                "(remove them from the table, or fix the target)")
        return self._with(op for op in self.ops if _has_all(target, op))

    def missing_on(self, target: object) -> list[str]:
        """Names of the optional ops :meth:`for_target` would drop for ``target``."""
        return [op.name for op in self.ops if op.optional and not _has_all(target, op)]

    @property
    def skipped_methods(self) -> dict[str, str]:
        """method -> why it is not in the table (:meth:`from_class` only)."""
        return dict(self.skipped)

    def describe(self) -> str:
        """The table in words: its ops, the methods left out and why, the guessed arguments."""
        lines = [f"op table {self.kind!r}: {', '.join(self.names) or '(no ops)'}"]
        for name, why in self.skipped:
            lines.append(f"  skipped {name}: {why}")
        for name, what in self.notes:
            lines.append(f"  note {name}: {what}")
        return "\n".join(lines)

    @classmethod
    def from_class(
        cls,
        target: type,
        overrides: Mapping[str, Any] | None = None,
        *,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        untyped: str = "fallback",
        domain: Domain | None = None,
    ) -> OpTable:
        """Derive a table from the public methods and properties of ``target``.

        Each public method (name not starting with ``_``) defined in Python
        on ``target`` or a base class becomes an op calling it, with arguments
        from the parameters: a type hint gives ``st.from_type`` (small
        domains for ``int``, ``str``, ``bytes``, ``float`` and ``bool`` so
        that threads collide: ``0..3``, ``"a".."c"``), a default without a
        hint gives the default or a small value of its type, and a parameter
        with neither gets small ints or strs (``untyped="fallback"``, noted
        in :attr:`notes`) or skips the method (``untyped="skip"``).  Public
        properties become read ops.  ``*args``/``**kwargs`` and keyword-only
        parameters with defaults are left out.

        Left out, with the reason in :attr:`skipped`: static and class
        methods, generator and coroutine functions (their result is lazy),
        methods implemented in C (inherited from ``dict``, ``list``...: name
        them in ``overrides`` to test them), keyword-only parameters without
        default, hints hypothesis cannot build.

        ``overrides`` maps a method name to an :class:`Op` (used as is), a
        strategy of argument tuples, a dict of per-parameter strategies, or
        None (leave the method out).  ``include`` keeps only the named
        methods (a name that is not a method of ``target`` is an error);
        ``exclude`` leaves some out.  The ops' model is the class itself
        (each op calls the method of the same name on the model state).
        """
        if not isinstance(target, type):
            raise TypeError(f"from_class needs a class, not {target!r}")
        if untyped not in ("fallback", "skip"):
            raise ValueError(f"untyped must be 'fallback' or 'skip', not {untyped!r}")
        over = dict(overrides or {})
        excluded = set(exclude)
        members = _public_members(target)
        wanted = list(include) if include is not None else None
        if wanted is not None:
            unknown = [n for n in wanted if n not in members and n not in over]
            if unknown:
                raise MissingOpError(
                    f"include= names what {target.__qualname__} does not have: {unknown}")
        for name in over:
            if name not in members and not hasattr(target, name):
                raise MissingOpError(
                    f"overrides= names {name!r}, which {target.__qualname__} does not have")
        ops: list[Op] = []
        skipped: list[tuple[str, str]] = []
        notes: list[tuple[str, str]] = []
        names = list(members)
        names += [n for n in over if n not in members]
        for name in names:
            if wanted is not None and name not in wanted:
                continue
            if name in excluded:
                skipped.append((name, "excluded by exclude="))
                continue
            if name in over:
                spec = over[name]
                if spec is None:
                    skipped.append((name, "excluded by overrides"))
                    continue
                if isinstance(spec, Op):
                    ops.append(spec)
                    continue
                if isinstance(spec, st.SearchStrategy) or callable(spec):
                    ops.append(_method_op(name, spec))
                    continue
                if not isinstance(spec, Mapping):
                    raise TypeError(f"overrides[{name!r}] must be an Op, a strategy of "
                                    f"argument tuples, a dict of strategies or None")
            attr = members.get(name)
            per_param: Mapping[str, Any] = over.get(name) or {}
            op, why, note = _derive(target, name, attr, per_param, untyped)
            if op is None:
                skipped.append((name, why))
                continue
            if note:
                notes.append((name, note))
            ops.append(op)
        return cls(target.__qualname__, tuple(ops), domain or Domain(), source=target,
                   skipped=tuple(skipped), notes=tuple(notes))


def _has_all(target: object, op: Op) -> bool:
    return all(hasattr(target, a) for a in op.required_attrs)


def _describe(target: object) -> str:
    if isinstance(target, type):
        return f"class {target.__qualname__}"
    return f"the {type(target).__qualname__} object under test"


# --------------------------------------------------------------------------- from_class

_SMALL: dict[Any, st.SearchStrategy[Any]] = {
    bool: st.booleans(),
    int: st.integers(0, 3),
    float: st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    str: st.sampled_from("abc"),
    bytes: st.sampled_from([b"a", b"b", b"c"]),
    type(None): st.none(),
}
_UNTYPED: st.SearchStrategy[Any] = st.one_of(st.integers(0, 3), st.sampled_from("ab"))


def _public_members(target: type) -> dict[str, Any]:
    """name -> the raw class attribute, for public names, nearest class first."""
    found: dict[str, Any] = {}
    for klass in target.__mro__:
        if klass is object:
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in found:
                continue
            found[name] = (klass, value)
    return found


def _strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """A small-domain strategy for a type hint (collisions make races)."""
    if hint in _SMALL:
        return _SMALL[hint]
    if hint is Any:
        return _UNTYPED
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_strategy_for(a) for a in args))
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (list, typing.List) and args:  # noqa: UP006
        return st.lists(_strategy_for(args[0]), max_size=3)
    if origin in (set, frozenset) and args:
        return st.frozensets(_strategy_for(args[0]), max_size=3).map(origin)
    if origin in (tuple, typing.Tuple) and args:  # noqa: UP006
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_strategy_for(args[0]), max_size=3).map(tuple)
        return st.tuples(*(_strategy_for(a) for a in args))
    if origin is dict and len(args) == 2:
        return st.dictionaries(_strategy_for(args[0]), _strategy_for(args[1]), max_size=2)
    return st.from_type(hint)


def _from_default(default: Any) -> st.SearchStrategy[Any]:
    small = _SMALL.get(type(default))
    if small is None or default is None:
        return st.just(default)
    return st.one_of(st.just(default), small)


def _method_op(name: str, args: Any, attr: bool = False) -> Op:
    return Op(name, args, run=_read_attr(name) if attr else None, model=ClassCall(name, attr),
              normalize=result_value)


def _read_attr(name: str) -> Callable[[Any], Any]:
    def run(obj: Any) -> Any:
        return getattr(obj, name)

    run.__name__ = f"read_{name}"
    return run


def _derive(target: type, name: str, member: tuple[type, Any] | None,
            per_param: Mapping[str, Any], untyped: str) -> tuple[Op | None, str, str]:
    """(op, "", note) or (None, why skipped, "")."""
    if member is None:
        return None, "not found on the class", ""
    klass, raw = member
    if isinstance(raw, staticmethod):
        return None, "static method (does not act on the instance)", ""
    if isinstance(raw, classmethod):
        return None, "class method (does not act on the instance)", ""
    if isinstance(raw, property) or type(raw).__name__ == "cached_property":
        return _method_op(name, st.just(()), attr=True), "", ""
    if not isinstance(raw, types.FunctionType):
        if callable(raw) and klass.__module__ == "builtins":
            return None, (f"implemented in C (inherited from {klass.__qualname__}); "
                          "name it in overrides= to test it"), ""
        if hasattr(raw, "__get__") and not callable(raw):
            return None, f"descriptor of type {type(raw).__qualname__}", ""
        if callable(raw):
            return None, f"not a Python function ({type(raw).__qualname__})", ""
        return None, "data attribute, not a method", ""
    if inspect.isgeneratorfunction(raw) or inspect.isasyncgenfunction(raw):
        return None, "generator function (its result is a lazy iterator)", ""
    if inspect.iscoroutinefunction(raw):
        return None, "coroutine function", ""
    try:
        sig = inspect.signature(raw)
    except (TypeError, ValueError) as e:
        return None, f"no signature ({e})", ""
    try:
        hints = typing.get_type_hints(raw)
    except Exception as e:
        hints = {}
        hint_error = f"type hints unreadable ({e!r}); "
    else:
        hint_error = ""
    params = list(sig.parameters.values())[1:]  # self
    parts: list[st.SearchStrategy[Any]] = []
    guessed: list[str] = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in per_param:
            parts.append(per_param[p.name])
            continue
        if p.kind is p.KEYWORD_ONLY:
            if p.default is p.empty:
                return None, f"keyword-only parameter {p.name!r} without default", ""
            continue
        if p.name in hints:
            try:
                strat = _strategy_for(hints[p.name])
            except Exception as e:
                return None, f"no strategy for parameter {p.name!r}: {e}", ""
            parts.append(strat)
        elif p.default is not p.empty:
            parts.append(_from_default(p.default))
        elif untyped == "skip":
            return None, f"{hint_error}parameter {p.name!r} has no type hint and no default", ""
        else:
            parts.append(_UNTYPED)
            guessed.append(p.name)
    unknown = [k for k in per_param if k not in sig.parameters]
    if unknown:
        raise MissingOpError(f"overrides for {name!r} name unknown parameters {unknown}")
    note = ""
    if guessed:
        note = (f"{hint_error}no type hint and no default for {guessed}: small ints or strs "
                "(0..3, 'a', 'b')")
    return _method_op(name, st.tuples(*parts)), "", note


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, OpTable] = {}


def register_table(name: str, table: OpTable, *, replace_existing: bool = False) -> OpTable:
    """Register a table under ``name`` so tests and the CLI can refer to it by name."""
    if name in _REGISTRY and not replace_existing:
        raise ValueError(f"an op table named {name!r} is already registered")
    _REGISTRY[name] = table
    return table


def get_table(name: str) -> OpTable:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no op table named {name!r}; registered: {sorted(_REGISTRY)}") from None


# --------------------------------------------------------------------------- helpers


def _matches(current: Any, expected: Any) -> bool:
    """Identity or equality, as ``list.index`` matches (``x is e or x == e``)."""
    return current is expected or bool(current == expected)


def _no_args(d: Domain) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.just(())


def _a(*parts: Callable[[Domain], st.SearchStrategy[Any]]) -> Callable[[Domain], Any]:
    def build(d: Domain) -> st.SearchStrategy[tuple[Any, ...]]:
        return st.tuples(*(p(d) for p in parts))

    return build


def _v(d: Domain) -> st.SearchStrategy[Any]:
    return d.values


def _i(d: Domain) -> st.SearchStrategy[int]:
    return d.indices


def _k(d: Domain) -> st.SearchStrategy[Any]:
    return d.keys


def _f(d: Domain) -> st.SearchStrategy[Fn]:
    return d.fns


def _vals(d: Domain) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(d.values, max_size=3).map(tuple)


def _as_list(x: Any) -> list[Any]:
    return list(x)


def _items(x: Any) -> list[tuple[Any, Any]]:
    return list(x.items())


# --------------------------------------------------------------------------- list


# Subscription syntax, as user code writes it; the list and dict tables
# share these.
def _subscript_get(obj: Any, key: Any) -> Any:
    return obj[key]


def _subscript_set(obj: Any, key: Any, v: Any) -> None:
    obj[key] = v


def _subscript_del(obj: Any, key: Any) -> None:
    del obj[key]


def _list_getslice(obj: Any, i: int, j: int) -> Any:
    return obj[i:j]


def _list_setslice(obj: Any, i: int, j: int, vals: tuple[Any, ...]) -> None:
    obj[i:j] = vals


def _len(obj: Any) -> int:
    return len(obj)


def _contains(obj: Any, x: Any) -> bool:
    return x in obj


def _iter_list(obj: Any) -> list[Any]:
    return list(iter(obj))


def _reversed_list(obj: Any) -> list[Any]:
    return list(reversed(obj))


def _iadd(obj: Any, vals: tuple[Any, ...]) -> None:
    result = obj
    result += list(vals)
    if result is not obj:
        raise AssertionError("+= must return the same object")


def _imul(obj: Any, n: int) -> None:
    result = obj
    result *= n
    if result is not obj:
        raise AssertionError("*= must return the same object")


def _eq(obj: Any, other: Any) -> bool:
    return bool(obj == other)


def _sort_reverse(obj: Any) -> None:
    obj.sort(reverse=True)


def _pop_at(obj: Any, i: int) -> Any:
    return obj.pop(i)


def _list_snapshot_model(state: list[Any]) -> list[Any]:
    return list(state)


def _append_if_absent_model(state: list[Any], x: Any) -> bool:
    for item in state:
        if _matches(item, x):
            return False
    state.append(x)
    return True


def _list_cas_model(state: list[Any], i: int, expected: Any, new: Any) -> bool:
    if _matches(state[i], expected):
        state[i] = new
        return True
    return False


def _list_update_model(state: list[Any], i: int, fn: Fn) -> Any:
    new = fn(state[i])
    state[i] = new
    return new


def _list_update_run(obj: Any, i: int, fn: Fn) -> Any:
    return obj.update(i, fn)


def _heapq_model(name: str) -> Callable[..., Any]:
    """The sequential model of a heap method: heapq's function on the list."""
    import heapq

    func = getattr(heapq, name)

    def model(state: list[Any], *args: Any) -> Any:
        return func(state, *args)

    model.__name__ = f"heapq_{name}"
    return model


LIST_OPS = OpTable(
    "list",
    (
        Op("append", _a(_v)),
        Op("__getitem__", _a(_i), run=_subscript_get, mutates=False),
        Op("pop", _no_args),
        Op("len", _no_args, run=_len, mutates=False, requires=("__len__",)),
        # `in`, index() and count() scan item by item, for list
        # (list_contains, list_index_impl, list_count in Objects/listobject.c)
        # and ConcurrentList alike (docs/guarantees.md): a delete can shift an
        # element past the scan, so their answer is not of one instant.
        # Dropped by OpTable.linearizable().
        Op("__contains__", _a(_v), run=_contains, mutates=False, linearizable=False),
        Op("__setitem__", _a(_i, _v), run=_subscript_set),
        Op("__delitem__", _a(_i), run=_subscript_del),
        Op("insert", _a(_i, _v)),
        Op("pop_at", _a(_i), run=_pop_at, requires=("pop",)),
        Op("remove", _a(_v)),
        Op("index", _a(_v), mutates=False, linearizable=False),
        Op("count", _a(_v), mutates=False, linearizable=False),
        Op("extend", _a(_vals)),
        Op("clear", _no_args),
        Op("reverse", _no_args),
        Op("sort", _no_args),
        Op("sort_reverse", _no_args, run=_sort_reverse, requires=("sort",)),
        Op("copy", _no_args, mutates=False, normalize=_as_list),
        Op("getslice", _a(_i, _i), run=_list_getslice, mutates=False, normalize=_as_list,
           requires=("__getitem__",)),
        Op("setslice", _a(_i, _i, _vals), run=_list_setslice, requires=("__setitem__",)),
        Op("__iadd__", _a(_vals), run=_iadd),
        Op("__imul__", st.tuples(st.integers(0, 2)), run=_imul),
        Op("__eq__", st.tuples(st.lists(st.integers(0, 3), max_size=3)), run=_eq, mutates=False),
        Op("snapshot", _no_args, model=_list_snapshot_model, mutates=False, normalize=_as_list),
        Op("append_if_absent", _a(_v), model=_append_if_absent_model),
        Op("compare_and_set", _a(_i, _v, _v), model=_list_cas_model),
        Op("update", _a(_i, _f), run=_list_update_run, model=_list_update_model,
           requires=("update",)),
        Op("heappush", _a(_v), model=_heapq_model("heappush")),
        Op("heappop", _no_args, model=_heapq_model("heappop")),
        Op("heappushpop", _a(_v), model=_heapq_model("heappushpop")),
        Op("heapreplace", _a(_v), model=_heapq_model("heapreplace")),
        Op("heapify", _no_args, model=_heapq_model("heapify")),
        # Iteration is many steps, not one: kept for tests of iteration
        # guarantees, dropped by OpTable.linearizable().
        Op("iter", _no_args, run=_iter_list, mutates=False, linearizable=False,
           requires=("__iter__",)),
        Op("reversed", _no_args, run=_reversed_list, mutates=False, linearizable=False,
           requires=("__reversed__",)),
    ),
)
"""Ops for list-like containers: every ``list`` method plus ConcurrentList's compound ones."""


# --------------------------------------------------------------------------- dict


def _one_key(args: tuple[Any, ...]) -> frozenset[Hashable]:
    return frozenset((args[0],))


def _mapping_keys(args: tuple[Any, ...]) -> frozenset[Hashable]:
    return frozenset(args[0])


def _dict_get_default(obj: Any, k: Any, default: Any) -> Any:
    return obj.get(k, default)


def _dict_pop_default(obj: Any, k: Any, default: Any) -> Any:
    return obj.pop(k, default)


def _dict_update(obj: Any, pairs: Mapping[Any, Any]) -> None:
    obj.update(dict(pairs))


def _dict_ior(obj: Any, pairs: Mapping[Any, Any]) -> None:
    result = obj
    result |= dict(pairs)
    if result is not obj:
        raise AssertionError("|= must return the same object")


def _dict_keys_list(obj: Any) -> list[Any]:
    return list(obj.keys())


def _dict_values_list(obj: Any) -> list[Any]:
    return list(obj.values())


def _dict_items_list(obj: Any) -> list[Any]:
    return list(obj.items())


def _dict_snapshot_model(state: dict[Any, Any]) -> dict[Any, Any]:
    return dict(state)


def _dict_cas_run(obj: Any, k: Any, expected: Any, new: Any) -> bool:
    if expected is ABSENT or new is ABSENT:
        absent = container_absent(obj)
        expected = absent if expected is ABSENT else expected
        new = absent if new is ABSENT else new
    return bool(obj.compare_and_set(k, expected, new))


def _dict_cas_model(state: dict[Any, Any], k: Any, expected: Any, new: Any) -> bool:
    """compare_and_set(key, expected, new): ABSENT as expected means "key absent",
    ABSENT as new means "delete the key"."""
    if k not in state:
        ok = expected is ABSENT
    else:
        ok = expected is not ABSENT and _matches(state[k], expected)
    if ok:
        if new is not ABSENT:
            state[k] = new
        elif k in state:
            del state[k]
    return ok


def _get_or_insert_model(state: dict[Any, Any], k: Any, factory: Fn) -> Any:
    if k in state:
        return state[k]
    value = state[k] = factory()
    return value


def _update_item_run(obj: Any, k: Any, fn: Fn, default: Any = _NO_DEFAULT) -> Any:
    if default is _NO_DEFAULT:
        return obj.update_item(k, fn)
    return obj.update_item(k, fn, default)


def _update_item_model(state: dict[Any, Any], k: Any, fn: Fn, default: Any = _NO_DEFAULT) -> Any:
    if k in state:
        new = fn(state[k])
    elif default is _NO_DEFAULT:
        raise KeyError(k)
    else:
        new = fn(default)
    state[k] = new
    return new


def _pop_if_model(state: dict[Any, Any], k: Any, expected: Any) -> bool:
    if k in state and _matches(state[k], expected):
        del state[k]
        return True
    return False


def _cas_expected(d: Domain) -> st.SearchStrategy[Any]:
    return st.one_of(d.values, st.just(ABSENT))


def _factories(d: Domain) -> st.SearchStrategy[Fn]:
    return d.values.map(_const)


def _update_item_args(d: Domain) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.one_of(st.tuples(d.keys, d.fns, d.values), st.tuples(d.keys, d.fns))


def _pairs(d: Domain) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(st.dictionaries(d.keys, d.values, min_size=1, max_size=2))


DICT_OPS = OpTable(
    "dict",
    (
        Op("__setitem__", _a(_k, _v), run=_subscript_set, keys=_one_key),
        Op("__getitem__", _a(_k), run=_subscript_get, mutates=False, keys=_one_key),
        Op("get", _a(_k), mutates=False, keys=_one_key),
        Op("get_default", _a(_k, _v), run=_dict_get_default, mutates=False, keys=_one_key,
           requires=("get",)),
        Op("__contains__", _a(_k), run=_contains, mutates=False, keys=_one_key),
        Op("__delitem__", _a(_k), run=_subscript_del, keys=_one_key),
        Op("pop", _a(_k), keys=_one_key),
        Op("pop_default", _a(_k, _v), run=_dict_pop_default, keys=_one_key, requires=("pop",)),
        Op("setdefault", _a(_k, _v), keys=_one_key),
        Op("compare_and_set", _a(_k, _cas_expected, _cas_expected), run=_dict_cas_run,
           model=_dict_cas_model, keys=_one_key, requires=("compare_and_set",)),
        Op("get_or_insert", _a(_k, _factories), model=_get_or_insert_model, keys=_one_key),
        Op("update_item", _update_item_args, run=_update_item_run, model=_update_item_model,
           keys=_one_key, requires=("update_item",)),
        Op("pop_if", _a(_k, _v), model=_pop_if_model, keys=_one_key),
        Op("update", _pairs, run=_dict_update, keys=_mapping_keys),
        Op("__ior__", _pairs, run=_dict_ior, keys=_mapping_keys),
        # Whole-container ops: they force a whole-history check.
        Op("len", _no_args, run=_len, mutates=False, requires=("__len__",)),
        Op("popitem", _no_args),
        Op("clear", _no_args),
        Op("copy", _no_args, mutates=False, normalize=_items),
        Op("snapshot", _no_args, model=_dict_snapshot_model, mutates=False, normalize=_items),
        Op("__eq__", st.tuples(st.dictionaries(st.sampled_from("ab"), st.integers(0, 1),
                                               max_size=2)), run=_eq, mutates=False),
        # Iteration: one atomic step only for containers that iterate over a
        # snapshot (ConcurrentDict does); dropped by OpTable.linearizable().
        Op("iter", _no_args, run=_iter_list, mutates=False, linearizable=False,
           requires=("__iter__",)),
        Op("keys", _no_args, run=_dict_keys_list, mutates=False, linearizable=False),
        Op("values", _no_args, run=_dict_values_list, mutates=False, linearizable=False),
        Op("items", _no_args, run=_dict_items_list, mutates=False, linearizable=False),
    ),
)
"""Ops for dict-like containers: ``dict`` methods plus ConcurrentDict's compound ones.

Every op naming one key declares it, so histories made only of those are
checked key by key.  ``snapshot``/``copy`` results are compared as item lists,
so insertion order is checked too.
"""

def _catalogue(table: OpTable) -> OpTable:
    """Mark a built-in table's ops optional, with their model spelled out: ``run``
    where it wraps the call (the builtin model state accepts the same wrapper)."""
    return table._with(
        replace(op, optional=True, model=op.model if op.model is not None else op.run)
        for op in table.ops)


LIST_OPS = _catalogue(LIST_OPS)
DICT_OPS = _catalogue(DICT_OPS)

register_table("list", LIST_OPS)
register_table("dict", DICT_OPS)

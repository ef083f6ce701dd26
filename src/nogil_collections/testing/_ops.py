"""Operation tables: what a scenario may call, with which arguments, and what the model does.

An :class:`Op` says how to call one operation on the container under test
(``run``), how the sequential model answers it (``model``), how to generate
its arguments, whether it may change the state, and which keys it touches
(for P-compositional checking).  An :class:`OpTable` is an ordered collection
of ops plus the argument domain and the initial-state strategy.

The same table drives the concurrent container and the builtin: ops whose
method is missing on a target (``list`` has no ``snapshot``) are filtered out
by :meth:`OpTable.for_target`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "ABSENT",
    "DICT_OPS",
    "LIST_OPS",
    "Domain",
    "Fn",
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


@dataclass(frozen=True)
class Op:
    """One operation of a table.

    name:      label in histories and timelines (and the default method name).
    args:      a strategy of argument tuples, or a function of the :class:`Domain`.
    run:       ``run(obj, *args)`` on the container under test; default calls
               the method ``name``.
    model:     ``model(state, *args)`` on the sequential model's state; default
               is ``run``.  It may mutate ``state`` (the checker copies first
               when ``mutates`` is true) and may raise.
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

    @property
    def runner(self) -> Callable[..., Any]:
        return self.run if self.run is not None else _call_method(self.name)

    @property
    def model_runner(self) -> Callable[..., Any]:
        return self.model if self.model is not None else self.runner

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
        """The sub-table of the named ops (unknown names raise KeyError)."""
        for n in names:
            self[n]
        return self._with(op for op in self.ops if op.name in names)

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
        """Keep the ops whose required attributes exist on ``target`` (an object or a type)."""
        return self._with(
            op for op in self.ops if all(hasattr(target, a) for a in op.required_attrs)
        )

    def missing_on(self, target: object) -> list[str]:
        """Names of the ops :meth:`for_target` would drop for ``target``."""
        kept = set(self.for_target(target).names)
        return [n for n in self.names if n not in kept]


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
        Op("__contains__", _a(_v), run=_contains, mutates=False),
        Op("__setitem__", _a(_i, _v), run=_subscript_set),
        Op("__delitem__", _a(_i), run=_subscript_del),
        Op("insert", _a(_i, _v)),
        Op("pop_at", _a(_i), run=_pop_at, requires=("pop",)),
        Op("remove", _a(_v)),
        Op("index", _a(_v), mutates=False),
        Op("count", _a(_v), mutates=False),
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

register_table("list", LIST_OPS)
register_table("dict", DICT_OPS)

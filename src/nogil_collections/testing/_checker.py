"""Linearizability checking: Wing & Gong's search with Lowe's memoization, as Porcupine does it.

A history is linearizable when every call can be given a single point inside
its [invocation, response] interval such that running the calls one by one in
the order of those points, on the sequential model, produces exactly the
results (or exception types) each thread observed.

The search (Wing & Gong 1993; Lowe 2017, "Testing for linearizability"):
keep the history as a doubly linked list of invocation and response events in
stamp order.  Walk it from the front.  At an invocation, try to linearize
that call now: apply it to a copy of the model state; if the model's answer
equals the observed one and the pair (set of linearized calls, new model
state) has not been seen before, lift the call (and its response) out of the
list, push it on a stack and restart from the front.  Reaching a response
event means its call should have been linearized already: backtrack (pop,
unlift, try the next candidate).  The history is linearizable when the list
empties, and is not when the stack is empty at a response.  The memo of
(bitset, state fingerprint) pairs is what keeps this polynomial in practice:
two orders of the same calls that reach the same state are explored once.

P-compositionality (Horn & Kroening 2015): linearizability is local to
independent parts of the state.  For a dict, an op that names one key only
sees that key's slot, so the history splits into one sub-history per key
(or per group of keys, for multi-key ops such as ``update``), each checked
against the model restricted to those keys.  A single whole-container op
(``len``, ``snapshot``, ``clear``, ``popitem``...) disables the split.
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from nogil_collections.testing._history import (
    Call,
    History,
    exc_text,
    format_call,
    format_outcome,
    format_timeline,
    safe_repr,
)
from nogil_collections.testing._ops import Op, OpTable
from nogil_collections.testing._spec import Instance, SpecError, observe

__all__ = [
    "DICT_MODEL",
    "LIST_MODEL",
    "NO_FINAL",
    "CheckResult",
    "Model",
    "as_model",
    "check_history",
    "class_model",
    "freeze",
    "partition_history",
]


def freeze(state: Any) -> Hashable:
    """A hashable fingerprint of a model state: equal states, equal fingerprints.

    Lists and tuples become tuples, dicts become tuples of items in insertion
    order (order matters to ``popitem`` and iteration), sets become
    frozensets, objects with identity hashing (plain classes) their ``vars()``;
    other hashable leaves stay as they are.
    """
    if isinstance(state, (list, tuple)):
        return (type(state).__name__, tuple(freeze(x) for x in state))
    if isinstance(state, dict):
        return ("dict", tuple((k, freeze(v)) for k, v in state.items()))
    if isinstance(state, (set, frozenset)):
        return ("set", frozenset(freeze(x) for x in state))
    if getattr(type(state), "__hash__", None) is object.__hash__ and hasattr(state, "__dict__"):
        # Identity hashing would make every copy distinct (memo never hits).
        return (type(state).__qualname__, freeze(vars(state)))
    try:
        hash(state)
    except TypeError:
        if hasattr(state, "__dict__"):
            return (type(state).__qualname__, freeze(vars(state)))
        raise TypeError(
            f"cannot fingerprint a model state of type {type(state).__name__}: "
            "pass Model(fingerprint=...)"
        ) from None
    return cast(Hashable, state)


@dataclass(frozen=True)
class Model:
    """A sequential specification: how to build, copy and fingerprint its state.

    create:      ``create(initial)`` -> state (``initial`` is a private copy).
    copy:        an independent copy of a state (taken before every mutating op).
    fingerprint: a hashable value, equal for equal states (for memoization).
    restrict:    ``restrict(initial, keys)`` -> the initial state of the part
                 of the object holding ``keys``.  When given, histories whose
                 ops all declare their keys are checked part by part.
    final:       ``final(state)`` -> the value the object under test's final
                 state must equal (see ``check_history(final=...)``); None:
                 final states are not compared.
    exc_args:    compare exceptions by type *and* message (``str(exc)``), not
                 by type only.
    The op table says how each op acts on the state (``Op.model``).
    """

    name: str
    create: Callable[[Any], Any]
    copy: Callable[[Any], Any] = _copy.deepcopy
    fingerprint: Callable[[Any], Hashable] = freeze
    restrict: Callable[[Any, frozenset[Hashable]], Any] | None = None
    final: Callable[[Any], Any] | None = None
    exc_args: bool = False


def _list_copy(state: list[Any]) -> list[Any]:
    return state.copy()


def _dict_copy(state: dict[Any, Any]) -> dict[Any, Any]:
    return state.copy()


def _list_fp(state: list[Any]) -> Hashable:
    return tuple(state)


def _dict_fp(state: dict[Any, Any]) -> Hashable:
    return tuple(state.items())


def _dict_restrict(initial: Any, keys: frozenset[Hashable]) -> dict[Any, Any]:
    return {k: v for k, v in dict(initial).items() if k in keys}


LIST_MODEL = Model("list", list, _list_copy, _list_fp)
"""The builtin ``list`` as the model (items must be hashable for the memo)."""

DICT_MODEL = Model("dict", dict, _dict_copy, _dict_fp, _dict_restrict)
"""The builtin ``dict`` as the model, restrictable per key."""


def _instance_fp(state: Instance) -> Hashable:
    return observe(state.obj())


def _instance_copy(state: Instance) -> Instance:
    return state.copy()


class _Fresh:
    """``cls()``: a fresh instance, whatever initial state a scenario carries."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, initial: Any = None) -> Any:
        return self.cls()

    def __repr__(self) -> str:
        return f"{self.cls.__qualname__}()"


class _Projected:
    """``state(instance.obj())``: the final state of the model's instance."""

    def __init__(self, state: Callable[[Any], Any]) -> None:
        self.state = state

    def __call__(self, inst: Instance) -> Any:
        return self.state(inst.obj())


def class_model(cls: type, state: Callable[[Any], Any] | None = None,
                make: Callable[[], Any] | None = None) -> Model:
    """``cls`` as its own sequential specification.

    The model state is the list of calls made so far, replayed one at a time
    on a fresh ``make()`` (default ``cls()``) whenever needed; results compare
    by value, exceptions by type and message; the final state is compared
    through ``state`` (default :func:`observe`: ``__getstate__``, or the
    attributes, with locks and other primitives left out).
    """
    fresh = make if make is not None else _Fresh(cls)

    def create(initial: Any) -> Instance:
        return Instance(cls, fresh)

    return Model(cls.__qualname__, create, _instance_copy, _instance_fp,
                 final=_Projected(state if state is not None else observe), exc_args=True)


def as_model(model: Model | type | Callable[[Any], Any] | None, table: OpTable) -> Model:
    """Turn ``model`` (a :class:`Model`, ``list``, ``dict``, another class, or None) into a Model.

    None picks the table's source class (:meth:`OpTable.from_class`, see
    :func:`class_model`), else the builtin matching ``table.kind``.  Another
    class is used as ``create`` with deep copies and :func:`freeze`
    fingerprints.
    """
    if isinstance(model, Model):
        return model
    if model is None:
        if table.source is not None:
            return class_model(table.source)
        if table.kind == "list":
            return LIST_MODEL
        if table.kind == "dict":
            return DICT_MODEL
        raise ValueError(f"no default model for op table kind {table.kind!r}: pass model=")
    if model is list:
        return LIST_MODEL
    if model is dict:
        return DICT_MODEL
    return Model(getattr(model, "__name__", repr(model)), model)


# --------------------------------------------------------------------------- outcomes


def _same_value(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    try:
        return bool(a == b)
    except Exception:
        return False


@dataclass(frozen=True)
class _Outcome:
    exc_type: type[BaseException] | None
    value: Any
    exc_text: str = ""

    def matches(self, call: Call, exc_args: bool = False) -> bool:
        if call.exc_type is not None or self.exc_type is not None:
            if exc_args and self.exc_text != call.exc_text:
                return False
            return self.exc_type is call.exc_type
        return _same_value(self.value, call.result)

    def __str__(self) -> str:
        if self.exc_type is not None:
            return f"raise {self.exc_type.__name__}"
        return f"-> {safe_repr(self.value)}"


def _step(model: Model, state: Any, op: Op, call: Call) -> tuple[Any, _Outcome]:
    if op.mutates or isinstance(state, Instance):
        state = model.copy(state)
    try:
        value = op.model_runner(state, *call.args)
    except SpecError:
        raise
    except Exception as e:
        return state, _Outcome(type(e), None, exc_text(e))
    try:
        return state, _Outcome(None, op.norm(value))
    except Exception as e:
        # As the executors' normalized(): an error in the op table is named,
        # never an anonymous traceback from the checker.
        from nogil_collections.testing._executor import ExecutorError

        raise ExecutorError(
            f"the normalize= function of op {op.name!r} raised {type(e).__name__} on the "
            f"model's result {safe_repr(value)}: {exc_text(e)}") from e


# --------------------------------------------------------------------------- search


class _Entry:
    __slots__ = ("call", "cid", "is_call", "match", "next", "prev")

    def __init__(self, call: Call | None, cid: int, is_call: bool) -> None:
        self.call = call
        self.cid = cid
        self.is_call = is_call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _build_list(calls: Sequence[Call]) -> _Entry:
    events: list[tuple[int, int, _Entry]] = []
    for cid, c in enumerate(calls):
        inv = _Entry(c, cid, True)
        ret = _Entry(c, cid, False)
        inv.match = ret
        # Equal stamps (hand-written histories): invocations sort first, so
        # such calls count as overlapping, the permissive reading.
        events.append((c.invoke, 0, inv))
        events.append((c.response, 1, ret))
    events.sort(key=lambda e: (e[0], e[1]))
    head = _Entry(None, -1, False)
    prev = head
    for _, _, e in events:
        prev.next = e
        e.prev = prev
        prev = e
    return head


def _lift(e: _Entry) -> None:
    assert e.prev is not None and e.next is not None and e.match is not None
    e.prev.next = e.next
    e.next.prev = e.prev
    m = e.match
    assert m.prev is not None
    m.prev.next = m.next
    if m.next is not None:
        m.next.prev = m.prev


def _unlift(e: _Entry) -> None:
    m = e.match
    assert m is not None and m.prev is not None and e.prev is not None and e.next is not None
    m.prev.next = m
    if m.next is not None:
        m.next.prev = m
    e.prev.next = e
    e.next.prev = e


NO_FINAL: Any = object()
"""``check_history(final=...)`` default: no observed final state to compare."""


@dataclass
class _Search:
    ok: bool | None
    order: list[Call]
    best_prefix: list[Call]
    best_state: Any
    steps: int
    # An order that explains every result but ends in another final state:
    # (that order, the model's final state there).
    final_mismatch: tuple[list[Call], Any] | None = None


def _search(
    calls: Sequence[Call], ops: dict[str, Op], model: Model, initial: Any, max_steps: int,
    final: Any = NO_FINAL,
) -> _Search:
    head = _build_list(calls)
    state = model.create(_copy.deepcopy(initial))
    stack: list[tuple[_Entry, Any]] = []
    linearized = 0
    seen: set[tuple[int, Hashable]] = set()
    best: list[Call] = []
    best_state = state
    steps = 0
    check_final = model.final is not None and final is not NO_FINAL
    mismatch: tuple[list[Call], Any] | None = None
    entry = head.next
    while True:
        if head.next is None:
            # Every call is placed: the order fits when it also ends in the
            # observed final state (a lost update no read saw shows up here).
            if not check_final:
                break
            end = model.final(state)  # type: ignore[misc]
            if _same_value(end, final):
                break
            if mismatch is None:
                mismatch = ([e.call for e, _ in stack], end)  # type: ignore[misc]
            if not stack:
                return _Search(False, [], best, best_state, steps, mismatch)
            entry, state = stack.pop()
            linearized &= ~(1 << entry.cid)
            _unlift(entry)
            entry = entry.next
            continue
        if steps >= max_steps:
            return _Search(None, [], best, best_state, steps, mismatch)
        steps += 1
        assert entry is not None
        if entry.is_call:
            call = entry.call
            assert call is not None
            new_state, outcome = _step(model, state, ops[call.op], call)
            if outcome.matches(call, model.exc_args):
                bits = linearized | (1 << entry.cid)
                key = (bits, model.fingerprint(new_state))
                if key not in seen:
                    seen.add(key)
                    stack.append((entry, state))
                    state, linearized = new_state, bits
                    if len(stack) > len(best):
                        best = [e.call for e, _ in stack]  # type: ignore[misc]
                        best_state = state
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if not stack:
                return _Search(False, [], best, best_state, steps, mismatch)
            entry, state = stack.pop()
            linearized &= ~(1 << entry.cid)
            _unlift(entry)
            entry = entry.next
    order = [e.call for e, _ in stack]
    return _Search(True, order, best, best_state, steps)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- partitions


def partition_history(
    history: History, table: OpTable
) -> list[tuple[frozenset[Hashable] | None, list[Call]]]:
    """Split the calls into independent groups by the keys they touch.

    Returns ``[(keys, calls), ...]``; a single ``(None, all calls)`` when some
    call touches the whole container.  Keys linked by a multi-key op (e.g.
    ``update({a: 1, b: 2})``) end up in one group.
    """
    ops = {op.name: op for op in table.ops}
    parent: dict[Hashable, Hashable] = {}

    def find(k: Hashable) -> Hashable:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    touched: list[frozenset[Hashable]] = []
    for c in history.calls:
        keys = _op(ops, c).touched_keys(c.args)
        if keys is None:
            return [(None, list(history.calls))]
        touched.append(keys)
        for k in keys:
            parent.setdefault(k, k)
        ks = list(keys)
        for k in ks[1:]:
            ra, rb = find(ks[0]), find(k)
            if ra != rb:
                parent[rb] = ra
    groups: dict[Hashable, list[Call]] = {}
    group_keys: dict[Hashable, set[Hashable]] = {}
    empty: list[Call] = []
    for c, keys in zip(history.calls, touched, strict=True):
        if not keys:
            empty.append(c)
            continue
        root = find(next(iter(keys)))
        groups.setdefault(root, []).append(c)
        group_keys.setdefault(root, set()).update(keys)
    parts: list[tuple[frozenset[Hashable] | None, list[Call]]] = [
        (frozenset(group_keys[r]), cs) for r, cs in groups.items()
    ]
    if empty:
        parts.append((frozenset(), empty))
    return parts


def _op(ops: dict[str, Op], call: Call) -> Op:
    try:
        return ops[call.op]
    except KeyError:
        raise KeyError(f"op {call.op!r} of the history is not in the op table") from None


# --------------------------------------------------------------------------- result


@dataclass
class CheckResult:
    """The verdict on one history.

    ``ok`` is True (linearizable), False (not), or None (the search gave up
    after ``max_steps``).  ``witness`` holds one valid order per checked part
    when ok; ``keys`` names the failing part's keys (None: the whole history).
    """

    ok: bool | None
    history: History
    model: str
    explanation: str = ""
    keys: frozenset[Hashable] | None = None
    failing_calls: list[Call] = field(default_factory=list)
    witness: list[list[Call]] = field(default_factory=list)
    partitions: int = 1
    steps: int = 0
    kind: str = "linearizability"  # or "invariant": the history fits, the invariant failed

    def __bool__(self) -> bool:
        return self.ok is True

    def report(self) -> str:
        """Timeline of the failing part plus the explanation."""
        if self.ok:
            return f"linearizable ({self.partitions} part(s), {self.steps} search steps)"
        if self.kind == "invariant":
            return (f"The invariant failed after this history.\n"
                    f"initial state: {safe_repr(self.history.initial)}\n\n"
                    f"{format_timeline(self.history.calls)}\n\n{self.explanation}")
        scope = ("whole history" if self.keys is None
                 else f"keys {sorted(map(safe_repr, self.keys))}")
        calls = self.failing_calls or self.history.calls
        verdict = "NOT linearizable" if self.ok is False else "UNDECIDED (search budget exhausted)"
        return (
            f"History is {verdict} with respect to the {self.model} model ({scope}).\n"
            f"initial state: {safe_repr(self.history.initial)}\n\n"
            f"{format_timeline(calls)}\n\n{self.explanation}"
        )


def _show(state: Any) -> str:
    """repr of a model state; plain objects show their attributes."""
    if getattr(type(state), "__repr__", None) is object.__repr__ and hasattr(state, "__dict__"):
        attrs = ", ".join(f"{k}={safe_repr(v)}" for k, v in vars(state).items())
        return f"{type(state).__name__}({attrs})"
    return safe_repr(state)


def _explain_final(search: _Search, final: Any) -> str:
    assert search.final_mismatch is not None
    order, end = search.final_mismatch
    lines = ["Orders of the calls explain every result, but none ends in the observed final "
             "state (an update was lost, or a write no call returned shows up at the end)."]
    if order:
        lines.append("For example this order fits every result:")
        for i, c in enumerate(order, 1):
            lines.append(f"  {i}. T{c.thread} {format_call(c)} {format_outcome(c)}")
    lines.append(f"and leaves the model's final state  {safe_repr(end)}")
    lines.append(f"but the object's final state was    {safe_repr(final)}")
    if search.ok is False:
        lines.append("No other order fits either: the search explored all of them "
                     f"({search.steps} steps).")
    return "\n".join(lines)


def _explain(
    calls: Sequence[Call], ops: dict[str, Op], model: Model, search: _Search, initial: Any,
    final: Any = NO_FINAL,
) -> str:
    if search.final_mismatch is not None and len(search.best_prefix) == len(calls):
        return _explain_final(search, final)
    prefix = search.best_prefix
    done = {id(c) for c in prefix}
    remaining = [c for c in calls if id(c) not in done]
    lines = []
    if prefix:
        lines.append(
            "The longest order that fits the observations starts from the initial state and "
            "runs:"
        )
        for i, c in enumerate(prefix, 1):
            lines.append(f"  {i}. T{c.thread} {format_call(c)} {format_outcome(c)}")
        lines.append(f"leaving the model in state {_show(search.best_state)}.")
    else:
        lines.append(f"No call fits first, from the initial state {safe_repr(initial)}.")
    minimal = [c for c in remaining if not any(d.precedes(c) for d in remaining)]
    lines.append("Every call that may come next fails:")
    for c in minimal:
        _, outcome = _step(model, search.best_state, ops[c.op], c)
        if outcome.matches(c, model.exc_args):
            why = (f"fits here (model {outcome}), but no order of the remaining calls fits "
                   "after it")
        else:
            why = f"observed {format_outcome(c)}, but the model says {outcome} here"
        lines.append(f"  - T{c.thread} {format_call(c)}: {why}")
    blocked = [c for c in remaining if c not in minimal]
    if blocked:
        lines.append(
            f"(the other {len(blocked)} remaining call(s) cannot come next: each was invoked "
            "after one of the above had returned)"
        )
    if search.ok is False:
        lines.append("No other order fits either: the search explored all of them "
                     f"({search.steps} steps, memoized on (linearized calls, model state)).")
    return "\n".join(lines)


def check_history(
    history: History,
    table: OpTable,
    model: Model | type | Callable[[Any], Any] | None = None,
    *,
    partition: bool = True,
    max_steps: int = 2_000_000,
    final: Any = NO_FINAL,
) -> CheckResult:
    """Decide whether ``history`` is linearizable with respect to ``model``.

    ``table`` says how each op acts on the model state and which keys it
    touches.  With ``partition`` (default) and a model that supports
    ``restrict``, independent key groups are checked separately.  Results are
    compared by value (after the op's ``normalize``), exceptions by exact type
    (and message, for a model with ``exc_args``).  ``final``, the observed
    final state of the object (as the model's ``final`` projects it), must
    also equal the model's final state after the chosen order; it disables
    partitioning.
    """
    m = as_model(model, table)
    ops = {op.name: op for op in table.ops}
    for c in history.calls:
        _op(ops, c)
    if m.final is not None and final is not NO_FINAL:
        partition = False
    if partition and m.restrict is not None:
        parts = partition_history(history, table)
    else:
        parts = [(None, list(history.calls))]
    witness: list[list[Call]] = []
    total = 0
    for keys, calls in parts:
        initial = history.initial if keys is None else m.restrict(history.initial, keys)  # type: ignore[misc]
        search = _search(calls, ops, m, initial, max_steps, final)
        total += search.steps
        if search.ok is not True:
            return CheckResult(
                search.ok, history, m.name, _explain(calls, ops, m, search, initial, final),
                keys, list(calls), [], len(parts), total,
            )
        witness.append(search.order)
    return CheckResult(True, history, m.name, "", None, [], witness, len(parts), total)


def check_histories(
    histories: Iterable[History],
    table: OpTable,
    model: Model | type | Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> CheckResult | None:
    """Check each history; return the first failing result, or None when all pass."""
    for h in histories:
        r = check_history(h, table, model, **kwargs)
        if not r:
            return r
    return None

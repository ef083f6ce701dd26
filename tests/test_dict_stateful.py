"""Hypothesis state machine: ConcurrentDict against dict, every operation and
view, with the internal invariants checked after every step."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nogil_collections import ConcurrentDict
from nogil_collections._dict import ABSENT


class Collider:
    """Always hash 7: forces __eq__ calls and a generic (unpinned) table."""

    __slots__ = ("v",)

    def __init__(self, v: int) -> None:
        self.v = v

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Collider) and other.v == self.v

    def __repr__(self) -> str:
        return f"Collider({self.v})"


# A small pool so that operations hit existing keys; mixes pinned (str, int)
# and generic keys, and equal keys of different types (1 == 1.0 == True).
str_keys = st.sampled_from(["a", "b", "c", "key-long-" * 3, "é", "\U0001f600"])
int_keys = st.integers(-3, 12) | st.sampled_from([2**70, -(2**63)])
generic_keys = st.sampled_from([1.0, 2.5, (1, 2), ("a",), None, True]) | st.builds(
    Collider, st.integers(0, 3)
)
keys = str_keys | int_keys
any_keys = keys | generic_keys
values = st.integers(-2, 5) | st.sampled_from(["v", None, (1,)])


class DictMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model: dict = {}
        self.cd = ConcurrentDict()

    # -- mutations --------------------------------------------------------
    @rule(k=any_keys, v=values)
    def setitem(self, k, v):
        self.model[k] = v
        self.cd[k] = v

    @rule(k=keys, v=values)
    def setitem_pinned(self, k, v):
        self.model[k] = v
        self.cd[k] = v

    @rule(k=any_keys)
    def delitem(self, k):
        expected = k in self.model
        if expected:
            del self.model[k]
        try:
            del self.cd[k]
            assert expected
        except KeyError as e:
            assert not expected and e.args == (k,)

    @rule(k=any_keys, d=values)
    def pop(self, k, d):
        assert self.cd.pop(k, d) == self.model.pop(k, d)

    @rule(k=any_keys)
    def pop_nodefault(self, k):
        try:
            r = self.model.pop(k)
        except KeyError:
            try:
                self.cd.pop(k)
                raise AssertionError("pop should raise")
            except KeyError:
                return
        assert self.cd.pop(k) == r

    @rule()
    def popitem(self):
        if self.model:
            assert self.cd.popitem() == self.model.popitem()
        else:
            try:
                self.cd.popitem()
                raise AssertionError("popitem should raise")
            except KeyError:
                pass

    @rule(k=any_keys, d=values)
    def setdefault(self, k, d):
        assert self.cd.setdefault(k, d) == self.model.setdefault(k, d)

    @rule(items=st.lists(st.tuples(any_keys, values), max_size=6), how=st.integers(0, 3))
    def update(self, items, how):
        if how == 0:
            arg = dict(items)
            self.cd.update(arg)
        elif how == 1:
            arg = items
            self.cd.update(items)
        elif how == 2:
            arg = ConcurrentDict(items)
            self.cd |= arg
        else:
            arg = [(str(k), v) for k, v in items]
            self.cd.update(**dict(arg))
        self.model.update(arg)

    @rule(items=st.lists(st.tuples(any_keys, values), max_size=4))
    def or_operator(self, items):
        other = dict(items)
        assert (self.cd | other) == (self.model | other)
        assert (other | self.cd) == (other | self.model)
        assert list((self.cd | other).items()) == list((self.model | other).items())

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data())
    def clear_sometimes(self, data):
        if data.draw(st.integers(0, 4)) == 0:
            self.cd.clear()
            self.model.clear()

    @rule(k=any_keys, v=values, expect_absent=st.booleans())
    def compare_and_set(self, k, v, expect_absent):
        cur = self.model.get(k, ABSENT)
        expected = ABSENT if expect_absent else cur
        ok = self.cd.compare_and_set(k, expected, v)
        assert ok == (cur is expected or (cur is not ABSENT and expected is not ABSENT))
        if ok:
            self.model[k] = v

    @rule(k=any_keys, v=values)
    def pop_if(self, k, v):
        ok = self.cd.pop_if(k, v)
        should = k in self.model and self.model[k] == v
        assert ok == should
        if should:
            del self.model[k]

    @rule(k=keys)
    def update_item(self, k):
        def bump(x):
            return (x if isinstance(x, int) else 0) + 1

        base = self.model.get(k, 0)
        self.model[k] = bump(base)
        assert self.cd.update_item(k, bump, 0) == self.model[k]

    @rule(k=any_keys, v=values)
    def get_or_insert(self, k, v):
        assert self.cd.get_or_insert(k, lambda: v) == self.model.setdefault(k, v)

    @rule()
    def copy_roundtrip(self):
        c = self.cd.copy()
        c._check()
        assert list(c.items()) == list(self.model.items())
        self.cd = c  # continue on the copy (exercises copied tables)

    # -- reads ------------------------------------------------------------
    @rule(k=any_keys)
    def lookups(self, k):
        assert (k in self.cd) == (k in self.model)
        assert self.cd.get(k, "dflt") == self.model.get(k, "dflt")
        if k in self.model:
            assert self.cd[k] == self.model[k]
        assert (k in self.cd.keys()) == (k in self.model.keys())

    @rule(k=any_keys, v=values)
    def item_contains(self, k, v):
        assert ((k, v) in self.cd.items()) == ((k, v) in self.model.items())
        assert (v in self.cd.values()) == (v in self.model.values())

    @rule(other=st.sets(keys, max_size=4))
    def view_set_ops(self, other):
        ck, mk = self.cd.keys(), self.model.keys()
        assert (ck & other) == (mk & other)
        assert (ck | other) == (mk | other)
        assert (ck - other) == (mk - other)
        assert (ck ^ other) == (mk ^ other)
        assert (other - ck) == (other - mk)
        assert ck.isdisjoint(other) == mk.isdisjoint(other)
        assert (ck == mk) and (mk == ck)
        pairs = {(k, self.model[k]) for k in other if k in self.model}
        assert (self.cd.items() & pairs) == (self.model.items() & pairs)
        assert (self.cd.items() - pairs) == (self.model.items() - pairs)

    @rule()
    def equality(self):
        assert self.cd == self.model and self.model == self.cd
        assert not (self.cd != self.model)
        assert self.cd == ConcurrentDict(self.model)
        assert self.cd.snapshot() == self.model
        assert repr(self.cd) == repr(self.model)

    @invariant()
    def consistent(self):
        self.cd._check()
        assert len(self.cd) == len(self.model)
        assert bool(self.cd) == bool(self.model)
        assert list(self.cd) == list(self.model)
        assert list(reversed(self.cd)) == list(reversed(self.model))
        assert list(self.cd.values()) == list(self.model.values())
        assert list(self.cd.items()) == list(self.model.items())
        assert list(reversed(self.cd.items())) == list(reversed(self.model.items()))
        assert (
            len(self.cd.keys()) == len(self.cd.items()) == len(self.cd.values()) == len(self.model)
        )


DictMachine.TestCase.settings = settings(deadline=None, max_examples=60, stateful_step_count=40)
TestDictMachine = DictMachine.TestCase

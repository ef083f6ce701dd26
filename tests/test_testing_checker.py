"""The linearizability checker on hand-written histories: accepted, rejected, explained."""

from __future__ import annotations

import time
from typing import Any

import pytest

from _counters import CounterSpec
from nogil_collections.testing import (
    ABSENT,
    DICT_OPS,
    LIST_OPS,
    Call,
    Fn,
    History,
    Model,
    Op,
    OpTable,
    check_history,
    format_timeline,
    freeze,
    partition_history,
    run_scenario,
)
from nogil_collections.testing._ops import INC
from nogil_collections.testing._scenario import Scenario, Step


def C(thread: int, op: str, args: tuple[Any, ...], inv: int, resp: int, result: Any = None,
      exc: type[BaseException] | None = None) -> Call:
    return Call(thread, op, args, inv, resp, result, exc)


# --------------------------------------------------------------------------- dict


def test_sequential_dict_history_is_accepted() -> None:
    h = History({}, [
        C(0, "__setitem__", ("a", 1), 1, 2),
        C(1, "get", ("a",), 3, 4, 1),
        C(0, "pop", ("a",), 5, 6, 1),
        C(1, "__getitem__", ("a",), 7, 8, None, KeyError),
    ])
    r = check_history(h, DICT_OPS, dict)
    assert r.ok is True, r.report()
    assert [c.op for c in r.witness[0]] == ["__setitem__", "get", "pop", "__getitem__"]


def test_overlapping_read_may_see_either_value() -> None:
    for seen in (None, 1):
        h = History({}, [C(0, "__setitem__", ("a", 1), 1, 4), C(1, "get", ("a",), 2, 3, seen)])
        assert check_history(h, DICT_OPS, dict), seen


def test_stale_read_is_rejected() -> None:
    # The write returned (stamp 2) before the read started (stamp 3): the read
    # must see it.
    h = History({"a": 0}, [C(0, "__setitem__", ("a", 1), 1, 2), C(1, "get", ("a",), 3, 4, 0)])
    r = check_history(h, DICT_OPS, dict)
    assert r.ok is False
    text = r.report()
    assert "NOT linearizable" in text
    assert "observed -> 0, but the model says -> 1" in text


def test_lost_update_is_rejected() -> None:
    # Two overlapping increments both read 0 and both wrote 1: one is lost.
    h = History({"n": 0}, [
        C(0, "update_item", ("n", INC), 1, 4, 1),
        C(1, "update_item", ("n", INC), 2, 3, 1),
        C(2, "get", ("n",), 5, 6, 1),
    ])
    r = check_history(h, DICT_OPS, dict)
    assert r.ok is False
    assert "T1 update_item('n', inc)" in r.report() or "T0 update_item('n', inc)" in r.report()
    # The same history with a correct final count is fine.
    ok = History({"n": 0}, [
        C(0, "update_item", ("n", INC), 1, 4, 2),
        C(1, "update_item", ("n", INC), 2, 3, 1),
        C(2, "get", ("n",), 5, 6, 2),
    ])
    assert check_history(ok, DICT_OPS, dict)


def test_exceptions_compare_by_type() -> None:
    good = History({}, [C(0, "pop", ("a",), 1, 2, None, KeyError)])
    assert check_history(good, DICT_OPS, dict)
    wrong_type = History({}, [C(0, "pop", ("a",), 1, 2, None, LookupError)])
    assert not check_history(wrong_type, DICT_OPS, dict)
    raised_instead = History({"a": 1}, [C(0, "pop", ("a",), 1, 2, None, KeyError)])
    assert not check_history(raised_instead, DICT_OPS, dict)


def test_results_compare_by_value_and_bool_is_not_int() -> None:
    h = History({"a": 1}, [C(0, "__contains__", ("a",), 1, 2, 1)])
    assert not check_history(h, DICT_OPS, dict)
    h = History({"a": 1}, [C(0, "__contains__", ("a",), 1, 2, True)])
    assert check_history(h, DICT_OPS, dict)
    # snapshot results compare as item lists: insertion order counts.
    h = History({"a": 1, "b": 2}, [C(0, "snapshot", (), 1, 2, [("b", 2), ("a", 1)])])
    assert not check_history(h, DICT_OPS, dict)


def test_compare_and_set_absent_sentinel_model() -> None:
    h = History({}, [
        C(0, "compare_and_set", ("a", ABSENT, 1), 1, 4, True),
        C(1, "compare_and_set", ("a", ABSENT, 2), 2, 3, False),
        C(1, "get", ("a",), 5, 6, 1),
    ])
    assert check_history(h, DICT_OPS, dict)
    both_won = History({}, [
        C(0, "compare_and_set", ("a", ABSENT, 1), 1, 4, True),
        C(1, "compare_and_set", ("a", ABSENT, 2), 2, 3, True),
    ])
    assert not check_history(both_won, DICT_OPS, dict)


def test_get_or_insert_and_pop_if_models() -> None:
    f1 = Fn("const(1)", lambda: 1)
    f2 = Fn("const(2)", lambda: 2)
    two_inserts = History({}, [
        C(0, "get_or_insert", ("k", f1), 1, 4, 1),
        C(1, "get_or_insert", ("k", f2), 2, 3, 2),
    ])
    assert not check_history(two_inserts, DICT_OPS, dict)
    h = History({"k": 3}, [
        C(0, "pop_if", ("k", 3), 1, 4, True),
        C(1, "pop_if", ("k", 3), 2, 3, True),
    ])
    assert not check_history(h, DICT_OPS, dict)


def test_partition_per_key_and_whole_history_fallback() -> None:
    calls = [
        C(0, "__setitem__", ("a", 1), 1, 2),
        C(1, "__setitem__", ("b", 1), 1, 2),
        C(2, "update", ({"b": 2, "c": 3},), 3, 4),
        C(0, "get", ("d",), 5, 6),
    ]
    parts = partition_history(History({}, calls), DICT_OPS)
    keysets = sorted(sorted(k) for k, _ in parts if k is not None)
    assert keysets == [["a"], ["b", "c"], ["d"]]
    with_len = [*calls, C(1, "len", (), 7, 8, 3)]
    parts = partition_history(History({}, with_len), DICT_OPS)
    assert len(parts) == 1 and parts[0][0] is None


def test_failing_partition_is_named() -> None:
    h = History({}, [
        C(0, "__setitem__", ("a", 1), 1, 2),
        C(1, "__setitem__", ("b", 1), 3, 4),
        C(1, "get", ("b",), 5, 6, None),  # stale: b was set before
    ])
    r = check_history(h, DICT_OPS, dict)
    assert r.ok is False and r.keys == frozenset({"b"})
    assert r.partitions == 2
    assert "keys [\"'b'\"]" in r.report()


# --------------------------------------------------------------------------- list


def test_list_pop_twice_of_one_item_is_rejected() -> None:
    h = History([7], [C(0, "pop", (), 1, 3, 7), C(1, "pop", (), 2, 4, 7)])
    r = check_history(h, LIST_OPS, list)
    assert r.ok is False
    assert "IndexError" in r.report() or "model says" in r.report()


def test_list_overlapping_appends_any_order() -> None:
    h = History([], [
        C(0, "append", (1,), 1, 4),
        C(1, "append", (2,), 2, 3),
        C(2, "snapshot", (), 5, 6, [2, 1]),
    ])
    assert check_history(h, LIST_OPS, list)
    h.calls[2] = C(2, "snapshot", (), 5, 6, [2])
    assert not check_history(h, LIST_OPS, list)


def test_list_real_time_order_is_respected() -> None:
    # append(1) returned before append(2) began: [2, 1] is impossible.
    h = History([], [
        C(0, "append", (1,), 1, 2),
        C(1, "append", (2,), 3, 4),
        C(2, "copy", (), 5, 6, [2, 1]),
    ])
    assert not check_history(h, LIST_OPS, list)


def test_list_compound_models() -> None:
    h = History([0], [
        C(0, "compare_and_set", (0, 0, 5), 1, 4, True),
        C(1, "compare_and_set", (0, 0, 6), 2, 3, True),
    ])
    assert not check_history(h, LIST_OPS, list)
    h = History([], [
        C(0, "append_if_absent", (1,), 1, 4, True),
        C(1, "append_if_absent", (1,), 2, 3, True),
    ])
    assert not check_history(h, LIST_OPS, list)
    h = History([1], [C(0, "update", (0, INC), 1, 2, 2), C(1, "__getitem__", (0,), 3, 4, 2)])
    assert check_history(h, LIST_OPS, list)
    h = History([], [C(0, "compare_and_set", (0, 0, 1), 1, 2, None, IndexError)])
    assert check_history(h, LIST_OPS, list)


# --------------------------------------------------------------------------- user models


COUNTER_OPS = OpTable("counter", (Op("incr"), Op("get", mutates=False)))


def test_user_model_class() -> None:
    h = History(0, [
        C(0, "incr", (), 1, 4, 2), C(1, "incr", (), 2, 3, 1), C(0, "get", (), 5, 6, 2),
    ])
    assert check_history(h, COUNTER_OPS, CounterSpec)
    h = History(0, [C(0, "incr", (), 1, 4, 1), C(1, "incr", (), 2, 3, 1)])
    r = check_history(h, COUNTER_OPS, CounterSpec)
    assert r.ok is False
    assert "CounterSpec" in r.report()


def test_freeze_fingerprints() -> None:
    assert freeze([1, {"a": [2]}]) == freeze([1, {"a": [2]}])
    assert freeze({"a": 1, "b": 2}) != freeze({"b": 2, "a": 1})  # order matters
    assert freeze(CounterSpec(3)) == freeze(CounterSpec(3)) != freeze(CounterSpec(4))


def test_unknown_op_and_search_budget() -> None:
    with pytest.raises(KeyError, match="not in the op table"):
        check_history(History({}, [C(0, "frobnicate", (), 1, 2)]), DICT_OPS, dict)
    # 14 concurrent writes to distinct keys, and a len() that no order explains:
    # the search must visit every subset of the writes before saying no.
    calls = [C(t, "__setitem__", (t, 0), 1, 100) for t in range(14)]
    calls.append(C(14, "len", (), 1, 100, 99))
    r = check_history(History({}, calls), DICT_OPS, dict, max_steps=50)
    assert r.ok is None and "UNDECIDED" in r.report()


def test_timeline_format() -> None:
    calls = [C(0, "append", (1,), 1, 3), C(1, "pop", (), 2, 4, None, IndexError)]
    text = format_timeline(calls)
    lines = text.splitlines()
    assert "thread 0" in lines[0] and "thread 1" in lines[0]
    assert any("> append(1)" in ln for ln in lines)
    assert any("< raise IndexError" in ln for ln in lines)
    # Thread 0 is still in flight when thread 1 starts: a bar marks it.
    row = next(ln for ln in lines if "> pop()" in ln)
    assert row.split(" | ")[1].strip() == "|"


def test_model_object_with_custom_fingerprint() -> None:
    model = Model("sum", lambda init: [init], lambda s: list(s), lambda s: s[0])
    table = OpTable("sum", (Op("add", model=lambda s, n: s.__setitem__(0, s[0] + n)),))
    h = History(0, [C(0, "add", (1,), 1, 4), C(1, "add", (2,), 2, 3)])
    assert check_history(h, table, model)


# --------------------------------------------------------------------------- performance


def synthetic_history(
    table: OpTable, initial: Any, threads: int, ops: int, seed: int
) -> History:
    """A linearizable history with maximal overlap.

    Pick a random interleaving of the threads' ops as the linearization order,
    compute each result on the model in that order, then stretch every call's
    interval as far as its own thread allows: from just after the previous
    call of its thread returned to just before the next one's point.  The
    hidden order stays valid, and most calls overlap most others.
    """
    import random

    rng = random.Random(seed)
    state = dict(initial)
    per_key = [op for op in table.ops
               if op.keys is not None and op.name not in ("update", "__ior__")]
    order = [t for t in range(threads) for _ in range(ops)]
    rng.shuffle(order)
    points: dict[int, list[int]] = {t: [] for t in range(threads)}
    planned = []
    for pos, t in enumerate(order):
        op = rng.choice(per_key)
        key = rng.choice("abcdefgh")
        if op.name in ("__setitem__", "setdefault", "pop_default", "get_default", "pop_if"):
            args: tuple[Any, ...] = (key, rng.randrange(4))
        elif op.name == "compare_and_set":
            args = (key, rng.choice([ABSENT, 0, 1]), rng.randrange(4))
        elif op.name == "get_or_insert":
            v = rng.randrange(4)
            args = (key, Fn(f"const({v})", lambda v=v: v))
        elif op.name == "update_item":
            args = (key, INC, 0)
        else:
            args = (key,)
        try:
            res, exc = op.norm(op.model_runner(state, *args)), None
        except Exception as e:
            res, exc = None, type(e)
        point = 10 * pos + 5
        points[t].append(point)
        planned.append((t, op.name, args, point, res, exc))
    calls = []
    prev_resp = {t: 0 for t in range(threads)}
    index = {t: 0 for t in range(threads)}
    for t, name, args, point, res, exc in sorted(planned, key=lambda p: p[3]):
        i = index[t]
        index[t] += 1
        nxt = points[t][i + 1] if i + 1 < len(points[t]) else 10 * threads * ops + 10
        inv = rng.randint(prev_resp[t] + 1, point)
        resp = rng.randint(point, nxt - 2)
        prev_resp[t] = resp
        calls.append(C(t, name, args, inv, resp, res, exc))
    calls.sort(key=lambda c: c.invoke)
    return History(dict(initial), calls)


def test_checker_handles_4_threads_x_50_ops_dict_in_seconds() -> None:
    """Issue requirement: 4 x 50 dict ops checked within seconds, thanks to partitioning.

    Histories are synthetic with maximal overlap (every call stretched to its
    thread's neighbours), the hard case for the search.
    """
    table = DICT_OPS.linearizable()
    worst = 0.0
    for seed in range(5):
        h = synthetic_history(table, {"a": 0, "b": 1}, 4, 50, seed)
        h.validate()
        assert len(h.calls) == 200
        t0 = time.perf_counter()
        r = check_history(h, table, dict)
        elapsed = time.perf_counter() - t0
        worst = max(worst, elapsed)
        assert r.ok is True, r.report()
        assert r.partitions == 8
        # Corrupt one observed result: now it must be rejected, also quickly.
        # The last plain read: the search must rule out every order before it.
        victim = max(i for i, c in enumerate(h.calls) if c.op == "get" and c.exc_type is None)
        c = h.calls[victim]
        h.calls[victim] = C(c.thread, c.op, c.args, c.invoke, c.response, "bogus")
        t0 = time.perf_counter()
        bad = check_history(h, table, dict)
        worst = max(worst, time.perf_counter() - t0)
        assert bad.ok is False
    print(f"\n4x50 dict histories, max overlap, 8 keys: worst {worst:.3f} s per check")
    assert worst < 5.0


def test_real_4_threads_x_50_ops_builtin_dict_history() -> None:
    per_key = DICT_OPS.only("__setitem__", "get", "pop_default", "setdefault", "__contains__")
    import random

    rng = random.Random(1234)
    keys = "abcdefgh"
    steps = tuple(
        tuple(
            Step(n, (rng.choice(keys), rng.randrange(4))
                 if n in ("__setitem__", "setdefault", "pop_default") else (rng.choice(keys),))
            for n in (rng.choice(per_key.names) for _ in range(50))
        )
        for _ in range(4)
    )
    [h] = run_scenario(Scenario({}, steps), dict, per_key, repetitions=1)
    assert len(h.calls) == 200
    r = check_history(h, DICT_OPS, dict)
    assert r.ok is True, r.report()

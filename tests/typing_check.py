"""Checked by mypy (``make typecheck``), never run: the stubs are generic and complete.

Each line uses the public API the way a user would; ``assert_type`` pins what the
stubs promise, so a stub regression is a mypy error.
"""

from __future__ import annotations

from typing import assert_type

from nogil_collections import (
    ABSENT,
    ConcurrentDict,
    ConcurrentDictHandle,
    ConcurrentList,
    ConcurrentListHandle,
    json_default,
)


def list_api() -> None:
    lst: ConcurrentList[int] = ConcurrentList([3, 1, 2])
    lst.append(4)
    lst.extend(range(3))
    lst.insert(0, 9)
    assert_type(lst.pop(), int)
    assert_type(lst[0], int)
    assert_type(lst[1:], ConcurrentList[int])
    lst[0] = 5
    lst[1:3] = [7, 8]
    del lst[0]
    lst.sort()
    lst.sort(key=lambda x: -x, reverse=True)
    assert_type(lst.index(7), int)
    assert_type(lst.count(7), int)
    assert_type(lst.copy(), ConcurrentList[int])
    assert_type(lst.snapshot(), list[int])
    assert_type(lst.append_if_absent(3), bool)
    assert_type(lst.compare_and_set(0, 7, 8), bool)
    lst.update(0, lambda x: x + 1)
    lst.heapify()
    lst.heappush(0)
    assert_type(lst.heappop(), int)
    assert_type(lst.heappushpop(5), int)
    assert_type(lst.heapreplace(6), int)
    assert_type(len(lst), int)
    assert_type(7 in lst, bool)
    for item in lst:
        assert_type(item, int)
    assert_type(ConcurrentList[str](), ConcurrentList[str])


def dict_api() -> None:
    d: ConcurrentDict[str, int] = ConcurrentDict(a=1)
    d["b"] = 2
    assert_type(d["a"], int)
    assert_type(d.get("a"), int | None)
    assert_type(d.get("a", 0), int)
    assert_type(d.setdefault("c", 3), int)
    assert_type(d.pop("c"), int)
    assert_type(d.popitem(), tuple[str, int])
    d.update({"x": 1}, y=2)
    assert_type(d.snapshot(), dict[str, int])
    assert_type(d.compare_and_set("a", ABSENT, 1), bool)
    assert_type(d.get_or_insert("z", lambda: 0), int)
    d.update_item("a", lambda v: v + 1, 0)
    assert_type(d.pop_if("a", 2), bool)
    assert_type(d.copy(), ConcurrentDict[str, int])
    for k in d:
        assert_type(k, str)
    for k, v in d.items():
        assert_type(k, str)
        assert_type(v, int)
    assert_type(len(d), int)
    merged = d | {"q": 1}
    d |= {"r": 2}
    del merged


def handle_api() -> None:
    d: ConcurrentDict[str, int] = ConcurrentDict(a=1)
    h = d.handle()
    assert_type(h, ConcurrentDictHandle[str, int])
    assert_type(h.container, ConcurrentDict[str, int])
    assert_type(h["a"], int)
    assert_type(h.get("a"), int | None)
    assert_type(h.get("a", 0), int)
    assert_type("a" in h, bool)
    assert_type(len(h), int)
    h["b"] = 2
    del h["b"]
    assert_type(h.setdefault("c", 3), int)
    assert_type(h.get_or_insert("z", lambda: 0), int)
    assert_type(h.update_item("a", lambda v: v + 1, 0), int)
    assert_type(h.compare_and_set("a", ABSENT, 1), bool)
    assert_type(h.snapshot(), dict[str, int])
    assert_type(h.copy(), ConcurrentDict[str, int])
    assert_type(h.owner_thread, int)
    assert_type(h.handle(), ConcurrentDictHandle[str, int])
    assert_type(h.pop_if("a", ABSENT), bool)
    assert_type(h.fromkeys(["k"], 0), ConcurrentDict[str, int])
    assert_type(h | {"q": 1}, ConcurrentDict[str, int])
    h.update({"x": 1}, y=2)
    h |= {"q": 1}
    for k in h:
        assert_type(k, str)

    lst: ConcurrentList[int] = ConcurrentList([1])
    g = lst.handle()
    assert_type(g, ConcurrentListHandle[int])
    assert_type(g[0], int)
    assert_type(g[1:], ConcurrentList[int])
    g[0] = 5
    g.append(2)
    assert_type(g.pop(), int)
    assert_type(g.append_if_absent(3), bool)
    assert_type(g.update(0, lambda x: x + 1), int)
    g.heappush(1)
    assert_type(g.heappop(), int)
    assert_type(len(g), int)
    assert_type(g.handle(), ConcurrentListHandle[int])
    assert_type(g.container, ConcurrentList[int])
    assert_type(g * 2, ConcurrentList[int])
    g.sort(key=lambda x: -x)
    g += [4]


def json_api() -> None:
    import json

    d: ConcurrentDict[str, int] = ConcurrentDict(a=1)
    assert_type(json.dumps(d, default=json_default), str)


def immortal_api() -> None:
    d = ConcurrentDict.immortal({"a": 1})
    assert_type(d, ConcurrentDict[str, int])
    assert_type(ConcurrentDict.immortal(a=1, b=2), ConcurrentDict[str, int])
    assert_type(ConcurrentDict.immortal([(1, "x")]), ConcurrentDict[int, str])
    lst = ConcurrentList.immortal([1, 2])
    assert_type(lst, ConcurrentList[int])
    assert_type(lst.copy(), ConcurrentList[int])


def race_testing_api() -> None:
    from nogil_collections.testing import (
        Deadlock,
        NotLinearizable,
        OpTable,
        RaceReport,
        explore,
        find_race,
        race_test,
    )

    class Counter:
        def __init__(self) -> None:
            self.value = 0

        def increment(self) -> None:
            self.value += 1

    assert_type(find_race(Counter), NotLinearizable | Deadlock | None)
    assert_type(explore(Counter, invariant=lambda c: c.value >= 0), RaceReport)
    assert_type(OpTable.from_class(Counter, {"increment": None}), OpTable)
    assert_type(OpTable.from_class(Counter).skipped_methods, dict[str, str])

    @race_test(Counter)
    def test_counter(report: RaceReport) -> None:
        assert_type(report.pairs_seen, set[tuple[str, str]])
        assert_type(report.coverage(), str)

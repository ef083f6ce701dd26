"""ConcurrentDict's two entry layouts (docs/design.md, "Table").

Pinned tables (only exact str and exact int keys) store 16-byte entries
without the hash, as CPython's unicode-keys tables: a str key's hash is the
one cached in the object, an int's is recomputed from its value and ints
compare by value.  Generic tables keep 24-byte entries with the hash.  These
tests check which layout a dict has, that every path that walks entries
(probe, insert, delete, resize, conversion, copies, pickling, GC, __sizeof__)
works on both, and that lookups through non-identical key objects -- the
case where the hash must come from the key object -- find the right entry.
"""

from __future__ import annotations

import copy
import gc
import pickle
import sys
import threading
import time
import weakref
from collections.abc import Callable

import pytest

from _threads import run_threads
from nogil_collections import ConcurrentDict

CD = ConcurrentDict
DURATION = 0.8  # seconds per stress phase


def fresh_str(s: str) -> str:
    """An equal str that is a different object (not interned)."""
    r = "".join([s[:1], s[1:]]) if len(s) > 1 else (s + "x")[:-1]
    if len(s) > 1:
        assert r is not s
    return r


def fresh_int(i: int) -> int:
    """An equal int that is a different object when outside the small-int cache."""
    return int(str(i))


def info(d: CD) -> dict[str, int | bool]:
    return d._table_info()


# --------------------------------------------------------------------------- layouts


def test_str_only_table_is_pinned_with_16_byte_entries() -> None:
    d = CD()
    keys = [f"s{i}" for i in range(500)]
    for i, k in enumerate(keys):
        d[k] = i
    t = info(d)
    assert t["pinned"] and t["entry_size"] == 16
    for i, k in enumerate(keys):
        assert d[fresh_str(k)] == i
        assert d.get(fresh_str(k)) == i
        assert fresh_str(k) in d
    assert "missing" not in d and d.get("s500") is None
    d._check()


@pytest.mark.parametrize(
    "keys",
    [
        list(range(-300, 300)),
        [2**40 + i for i in range(200)],  # two-digit ints: compared by long_richcompare
        [-(2**70) - i for i in range(200)],
        [-1, -2, 2**61 - 2, 2**61 - 1, 2**61, -(2**61) + 1, 2**63, 2**64 + 7],
    ],
    ids=["small", "two-digit", "big-negative", "hash-edge-cases"],
)
def test_int_only_table_is_pinned_and_compares_by_value(keys: list[int]) -> None:
    d = CD()
    for i, k in enumerate(keys):
        d[k] = i
    t = info(d)
    assert t["pinned"] and t["entry_size"] == 16
    for i, k in enumerate(keys):
        assert d[fresh_int(k)] == i
    # -1 and -2 share the hash -2: both present, both found by value.
    assert len(d) == len(set(keys))
    assert (max(keys) + 12345) not in d
    d._check()


def test_hash_colliding_str_and_int_in_one_pinned_table() -> None:
    # A str and an int with the same hash sit in one probe sequence; a str
    # never equals an int, so each lookup must skip the other.
    # (hash(h) == h only for |h| < 2**61 - 1, the modulus of int hashing.)
    strs = [s for s in (f"collide-{i}" for i in range(2000)) if abs(hash(s)) < 2**61 - 1][:200]
    assert len(strs) == 200
    d = CD()
    for s in strs:
        h = hash(s)
        d[s] = ("str", s)
        d[h] = ("int", h)  # same hash, same probe sequence
    assert info(d)["pinned"]
    for s in strs:
        h = hash(s)
        assert hash(h) == h
        assert d[fresh_str(s)] == ("str", s)
        assert d[fresh_int(h)] == ("int", h)
    assert len(d) == 2 * len(strs)
    d._check()


def test_other_key_types_find_equal_pinned_keys() -> None:
    # Keys that are not exact str/int but equal to one (1.0, True, a str
    # subclass) are compared with __eq__ after the hash the table does not
    # store is recomputed from the stored key.
    class S(str):
        pass

    d = CD({1: "one", 2**40: "big", "abc": "s", -1: "m1"})
    assert d[1.0] == "one" and d[True] == "one"
    assert d[float(2**40)] == "big"
    assert d[S("abc")] == "s"
    assert d[-1.0] == "m1"
    assert 2.5 not in d and S("abd") not in d
    assert info(d)["pinned"]  # lookups do not convert
    d[1.0] = "ONE"  # replaces the value of the equal key 1, keeps key 1
    assert info(d)["pinned"] and next(iter(d.items())) == (1, "ONE")
    d._check()


def test_generic_table_has_24_byte_entries() -> None:
    d = CD({(1, 2): "t", "a": 1, 5: 5})
    t = info(d)
    assert not t["pinned"] and t["entry_size"] == 24
    assert d[(1, 2)] == "t" and d[fresh_str("a") + ""] == 1 and d[fresh_int(5)] == 5
    d._check()


def test_conversion_to_generic_keeps_every_entry() -> None:
    d = CD()
    keys: list[object] = [f"k{i}" for i in range(300)] + [10**6 + i for i in range(300)]
    keys.append(-(2**80))
    for i, k in enumerate(keys):
        d[k] = i
    for k in keys[::3]:
        del d[k]  # pinned tombstones before the conversion
    assert info(d)["pinned"] and info(d)["ndead_pinned"] > 0
    d[(0, "tuple")] = "generic"
    t = info(d)
    assert not t["pinned"] and t["entry_size"] == 24 and t["ndead_pinned"] == 0
    for i, k in enumerate(keys):
        if i % 3:
            assert d[k] == i
            key = fresh_str(k) if isinstance(k, str) else fresh_int(k)  # type: ignore[arg-type]
            assert d[key] == i
        else:
            assert k not in d
    d._check()  # checks each stored hash against hash(key)
    d.clear()
    assert info(d)["pinned"]  # clear() starts a pinned table again


# --------------------------------------------------------------------------- resize, tombstones


@pytest.mark.parametrize("kind", ["str", "int", "generic"])
def test_resize_keeps_layout_and_geometry(kind: str) -> None:
    d = CD()
    sizes = set()
    for i in range(5000):
        k: object = f"r{i}" if kind == "str" else (i * 7919 if kind == "int" else (i,))
        d[k] = i
        t = info(d)
        sizes.add(t["size"])
        assert t["entry_size"] == (24 if kind == "generic" else 16)
    assert len(sizes) >= 8  # it grew many times
    t = info(d)
    idx = 1 if t["size"] <= 128 else (2 if t["size"] <= 2**15 else 4)
    # header + indices + entries, the entries at the layout's size
    assert t["nbytes"] - t["size"] * idx - t["capacity"] * t["entry_size"] < 512
    d._check()


def test_pinned_tombstones_and_reinsertion() -> None:
    d = CD()
    keys = [f"t{i}" for i in range(1000)] + list(range(1000, 2000))
    for k in keys:
        d[k] = k
    for k in keys[::2]:
        del d[k]
    t = info(d)
    assert t["pinned"] and t["ndead_pinned"] == len(keys) // 2
    d._check()
    for k in keys[::2]:
        assert k not in d
        assert d.get(fresh_str(k) if isinstance(k, str) else fresh_int(k)) is None
    for k in keys[1::2]:
        assert d[k] == k
    for k in keys[::2]:
        d[k] = ("again", k)  # appended: the tombstones stay until a resize
    d._check()
    assert d.popitem() == (keys[-2], ("again", keys[-2]))
    while len(d) > 10:
        d.popitem()
    d._check()
    # Churn: deletes and re-inserts until resizes compact the tombstones.
    for r in range(20):
        for k in keys[:200]:
            d[k] = r
        for k in keys[:200]:
            del d[k]
    d._check()
    assert info(d)["nentries"] <= info(d)["capacity"]


# --------------------------------------------------------------------------- copies, pickling, GC


@pytest.mark.parametrize("kind", ["str", "int", "mixed", "generic"])
def test_copy_pickle_iteration_on_both_layouts(kind: str) -> None:
    keys: list[object]
    if kind == "str":
        keys = [f"c{i}" for i in range(300)]
    elif kind == "int":
        keys = [i * 1_000_003 for i in range(-150, 150)]
    elif kind == "mixed":
        keys = [f"c{i}" if i % 2 else i for i in range(300)]
    else:
        keys = [(i,) if i % 3 == 0 else f"c{i}" for i in range(300)]
    d = CD((k, i) for i, k in enumerate(keys))
    for k in keys[::5]:
        del d[k]
    expected = {k: i for i, k in enumerate(keys) if k not in keys[::5]}
    pinned = kind != "generic"
    assert info(d)["pinned"] == pinned
    c = d.copy()
    assert info(c)["pinned"] == pinned and c == expected
    c._check()  # the copy's entries were placed with hashes collected from d
    assert copy.deepcopy(d) == expected
    p = pickle.loads(pickle.dumps(d))
    assert type(p) is CD and p == expected and info(p)["pinned"] == pinned
    p._check()
    assert list(d) == list(expected)
    assert list(reversed(d)) == list(reversed(expected))
    assert list(d.items()) == list(expected.items())
    assert list(d.values()) == list(expected.values())
    assert d.snapshot() == expected


@pytest.mark.parametrize("key", ["gc-key", 12345678901, (1, "generic")])
def test_gc_traverse_on_both_layouts(key: object) -> None:
    class Node:
        pass

    d = CD()
    n = Node()
    n.d = d  # type: ignore[attr-defined]
    d[key] = n  # a cycle through the table's value
    d[fresh_str("other") if isinstance(key, str) else 99] = 0
    w = weakref.ref(n)
    del d, n
    gc.collect()
    assert w() is None


# --------------------------------------------------------------------------- __sizeof__


def _filled(factory: type, keys: list[object]) -> object:
    c = factory()
    for i, k in enumerate(keys):
        c[k] = i
    return c


def test_sizeof_is_proportional_to_the_layout() -> None:
    base = sys.getsizeof(CD())
    for n in (1000, 20000):
        s = _filled(CD, [f"z{i}" for i in range(n)])
        g = _filled(CD, [(i,) for i in range(n)])
        ts, tg = info(s), info(g)  # type: ignore[arg-type]
        assert ts["size"] == tg["size"]  # same growth, same geometry
        diff = sys.getsizeof(g) - sys.getsizeof(s)
        assert diff == tg["capacity"] * 8  # the hash column, nothing else
        assert sys.getsizeof(s) - base >= ts["capacity"] * 16


def test_memory_of_100k_str_keys_matches_dict() -> None:
    # Memory is deterministic (not a timing): the pinned table's size is
    # dict's own, as its growth policy and entry size are.
    keys = [f"key:{i:07d}" for i in range(100_000)]
    ours = sys.getsizeof(_filled(CD, keys))  # type: ignore[arg-type]
    theirs = sys.getsizeof(_filled(dict, keys))  # type: ignore[arg-type]
    assert ours <= 1.1 * theirs, (ours, theirs)


# --------------------------------------------------------------------------- races


def _own_key_copies(local: threading.local, keys: list[object]) -> list[object]:
    """This thread's own equal copies of `keys` (made once per thread), so that
    lookups compare by value, never by identity with the stored keys."""
    mine: list[object] | None = getattr(local, "keys", None)
    if mine is None:
        mine = local.keys = [
            fresh_str(k) if isinstance(k, str) else fresh_int(k)  # type: ignore[arg-type]
            for k in keys
        ]
    return mine


def _readers_then_writer(
    write_round: Callable[[int], None], read_pass: Callable[[], None], readers: int = 2
) -> tuple[int, list[int]]:
    """Run `readers` threads calling read_pass() until the writer is done,
    and one writer calling write_round(r) for DURATION seconds once every
    reader has completed a first pass (on a loaded machine a reader may be
    scheduled late: the writer's phase must overlap reading, not precede
    it).  Returns (writer rounds, passes per reader)."""
    started = [threading.Event() for _ in range(readers)]
    stop = threading.Event()

    def writer() -> int:
        try:
            for e in started:
                assert e.wait(30), "a reader never started"
            deadline = time.monotonic() + DURATION
            r = 0
            while time.monotonic() < deadline:
                r += 1
                write_round(r)
            return r
        finally:
            stop.set()

    def reader(j: int) -> Callable[[], int]:
        def run() -> int:
            passes = 0
            try:
                while True:
                    read_pass()
                    passes += 1
                    started[j].set()
                    if stop.is_set():
                        return passes
            finally:
                started[j].set()  # never leave the writer waiting on an error

        return run

    results = run_threads([writer] + [reader(j) for j in range(readers)])
    return results[0], results[1:]


@pytest.mark.free_threaded_only
@pytest.mark.parametrize("kind", ["str", "int", "mixed"])
def test_readers_with_fresh_keys_during_inserts_deletes_and_resizes(kind: str) -> None:
    # Readers look stable keys up through their own equal objects (the
    # probe reads the hash from the stored key, or compares ints by value),
    # while a writer inserts and deletes other keys of the same kinds,
    # growing the table and leaving tombstones.
    def make(i: int) -> object:
        if kind == "str" or (kind == "mixed" and i % 2):
            return f"stable-{i}"
        return 10**9 + i

    stable = [make(i) for i in range(200)]
    d = CD((k, ("v", k)) for k in stable)

    def write_round(r: int) -> None:
        churn = [f"churn-{r}-{i}" if i % 2 else 2 * 10**9 + r * 1000 + i for i in range(300)]
        for k in churn:
            d[k] = r
        for k in churn:
            del d[k]

    local = threading.local()

    def read_pass() -> None:
        mine = _own_key_copies(local, stable)
        for k in mine:
            assert d[k] == ("v", k)
        assert d.get("never-there") is None

    rounds, passes = _readers_then_writer(write_round, read_pass)
    assert rounds > 0 and all(p > 0 for p in passes)
    assert info(d)["pinned"]
    d._check()


@pytest.mark.free_threaded_only
def test_conversion_to_generic_while_readers_run() -> None:
    # Each round publishes a fresh pinned dict, then converts it to a generic
    # table (a resize into 24-byte entries) and deletes the converted str
    # keys, which the generic table releases at once.  Readers keep looking
    # the stable keys up through their own objects: never a miss, never a
    # wrong value, in either layout or across the switch.
    stable: list[object] = [f"s{i}" for i in range(100)] + [10**12 + i for i in range(100)]
    box: list[CD] = [CD((k, k) for k in stable)]
    # Every published dict stays alive until the end: a reader's lock-free
    # read of box[0] (CPython's list_get_item_ref) may try-incref a dict the
    # writer just replaced; were it freed, its memory would be reused by the
    # next round's dict, which TSAN reports against CPython's own list read.
    published: list[CD] = list(box)

    def write_round(r: int) -> None:
        d = CD((k, k) for k in stable)
        extra = [f"x{r}-{i}" for i in range(50)]
        for k in extra:
            d[k] = 0
        published.append(d)
        box[0] = d
        d[("generic", r)] = r  # pinned -> generic, readers inside
        assert not info(d)["pinned"]
        for k in extra:
            del d[k]
        d._check()

    local = threading.local()

    def read_pass() -> None:
        mine = _own_key_copies(local, stable)
        d = box[0]
        for k in mine:
            assert d[k] == k

    rounds, passes = _readers_then_writer(write_round, read_pass)
    assert rounds > 0 and all(p > 0 for p in passes)

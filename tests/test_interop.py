"""Drop-in audit: the standard library modules that take lists and dicts,
used with ConcurrentList / ConcurrentDict exactly as a program would use the
builtins.  One test per use.  Where it works, the result must equal the one
the builtin gives; where it does not, the test asserts the documented
difference (docs/guarantees.md, "Standard library interop") and its
workaround.
"""

from __future__ import annotations

import abc
import array
import bisect
import collections
import collections.abc
import copy
import csv
import dataclasses
import functools
import heapq
import io
import itertools
import json
import operator
import pickle
import pprint
import random
import reprlib
import string
import typing
from typing import Any

import pytest

from nogil_collections import ConcurrentDict, ConcurrentList, json_default

LIST_TYPE = "nogil_collections._list.ConcurrentList"


def pair() -> tuple[list[Any], ConcurrentList[Any]]:
    data = [5, 3, 8, 1, 9, 2]
    return list(data), ConcurrentList(data)


def dpair() -> tuple[dict[str, Any], ConcurrentDict[str, Any]]:
    data = {"b": 2, "a": 1, "c": 3}
    return dict(data), ConcurrentDict(data)


# --------------------------------------------------------------------------- copy


def test_copy_shallow() -> None:
    inner = [1]
    cl, cd = ConcurrentList([inner]), ConcurrentDict(k=inner)
    for obj in (cl, cd):
        c = copy.copy(obj)
        assert type(c) is type(obj) and c == obj and c is not obj
    assert copy.copy(cl)[0] is inner and copy.copy(cd)["k"] is inner


def test_copy_deep() -> None:
    inner = [1]
    cl = ConcurrentList([inner, ConcurrentDict(k=inner)])
    c = copy.deepcopy(cl)
    assert type(c) is ConcurrentList and type(c[1]) is ConcurrentDict
    assert c == cl and c[0] is not inner and c[1]["k"] is c[0]  # memo shared


# --------------------------------------------------------------------------- pickle


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip(protocol: int) -> None:
    obj = ConcurrentDict(a=ConcurrentList([1, 2]), b={"x": ConcurrentList()})
    back = pickle.loads(pickle.dumps(obj, protocol))
    assert type(back) is ConcurrentDict and type(back["a"]) is ConcurrentList
    assert back == obj


# --------------------------------------------------------------------------- json


def test_json_plain_dumps_raises_like_any_unknown_type() -> None:
    # Documented difference: the stdlib encoder has no supported hook for
    # non-list/dict containers (see nogil_collections._json for why).
    with pytest.raises(TypeError, match=r"^Object of type ConcurrentDict is not JSON serializable"):
        json.dumps(ConcurrentDict(a=1))
    with pytest.raises(TypeError, match=r"^Object of type ConcurrentList is not JSON serializable"):
        json.dumps({"x": ConcurrentList([1])})


@pytest.mark.parametrize("options", [{}, {"indent": 2}, {"sort_keys": True},
                                     {"separators": (",", ":")}])
def test_json_default_matches_the_builtins(options: dict[str, Any]) -> None:
    # indent=2 takes the pure-Python encoder on 3.11 and the C one on 3.13.
    built = {"b": [1, {"y": 2.5}], "a": None, "c": ["s", True]}
    conc = ConcurrentDict(b=ConcurrentList([1, ConcurrentDict(y=2.5)]), a=None,
                          c=ConcurrentList(["s", True]))
    assert json.dumps(conc, default=json_default, **options) == json.dumps(built, **options)
    # nested in builtins too
    assert json.dumps([conc], default=json_default, **options) == json.dumps([built], **options)


def test_json_dump_to_a_file() -> None:
    out = io.StringIO()
    json.dump(ConcurrentList([ConcurrentDict(a=1)]), out, default=json_default)
    assert out.getvalue() == '[{"a": 1}]'


def test_json_default_rejects_other_types_like_json() -> None:
    for obj in (object(), {1, 2}, b"x"):
        with pytest.raises(TypeError) as ours:
            json.dumps(obj, default=json_default)
        with pytest.raises(TypeError) as plain:
            json.dumps(obj)
        assert str(ours.value) == str(plain.value)


def test_json_default_detects_cycles() -> None:
    cd: ConcurrentDict[str, Any] = ConcurrentDict()
    cd["self"] = cd
    with pytest.raises(ValueError, match="Circular reference detected"):
        json.dumps(cd, default=json_default)
    cd.clear()


def test_json_loads_into_concurrent_containers() -> None:
    text = '{"a": {"b": [1, 2]}}'
    d = json.loads(text, object_pairs_hook=ConcurrentDict)
    assert type(d) is ConcurrentDict and type(d["a"]) is ConcurrentDict
    assert d == json.loads(text)


def test_json_why_not_a_dict_subclass() -> None:
    # The decision in nogil_collections._json: a dict subclass passes the C
    # encoder's PyDict_Check, which then reads the builtin's own (here
    # empty) storage, whatever items() says: silently wrong output.
    class Elsewhere(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            return [("a", 1)]

        def __len__(self) -> int:
            return 1

    assert json.dumps(Elsewhere()) == "{}"


def test_json_orjson_path() -> None:
    orjson = pytest.importorskip("orjson")
    conc = ConcurrentDict(a=ConcurrentList([1, ConcurrentDict(b=2)]))
    assert orjson.dumps(conc, default=json_default) == b'{"a":[1,{"b":2}]}'
    assert orjson.loads(orjson.dumps(conc.snapshot(), default=json_default)) == {
        "a": [1, {"b": 2}]}


def test_json_msgspec_path() -> None:
    msgspec = pytest.importorskip("msgspec")
    conc = ConcurrentDict(a=ConcurrentList([1, ConcurrentDict(b=2)]))
    assert msgspec.json.encode(conc, enc_hook=json_default) == b'{"a":[1,{"b":2}]}'


# --------------------------------------------------------------------------- csv


def test_csv_writer_rows() -> None:
    outs = []
    for row in ([1, "a,b", None], ConcurrentList([1, "a,b", None])):
        buf = io.StringIO()
        csv.writer(buf).writerow(row)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1] == '1,"a,b",\r\n'


def test_csv_dict_writer_and_reader() -> None:
    outs = []
    for row in ({"x": 1, "y": 2}, ConcurrentDict(x=1, y=2)):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["x", "y"])
        w.writeheader()
        w.writerow(row)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1]
    rows = [ConcurrentDict(r) for r in csv.DictReader(io.StringIO(outs[0]))]
    assert rows == [{"x": "1", "y": "2"}]
    with pytest.raises(ValueError, match="dict contains fields not in fieldnames: 'z'"):
        csv.DictWriter(io.StringIO(), fieldnames=["x"]).writerow(ConcurrentDict(x=1, z=2))


# --------------------------------------------------------------------------- string


def test_string_formatting_with_a_mapping() -> None:
    ref, cd = dpair()
    for m in (ref, cd):
        assert "%(a)s-%(b)s" % m == "1-2"  # noqa: UP031  (the use under test)
        assert "{a}-{b}".format_map(m) == "1-2"
        assert string.Template("$a-$c").substitute(m) == "1-3"
        assert string.Formatter().vformat("{a}", (), m) == "1"


def test_string_join_and_index_fields() -> None:
    words = ConcurrentList(["x", "y"])
    assert "-".join(words) == "x-y"
    assert "{0[1]}".format(words) == "y"  # noqa: UP030, UP032  (the use under test)


# --------------------------------------------------------------------------- dataclasses


@dataclasses.dataclass
class Point:
    x: int


@dataclasses.dataclass
class Holder:
    items: Any = dataclasses.field(default_factory=ConcurrentList)
    index: Any = dataclasses.field(default_factory=ConcurrentDict)


def test_dataclasses_default_factory() -> None:
    a, b = Holder(), Holder()
    a.items.append(1)
    assert type(a.items) is ConcurrentList and b.items == [] and a == Holder(ConcurrentList([1]))


def test_dataclasses_asdict_difference() -> None:
    # asdict/astuple recurse only into list/tuple/dict (isinstance): a
    # concurrent container is deep-copied as is, so dataclasses inside it
    # stay dataclasses.  Documented; workaround: snapshot() first.
    h = Holder(ConcurrentList([Point(1)]), ConcurrentDict(p=Point(2)))
    d = dataclasses.asdict(h)
    assert type(d["items"]) is ConcurrentList and d["items"] == [Point(1)]
    assert d["index"] == {"p": Point(2)}
    h2 = Holder(h.items.snapshot(), h.index.snapshot())
    assert dataclasses.asdict(h2) == {"items": [{"x": 1}], "index": {"p": {"x": 2}}}


# --------------------------------------------------------------------------- collections


def test_collections_counter() -> None:
    assert collections.Counter(ConcurrentList("abca")) == collections.Counter("abca")
    ref, cd = dpair()
    assert collections.Counter(cd) == collections.Counter(ref)
    c: collections.Counter[str] = collections.Counter()
    c.update(cd)
    assert c == collections.Counter(ref)


def test_collections_chainmap() -> None:
    ref, cd = dpair()
    for m in (ref, cd):
        chain = collections.ChainMap({"a": 0}, m)
        assert chain["a"] == 0 and chain["c"] == 3 and len(chain) == 3
        chain.maps[1]["d"] = 4
        assert chain["d"] == 4
    cm = collections.ChainMap(cd)
    cm["z"] = 26  # writes go to the first map
    assert cd["z"] == 26


def test_collections_ordereddict_comparisons() -> None:
    od = collections.OrderedDict([("a", 1), ("c", 3), ("b", 2)])
    ref, cd = dpair()
    # Order-insensitive against a non-OrderedDict, as dict == OrderedDict.
    assert (od == ref) is (od == cd) is (cd == od) is True
    assert (od != cd) is False
    assert collections.OrderedDict(cd) == ref


def test_collections_userlist_userdict_deque() -> None:
    ref, cl = pair()
    assert collections.UserList(cl) == ref
    assert collections.UserDict(ConcurrentDict(a=1)) == {"a": 1}
    assert list(collections.deque(cl, maxlen=3)) == ref[-3:]


# --------------------------------------------------------------------------- random


def test_random_functions_give_the_same_draws() -> None:
    ref, cl = pair()
    for fn in (lambda r, s: r.choice(s), lambda r, s: r.sample(s, 3),
               lambda r, s: r.choices(s, k=4)):
        assert fn(random.Random(7), cl) == fn(random.Random(7), ref)


def test_random_shuffle_in_place() -> None:
    ref, cl = pair()
    random.Random(3).shuffle(ref)
    random.Random(3).shuffle(cl)  # in place, item by item: not atomic
    assert cl == ref


# --------------------------------------------------------------------------- bisect


def test_bisect_search_and_insort() -> None:
    ref, cl = sorted(pair()[0]), ConcurrentList(sorted(pair()[0]))
    for x in (0, 3, 4, 10):
        assert bisect.bisect_left(cl, x) == bisect.bisect_left(ref, x)
        assert bisect.bisect_right(cl, x, lo=1) == bisect.bisect_right(ref, x, lo=1)
    for x in (4, 0, 10):
        bisect.insort(ref, x)
        bisect.insort(cl, x)  # calls cl.insert: each insert atomic, not the pair
    assert cl == ref
    assert bisect.bisect(cl, 5, key=lambda v: v) == bisect.bisect(ref, 5, key=lambda v: v)


# --------------------------------------------------------------------------- heapq


def test_heapq_functions_need_a_real_list() -> None:
    # Documented difference: heapq's C functions check PyList_Check.
    with pytest.raises(TypeError, match=rf"heappush\(\) argument 1 must be list, not {LIST_TYPE}"):
        heapq.heappush(ConcurrentList(), 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"heapify\(\) argument (1 )?must be list"):
        heapq.heapify(ConcurrentList())  # type: ignore[arg-type]


def test_heapq_methods_and_iterable_functions() -> None:
    ref, cl = pair()
    heapq.heapify(ref)
    cl.heapify()
    heapq.heappush(ref, 4)
    cl.heappush(4)
    assert cl == ref and cl.heappop() == heapq.heappop(ref)
    assert heapq.nsmallest(2, cl) == heapq.nsmallest(2, ref)
    assert heapq.nlargest(2, cl) == heapq.nlargest(2, ref)
    assert list(heapq.merge(ConcurrentList([1, 4]), [2, 3])) == [1, 2, 3, 4]


# --------------------------------------------------------------------------- array


def test_array_from_and_to() -> None:
    ref, cl = pair()
    assert array.array("i", cl) == array.array("i", ref)
    a = array.array("i")
    a.extend(cl)
    assert a.tolist() == ref
    cl2: ConcurrentList[int] = ConcurrentList(array.array("i", [1, 2]))
    assert cl2 == [1, 2]


def test_array_fromlist_needs_a_real_list() -> None:
    with pytest.raises(TypeError, match=r"^arg must be list$"):
        array.array("i").fromlist(ConcurrentList([1]))  # type: ignore[arg-type]
    a = array.array("i")
    a.fromlist(ConcurrentList([1]).snapshot())  # the workaround
    assert a.tolist() == [1]


# --------------------------------------------------------------------------- pprint


def test_pprint_short_containers_match() -> None:
    ref, cl = pair()
    dref, cd = dpair()
    assert pprint.pformat(cl) == pprint.pformat(ref)
    # Difference: pprint sorts the keys of a dict, not of a ConcurrentDict
    # (its repr is used as is); with sort_dicts=False they agree.
    assert pprint.pformat(cd) == repr(dref) != pprint.pformat(dref)
    assert pprint.pformat(cd, sort_dicts=False) == pprint.pformat(dref, sort_dicts=False)
    assert pprint.pformat(cd.snapshot()) == pprint.pformat(dref)


def test_pprint_long_containers_are_not_wrapped() -> None:
    # Documented difference: pprint wraps only types whose __repr__ is in
    # its private _dispatch table (list.__repr__, dict.__repr__, ...); it
    # has no public hook.  Workaround: pformat(x.snapshot()).
    ref, cl = list(range(30)), ConcurrentList(range(30))
    assert pprint.pformat(cl, width=40) == repr(ref)  # one long line
    assert "\n" in pprint.pformat(ref, width=40)
    assert pprint.pformat(cl.snapshot(), width=40) == pprint.pformat(ref, width=40)
    dref = {f"key{i}": i for i in range(10)}
    cd = ConcurrentDict(dref)
    assert "\n" not in pprint.pformat(cd, width=40)
    assert pprint.pformat(cd.snapshot(), width=40) == pprint.pformat(dref, width=40)


# --------------------------------------------------------------------------- reprlib


def test_reprlib_truncates_differently() -> None:
    # reprlib dispatches on the type's name (repr_list, repr_dict): ours get
    # its generic path, truncated to maxother characters.  Workaround:
    # reprlib.repr(x.snapshot()).
    ref, cl = list(range(100)), ConcurrentList(range(100))
    assert reprlib.repr(ref) == "[0, 1, 2, 3, 4, 5, ...]"
    assert reprlib.repr(cl) == "[0, 1, 2, 3, ...6, 97, 98, 99]"
    assert reprlib.repr(cl.snapshot()) == reprlib.repr(ref)
    assert reprlib.repr(ConcurrentList([1])) == reprlib.repr([1])


# --------------------------------------------------------------------------- operator


def test_operator_functions() -> None:
    ref, cl = pair()
    _, cd = dpair()
    assert operator.itemgetter(1, -1)(cl) == operator.itemgetter(1, -1)(ref)
    assert operator.itemgetter("a")(cd) == 1
    assert operator.contains(cl, 8) and operator.countOf(cl, 8) == 1
    assert operator.indexOf(cl, 8) == ref.index(8)
    assert operator.length_hint(iter(cl)) == len(ref)
    assert operator.concat(cl, [0]) == [*ref, 0]
    same = operator.iconcat(cl, [0])
    assert same is cl and cl == [*ref, 0]
    operator.setitem(cd, "z", 0)
    operator.delitem(cd, "a")
    assert cd == {"b": 2, "c": 3, "z": 0}
    assert operator.or_(cd, {"q": 1}) == {**cd.snapshot(), "q": 1}


# --------------------------------------------------------------------------- itertools


def test_itertools() -> None:
    ref, cl = pair()
    dref, cd = dpair()
    assert list(itertools.chain(cl, cd)) == list(itertools.chain(ref, dref))
    assert list(itertools.islice(cl, 1, 4)) == ref[1:4]
    assert list(itertools.accumulate(cl)) == list(itertools.accumulate(ref))
    assert list(itertools.pairwise(cl)) == list(itertools.pairwise(ref))
    assert [k for k, _ in itertools.groupby(sorted(cl))] == sorted(ref)
    assert list(itertools.product(cl, repeat=2)) == list(itertools.product(ref, repeat=2))
    pairs = list(itertools.starmap(lambda k, v: k + str(v), cd.items()))
    assert pairs == [k + str(v) for k, v in dref.items()]


# --------------------------------------------------------------------------- functools


def test_functools_reduce_partial_cmp_to_key() -> None:
    ref, cl = pair()
    assert functools.reduce(operator.add, cl) == functools.reduce(operator.add, ref)
    cl.sort(key=functools.cmp_to_key(lambda a, b: b - a))
    assert cl == sorted(ref, reverse=True)
    assert functools.partial(sorted, cl)() == sorted(ref)


def test_functools_caching_needs_hashable_arguments() -> None:
    @functools.lru_cache
    def size(x: Any) -> int:
        return len(x)

    for unhashable, name in ((ConcurrentList(), LIST_TYPE),
                             (ConcurrentDict(), "nogil_collections._dict.ConcurrentDict")):
        with pytest.raises(TypeError, match=f"unhashable type: '{name}'"):
            size(unhashable)
    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        size([])


def test_functools_singledispatch() -> None:
    @functools.singledispatch
    def kind(x: Any) -> str:
        return "other"

    @kind.register
    def _(x: list) -> str:  # type: ignore[type-arg]
        return "list"

    @kind.register
    def _(x: collections.abc.MutableSequence) -> str:  # type: ignore[type-arg]
        return "mutable sequence"

    @kind.register
    def _(x: collections.abc.Mapping) -> str:  # type: ignore[type-arg]
        return "mapping"

    # Not a list subclass, but registered with the ABCs.
    assert kind([]) == "list" and kind(ConcurrentList()) == "mutable sequence"
    assert kind(ConcurrentDict()) == "mapping"


# --------------------------------------------------------------------------- typing


def test_typing_generics() -> None:
    alias = ConcurrentList[int]
    assert typing.get_origin(alias) is ConcurrentList and typing.get_args(alias) == (int,)
    assert typing.get_args(ConcurrentDict[str, int]) == (str, int)
    assert alias([1]) == [1]

    def f(x: typing.MutableSequence[int], m: typing.Mapping[str, int]) -> int:
        return len(x) + len(m)

    assert typing.get_type_hints(f)["x"] == typing.MutableSequence[int]
    assert f(ConcurrentList([1]), ConcurrentDict(a=1)) == 2


# --------------------------------------------------------------------------- abc


@pytest.mark.parametrize(("abc_type", "expected"), [
    (collections.abc.MutableSequence, True), (collections.abc.Sequence, True),
    (collections.abc.Collection, True), (collections.abc.Reversible, True),
    (collections.abc.Hashable, False), (collections.abc.Mapping, False),
])
def test_abc_list(abc_type: type, expected: bool) -> None:
    assert isinstance(ConcurrentList(), abc_type) is isinstance([], abc_type) is expected


@pytest.mark.parametrize(("abc_type", "expected"), [
    (collections.abc.MutableMapping, True), (collections.abc.Mapping, True),
    (collections.abc.Collection, True), (collections.abc.Hashable, False),
    (collections.abc.Sequence, False),
])
def test_abc_dict(abc_type: type, expected: bool) -> None:
    assert isinstance(ConcurrentDict(), abc_type) is isinstance({}, abc_type) is expected


def test_abc_not_builtin_subclasses() -> None:
    # Documented: registered with the ABCs, not subclasses of list/dict, so
    # isinstance(x, list) / isinstance(x, dict) is False.
    assert not isinstance(ConcurrentList(), list) and not isinstance(ConcurrentDict(), dict)

    class Custom(abc.ABC):  # noqa: B024  (a bare ABC to register with)
        pass

    Custom.register(ConcurrentList)
    assert isinstance(ConcurrentList(), Custom)


def test_json_default_accepts_handles() -> None:
    cd = ConcurrentDict(a=ConcurrentList([1]))
    assert json.dumps(cd.handle(), default=json_default) == '{"a": [1]}'
    assert json.dumps(cd["a"].handle(), default=json_default) == "[1]"

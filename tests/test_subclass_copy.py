"""Subclasses copy and pickle like subclasses of the builtins (issue 21,
defects 4 and 5): a differential test.

Each subclass shape below is defined twice with the same body, once over
dict / list (namespace ``_B``) and once over ConcurrentDict / ConcurrentList
(namespace ``_O``), under the same ``__name__``.  An instance of each is
built the same way, then goes through copy.copy, copy.deepcopy and
pickle at every protocol; the outcomes must be equal: the result's class,
its items in order (read through the base class, so that an overridden
``__getitem__`` / ``__iter__`` does not hide them), which values are the
original objects (shallow) or copies (deep), its ``__dict__`` and its
``__slots__`` values, and the calls the loader made to overridden methods;
or both raise the same exception type with the same message.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from nogil_collections import ConcurrentDict, ConcurrentList

_UNSET = "<unset>"


class _B:
    """The subclasses of the builtins."""


class _O:
    """The same subclasses of ConcurrentDict / ConcurrentList."""


def _bodies(base: type, is_dict: bool) -> dict[str, dict[str, Any]]:
    """name -> class body, for one base class."""

    def required_init(self, a, b):
        base.__init__(self)
        self.a = a
        self.b = b

    def defaults_init(self, *args, **kwargs):
        base.__init__(self, *args, **kwargs)
        if is_dict:
            self["default"] = 0
        else:
            self.append("default")

    def missing(self, key):
        return ("missing", key)

    def logging_setitem(self, key, value):
        self.__dict__.setdefault("log", []).append(("setitem", key))
        base.__setitem__(self, key, value)

    def logging_extend(self, items):
        items = list(items)
        self.__dict__.setdefault("log", []).append(("extend", len(items)))
        base.extend(self, items)

    def logging_append(self, item):
        self.__dict__.setdefault("log", []).append(("append",))
        base.append(self, item)

    def fixed_getitem(self, key):
        return "overridden"

    def newargs_init(self, a):
        base.__init__(self)
        self.a = a

    def getnewargs(self):
        return (self.a,)

    def getstate(self):
        return {"custom": self.a}

    def setstate(self, state):
        self.a = ("restored", state["custom"])

    bodies: dict[str, dict[str, Any]] = {
        "Plain": {},
        "RequiredArgs": {"__init__": required_init},
        "InsertsDefaults": {"__init__": defaults_init},
        "Slots": {"__slots__": ("a", "b")},
        "SlotsAndRequiredArgs": {"__slots__": ("a", "b"), "__init__": required_init},
        "SlotsWithDict": {"__slots__": ("a", "__dict__")},
        "DictAttributes": {},
        "GetnewargsRequired": {"__init__": newargs_init, "__getnewargs__": getnewargs},
        "GetSetState": {"__init__": newargs_init, "__getstate__": getstate,
                        "__setstate__": setstate},
        "OverriddenGetitem": {"__getitem__": fixed_getitem},
    }
    if is_dict:
        bodies["Missing"] = {"__missing__": missing}
        bodies["OverriddenSetitem"] = {"__setitem__": logging_setitem}
    else:
        bodies["OverriddenSetitem"] = {"__setitem__": logging_setitem,
                                       "extend": logging_extend, "append": logging_append}
        bodies["OverriddenAppend"] = {"append": logging_append}
    return bodies


def _define(namespace: type, base: type, is_dict: bool) -> None:
    for name, body in _bodies(base, is_dict).items():
        full = f"{'Dict' if is_dict else 'List'}{name}"
        cls = type(full, (base,), dict(body))
        cls.__module__ = __name__
        cls.__qualname__ = f"{namespace.__name__}.{full}"
        setattr(namespace, full, cls)


_define(_B, dict, True)
_define(_B, list, False)
_define(_O, ConcurrentDict, True)
_define(_O, ConcurrentList, False)

_NAMES = sorted(n for n in vars(_B) if n.startswith(("Dict", "List")))


def _build(namespace: type, name: str, immortal: bool) -> Any:
    cls = getattr(namespace, name)
    make: Callable[..., Any] = cls
    if immortal and namespace is _O:
        make = cls.immortal  # the builtin side: an ordinary instance
    is_dict = name.startswith("Dict")
    shape = name[4:]
    if shape in ("RequiredArgs", "SlotsAndRequiredArgs"):
        obj = make(1, [2])
    elif shape in ("GetnewargsRequired", "GetSetState"):
        obj = make("arg")
    else:
        obj = make()
    nested = [1, 2]
    if is_dict:
        base = dict if namespace is _B else ConcurrentDict
        base.__setitem__(obj, "x", nested)
        base.__setitem__(obj, 3, "three")
        base.__setitem__(obj, "y", (4,))
        if shape == "InsertsDefaults":
            base.__delitem__(obj, "default")  # a copy must not get it back
    else:
        base = list if namespace is _B else ConcurrentList
        base.extend(obj, [nested, 3, "three"])
        if shape == "InsertsDefaults":
            base.remove(obj, "default")
    if shape in ("Slots", "SlotsWithDict"):
        obj.a = {"slot": 1}  # b stays unset
    if shape == "SlotsWithDict" or shape == "DictAttributes":
        obj.attr = ["kept"]
    if shape in ("OverriddenSetitem", "OverriddenAppend"):
        obj.__dict__.pop("log", None)
    return obj


def _describe(obj: Any, original: Any) -> Any:
    """Everything the comparison looks at, with the base classes' names and
    the namespaces' qualnames taken out."""
    cls = type(obj)
    is_dict = isinstance(obj, (dict, ConcurrentDict))
    if is_dict:
        base = dict if isinstance(obj, dict) else ConcurrentDict
        items: Any = list(base.items(obj))
        orig_items = dict(base.items(original))
        same = [v is orig_items.get(k) for k, v in items]
    else:
        base = list if isinstance(obj, list) else ConcurrentList
        items = list(base.__iter__(obj))
        orig_list = list(base.__iter__(original))
        same = [i < len(orig_list) and v is orig_list[i] for i, v in enumerate(items)]
    slots = {}
    for klass in cls.__mro__:
        for s in klass.__dict__.get("__slots__", ()):
            if s != "__dict__":
                slots[s] = getattr(obj, s, _UNSET)
    return (
        cls.__name__,
        cls.__qualname__.split(".", 1)[1],
        obj is original,
        items,
        same,
        dict(getattr(obj, "__dict__", {})),
        slots,
    )


def _normalize(message: str) -> str:
    return message.replace("_B.", "").replace("_O.", "").replace("Concurrent", "")


def _outcome(namespace: type, name: str, how: str, immortal: bool) -> Any:
    try:
        obj = _build(namespace, name, immortal)
    except Exception as e:
        return ("build raised", type(e), _normalize(str(e)))
    try:
        if how == "copy":
            result = copy.copy(obj)
        elif how == "deepcopy":
            result = copy.deepcopy(obj)
        else:
            result = pickle.loads(pickle.dumps(obj, int(how)))
    except Exception as e:
        return ("raised", type(e), _normalize(str(e)))
    return ("ok", _describe(result, obj))


_HOWS = ["copy", "deepcopy", *[str(p) for p in range(pickle.HIGHEST_PROTOCOL + 1)]]


@pytest.mark.parametrize("immortal", [False, True], ids=["mortal", "immortal"])
@pytest.mark.parametrize("how", _HOWS)
@pytest.mark.parametrize("name", _NAMES)
def test_subclass_copies_and_pickles_like_the_builtins(name: str, how: str, immortal: bool) -> None:
    expected = _outcome(_B, name, how, immortal)
    got = _outcome(_O, name, how, immortal)
    assert got == expected


def test_the_corpus_covers_the_shapes() -> None:
    # Every shape the issue names, for both types; and the comparison does
    # tell the outcomes apart (a class whose copy loses its slot differs).
    for shape in ("RequiredArgs", "InsertsDefaults", "Slots", "DictAttributes",
                  "OverriddenSetitem", "OverriddenGetitem"):
        assert f"Dict{shape}" in _NAMES and f"List{shape}" in _NAMES
    assert "DictMissing" in _NAMES
    a = _build(_O, "DictSlots", False)
    b = _build(_O, "DictSlots", False)
    b.a = None
    assert _describe(a, a) != _describe(b, a)


def test_copies_of_an_immortal_subclass_are_mortal_and_keep_its_state() -> None:
    import sys

    for name in ("DictSlotsAndRequiredArgs", "ListSlotsAndRequiredArgs"):
        obj = _build(_O, name, True)
        for result in (copy.copy(obj), copy.deepcopy(obj), pickle.loads(pickle.dumps(obj))):
            assert type(result) is type(obj)
            assert (result.a, result.b) == (1, [2])
            # A mortal copy: its reference count moves with references.
            before = sys.getrefcount(result)
            extra = [result]
            assert sys.getrefcount(result) == before + 1
            del extra


def test_missing_still_works_on_a_copy() -> None:
    obj = _build(_O, "DictMissing", False)
    for result in (copy.copy(obj), copy.deepcopy(obj), pickle.loads(pickle.dumps(obj))):
        assert result["absent"] == ("missing", "absent")
        assert result["x"] == [1, 2]

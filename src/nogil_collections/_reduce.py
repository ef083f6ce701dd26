"""Copying and pickling subclasses of ConcurrentDict / ConcurrentList exactly
as ``object.__reduce_ex__`` does for subclasses of ``dict`` / ``list``.

The builtins define no ``__reduce__`` of their own: a subclass instance goes
through ``object.__reduce_ex__`` (CPython ``Objects/typeobject.c``,
``object___reduce_ex___impl``, ``_common_reduce``, ``reduce_newobj``,
``_PyObject_GetNewArguments``, ``object_getstate``,
``_PyObject_GetItemsIter``; ``Lib/copyreg.py``, ``_reduce_ex``):

- an overridden ``__reduce__`` wins;
- protocol >= 2: ``copyreg.__newobj__(cls, *newargs)`` (``cls.__new__``,
  never ``__init__``; ``__newobj_ex__`` for keyword arguments from
  ``__getnewargs_ex__``), the state from ``__getstate__`` (``__dict__``,
  or ``(__dict__ or None, {slot: value})`` with ``__slots__``), then the
  items, which the loader stores through the subclass's own
  ``__setitem__`` / ``extend`` (pickle) or ``__setitem__`` / ``append``
  (``copy``);
- protocols 0 and 1: ``copyreg._reduce_ex``, which rebuilds through
  ``copyreg._reconstructor(cls, base, base(obj))`` (the base's ``__new__``
  and ``__init__``, not the subclass's) and refuses ``__slots__`` without a
  ``__getstate__``.

Our types are not ``dict`` / ``list`` subclasses, so ``object.__reduce_ex__``
would refuse them (their C fields make ``object_getstate`` "required");
``reduce_subclass`` repeats those steps with our types in the builtins'
places.  The items are one consistent snapshot of the container (``items``:
taken by the caller under the container's own protocol), unless the
subclass overrides the method the builtin's reduce calls for them
(``__iter__`` for a list, ``items`` for a dict): then that override is
called, as for the builtin.
"""

from __future__ import annotations

import copyreg
from typing import Any


def reduce_subclass(
    obj: Any, protocol: int, base: type, items: Any, is_dict: bool
) -> Any:
    """``object.__reduce_ex__(obj, protocol)`` for an instance of a subclass
    of ``base`` (ConcurrentDict or ConcurrentList); ``items`` is the
    snapshot (a list: pairs for a dict, items for a list)."""
    cls = type(obj)
    # object___reduce_ex___impl: an overridden __reduce__ is called instead.
    if cls.__reduce__ is not object.__reduce__:  # type: ignore[comparison-overlap]
        return obj.__reduce__()
    if protocol < 2:
        # copyreg._reduce_ex finds `base` (the first non-heap type of the
        # MRO) and stores base(obj) as the state; base(obj) copies one
        # consistent snapshot (ConcurrentDict(d) / ConcurrentList(l)).
        return copyreg._reduce_ex(obj, protocol)  # type: ignore[attr-defined]
    # reduce_newobj.
    args, kwargs = _new_arguments(obj)
    if not kwargs:
        newobj: Any = copyreg.__newobj__  # type: ignore[attr-defined]
        newargs: tuple[Any, ...] = (cls, *(args or ()))
    else:
        newobj = copyreg.__newobj_ex__  # type: ignore[attr-defined]
        newargs = (cls, args, kwargs)
    # object_getstate(obj, required=0): required is false for dict and list
    # subclasses; a __getstate__ override is called as is.
    state = obj.__getstate__()
    if is_dict:
        listitems = None
        if cls.items is base.items:  # type: ignore[attr-defined]
            dictitems = iter(items)
        else:
            dictitems = iter(obj.items())
    else:
        dictitems = None
        if cls.__iter__ is base.__iter__:  # type: ignore[attr-defined]
            listitems = iter(items)
        else:
            listitems = iter(obj)
    return (newobj, newargs, state, listitems, dictitems)


def _new_arguments(obj: Any) -> tuple[Any, Any]:
    """_PyObject_GetNewArguments: (args, kwargs) from __getnewargs_ex__ or
    __getnewargs__ (looked up on the type, as special methods are), or
    (None, None)."""
    cls = type(obj)
    getnewargs_ex = getattr(cls, "__getnewargs_ex__", None)
    if getnewargs_ex is not None:
        newargs = getnewargs_ex(obj)
        if not isinstance(newargs, tuple):
            raise TypeError(
                "__getnewargs_ex__ should return a tuple, "
                f"not '{type(newargs).__name__}'"
            )
        if len(newargs) != 2:
            raise ValueError(
                "__getnewargs_ex__ should return a tuple of length 2, "
                f"not {len(newargs)}"
            )
        args, kwargs = newargs
        if not isinstance(args, tuple):
            raise TypeError(
                "first item of the tuple returned by __getnewargs_ex__ "
                f"must be a tuple, not '{type(args).__name__}'"
            )
        if not isinstance(kwargs, dict):
            raise TypeError(
                "second item of the tuple returned by __getnewargs_ex__ "
                f"must be a dict, not '{type(kwargs).__name__}'"
            )
        return args, kwargs
    getnewargs = getattr(cls, "__getnewargs__", None)
    if getnewargs is not None:
        args = getnewargs(obj)
        if not isinstance(args, tuple):
            raise TypeError(
                f"__getnewargs__ should return a tuple, not '{type(args).__name__}'"
            )
        return args, None
    return None, None

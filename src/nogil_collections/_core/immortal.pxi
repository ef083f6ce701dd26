# The body of ConcurrentDict.immortal() and ConcurrentList.immortal(),
# included by _dict.pyx and _list.pyx (refcount.h does the poking; see
# docs/design.md, "Immortal containers").

from nogil_collections._core.refcount cimport NCC_CAN_MAKE_IMMORTAL, ncc_make_immortal


cdef object _new_immortal(type cls, type base, tuple args, dict kwargs):
    """cls(*args, **kwargs), made immortal between __new__ and __init__ on
    free-threaded builds; an ordinary instance on GIL builds."""
    obj = cls.__new__(cls, *args, **kwargs)
    if not isinstance(obj, cls):
        raise TypeError(
            f"{cls.__name__}.__new__() returned {type(obj).__name__!r}, "
            f"not a {cls.__name__}: cannot make it immortal"
        )
    # Here `obj` is the only reference, unless a __new__ override kept one.
    if NCC_CAN_MAKE_IMMORTAL and not ncc_make_immortal(<PyObject *>obj):
        raise RuntimeError(
            f"{cls.__name__}.immortal(): the new object is already referenced elsewhere "
            f"(kept or weakly referenced by {cls.__name__}.__new__?); only an object whose "
            f"one reference is held by the creating thread, and that never had a weak "
            f"reference, can be made immortal"
        )
    try:
        obj.__init__(*args, **kwargs)
    except BaseException:
        # The immortal shell stays allocated (and the cyclic GC never visits
        # it): release what __init__ stored in it, the items and a
        # subclass's instance attributes (its __dict__; values of a
        # subclass's __slots__ stay).
        base.clear(obj)
        try:
            attributes = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            pass
        else:
            attributes.clear()
        raise
    return obj

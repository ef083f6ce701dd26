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
            f"(kept by {cls.__name__}.__new__?); only an object whose one reference is "
            f"held by the creating thread can be made immortal"
        )
    try:
        obj.__init__(*args, **kwargs)
    except BaseException:
        # The immortal shell stays allocated; release what __init__ inserted.
        base.clear(obj)
        raise
    return obj

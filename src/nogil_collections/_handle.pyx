# cython: freethreading_compatible = True
# cython: language_level = 3, binding = False
"""Per-thread handles: ``ConcurrentDict.handle()`` and ``ConcurrentList.handle()``.

Why (docs/performance.md, "Handles"; docs/guarantees.md, "Handles"): on
free-threaded 3.13, every Python-level load of a shared object (``LOAD_FAST``,
``LOAD_GLOBAL``, ``LOAD_ATTR``, ``LOAD_DEREF``) takes a new strong reference,
and a thread that does not own the object does that with an atomic add on
the object header's ``ob_ref_shared``.  Two threads reading one shared
container through a local name therefore bounce its header's cache line on
every access.  A handle is a small object created by (and so owned by) the
thread that uses it: loading it costs a local, non-atomic incref, and it
reaches the container through a pointer it stores, without taking a new
reference to the container.  It holds exactly one strong reference to the
container, taken once when it is created.

Hot paths (``h[k]``, ``h[k] = v``, ``del h[k]``, ``k in h``, ``len(h)``,
``h.get``, and the dict's and list's compound operations) call the
container's C slots or its method objects with that stored pointer: the
container's reference count is never touched (checked in the generated C;
see tests/test_handle.py).  Everything else forwards through
``getattr(container, name)``, which is correct but takes a reference.

Semantics are exactly the container's: a handle adds no state, no caching
and no lock.  Any thread may use any handle; only threads that own it (the
creating thread) get the contention-free path.
"""

cimport cython
from cpython.object cimport PyObject, PyTypeObject, Py_TYPE

from threading import get_ident as _get_ident
from types import GenericAlias as _GenericAlias


cdef extern from *:
    """
    /* Calls on a BORROWED container pointer `c`: none of these takes a
     * reference to `c` (the caller's handle keeps it alive).  A handle holds
     * one set of these four: the exact container type's own slots (one
     * indirect call, the same function `c[k]` reaches), or, for a subclass,
     * the public C API the interpreter uses for the same syntax, which
     * honours Python-level overrides (slot_mp_subscript etc.). */
    typedef struct {
        binaryfunc getitem;
        objobjargproc setitem;     /* value NULL: delete */
        objobjproc contains;
        lenfunc length;
    } nch_slots;

    static int nch_generic_setitem(PyObject *c, PyObject *key, PyObject *v) {
        return v == NULL ? PyObject_DelItem(c, key) : PyObject_SetItem(c, key, v);
    }
    static const nch_slots nch_generic_slots = {
        PyObject_GetItem, nch_generic_setitem, PySequence_Contains, PyObject_Size,
    };
    /* The exact type's slots, or the generic ones where it has none. */
    static nch_slots nch_slots_of(PyTypeObject *tp) {
        nch_slots s = nch_generic_slots;
        PyMappingMethods *mp = tp->tp_as_mapping;
        PySequenceMethods *sq = tp->tp_as_sequence;
        if (mp != NULL && mp->mp_subscript != NULL) s.getitem = mp->mp_subscript;
        if (mp != NULL && mp->mp_ass_subscript != NULL) s.setitem = mp->mp_ass_subscript;
        if (sq != NULL && sq->sq_contains != NULL) s.contains = sq->sq_contains;
        if (mp != NULL && mp->mp_length != NULL) s.length = mp->mp_length;
        return s;
    }
    static inline PyObject *nch_getitem(const nch_slots *s, PyObject *c, PyObject *key) {
        return s->getitem(c, key);
    }
    static inline int nch_setitem(const nch_slots *s, PyObject *c, PyObject *key, PyObject *v) {
        return s->setitem(c, key, v);
    }
    static inline int nch_delitem(const nch_slots *s, PyObject *c, PyObject *key) {
        return s->setitem(c, key, NULL);
    }
    static inline int nch_contains(const nch_slots *s, PyObject *c, PyObject *key) {
        return s->contains(c, key);
    }
    static inline Py_ssize_t nch_len(const nch_slots *s, PyObject *c) {
        return s->length(c);
    }

    /* An unbound method of an exact container type, resolved once: its C
     * entry point when it is a plain C method (a method_descriptor or a
     * Cython function), so that a call is one C call -- the same C function
     * and the same `self` argument that `c.name(...)` reaches, without the
     * bound method (which would incref `c`).  Otherwise (meth == NULL) the
     * object is vectorcalled with `c` as its first argument, which passes
     * `c` borrowed as well. */
    typedef PyObject *(*nch_fast_kw)(PyObject *, PyObject *const *, Py_ssize_t, PyObject *);
    typedef PyObject *(*nch_fast)(PyObject *, PyObject *const *, Py_ssize_t);
    typedef struct {
        PyObject *callable;   /* borrowed: kept alive by the module */
        PyCFunction meth;
        int flags;
    } nch_method;

    static int nch_method_init(nch_method *m, PyObject *callable) {
        PyMethodDef *def = NULL;
        m->callable = callable;
        m->meth = NULL;
        m->flags = 0;
        if (PyObject_TypeCheck(callable, &PyMethodDescr_Type)) {
            def = ((PyMethodDescrObject *)callable)->d_method;
        } else if (PyCFunction_Check(callable)) {
            def = ((PyCFunctionObject *)callable)->m_ml;
        } else {
            /* A Cython function (binding=True) starts with a PyCFunctionObject
             * (Cython's __pyx_CyFunctionObject, outside the limited API). */
            const char *name = Py_TYPE(callable)->tp_name;
            size_t n = strlen(name), k = strlen("cython_function_or_method");
            if (n >= k && strcmp(name + n - k, "cython_function_or_method") == 0)
                def = ((PyCFunctionObject *)callable)->m_ml;
        }
        if (def != NULL) {
            int flags = def->ml_flags & ~METH_COEXIST;
            if (flags == (METH_FASTCALL | METH_KEYWORDS) || flags == METH_FASTCALL
                    || flags == METH_O || flags == METH_NOARGS) {
                m->meth = def->ml_meth;
                m->flags = flags;
            }
        }
        return 0;
    }

    static PyObject *nch_invoke(const nch_method *m, PyObject *c, PyObject *const *args,
                                Py_ssize_t n) {
        switch (m->meth ? m->flags : 0) {
        case METH_FASTCALL | METH_KEYWORDS:
            return ((nch_fast_kw)(void (*)(void))m->meth)(c, args, n, NULL);
        case METH_FASTCALL:
            return ((nch_fast)(void (*)(void))m->meth)(c, args, n);
        case METH_O:
            if (n == 1) return m->meth(c, args[0]);
            break;
        case METH_NOARGS:
            if (n == 0) return m->meth(c, NULL);
            break;
        }
        {
            /* The interpreter's own arity errors, via the generic call. */
            PyObject *stack[6];
            Py_ssize_t j;
            stack[1] = c;
            for (j = 0; j < n && j < 4; j++) stack[j + 2] = args[j];
            return PyObject_Vectorcall(m->callable, stack + 1,
                                       (size_t)(n + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
    }
    static inline PyObject *nch_call0(const nch_method *m, PyObject *c) {
        return nch_invoke(m, c, NULL, 0);
    }
    static inline PyObject *nch_call1(const nch_method *m, PyObject *c, PyObject *a) {
        PyObject *args[1] = {a};
        return nch_invoke(m, c, args, 1);
    }
    static inline PyObject *nch_call2(const nch_method *m, PyObject *c, PyObject *a,
                                      PyObject *b) {
        PyObject *args[2] = {a, b};
        return nch_invoke(m, c, args, 2);
    }
    static inline PyObject *nch_call3(const nch_method *m, PyObject *c, PyObject *a,
                                      PyObject *b, PyObject *d) {
        PyObject *args[3] = {a, b, d};
        return nch_invoke(m, c, args, 3);
    }
    """
    ctypedef struct nch_slots:
        pass
    nch_slots nch_generic_slots
    nch_slots nch_slots_of(PyTypeObject *tp)
    object nch_getitem(const nch_slots *s, PyObject *c, object key)
    int nch_setitem(const nch_slots *s, PyObject *c, object key, object v) except -1
    int nch_delitem(const nch_slots *s, PyObject *c, object key) except -1
    int nch_contains(const nch_slots *s, PyObject *c, object key) except -1
    Py_ssize_t nch_len(const nch_slots *s, PyObject *c) except -1
    ctypedef struct nch_method:
        pass
    int nch_method_init(nch_method *m, PyObject *callable) except -1
    object nch_call0(const nch_method *m, PyObject *c)
    object nch_call1(const nch_method *m, PyObject *c, object a)
    object nch_call2(const nch_method *m, PyObject *c, object a, object b)
    object nch_call3(const nch_method *m, PyObject *c, object a, object b, object d)


# ----------------------------------------------------------------------
# The container types' unbound methods, resolved once.  A handle of an exact
# ConcurrentDict / ConcurrentList calls these with its stored pointer; a
# handle of a subclass goes through getattr(container, name) instead, so an
# override (even a staticmethod or a property) behaves as on the container.

cdef enum:
    D_GET, D_SETDEFAULT, D_POP, D_GET_OR_INSERT, D_UPDATE_ITEM, D_COMPARE_AND_SET,
    D_POP_IF, D_SNAPSHOT, D_KEYS, D_VALUES, D_ITEMS, D_UPDATE, D_CLEAR, D_POPITEM,
    D_COPY, D_NMETHODS

cdef enum:
    L_APPEND, L_POP, L_EXTEND, L_INSERT, L_REMOVE, L_INDEX, L_COUNT, L_CLEAR, L_COPY,
    L_REVERSE, L_SNAPSHOT, L_APPEND_IF_ABSENT, L_COMPARE_AND_SET, L_UPDATE, L_NMETHODS

_DICT_METHODS = ("get", "setdefault", "pop", "get_or_insert", "update_item",
                 "compare_and_set", "pop_if", "snapshot", "keys", "values", "items",
                 "update", "clear", "popitem", "copy")
_LIST_METHODS = ("append", "pop", "extend", "insert", "remove", "index", "count", "clear",
                 "copy", "reverse", "snapshot", "append_if_absent", "compare_and_set",
                 "update")

# Strong references (module lifetime) to the objects the tables point at.
cdef list _keep = []
cdef nch_method _dict_m[D_NMETHODS]
cdef nch_method _list_m[L_NMETHODS]
cdef nch_slots _dict_slots
cdef nch_slots _list_slots
cdef PyObject *_dict_type = NULL
cdef PyObject *_list_type = NULL
cdef object _absent = None


def _bind_types(dict_type, list_type, absent):
    """Called once by the package (__init__) after both container modules
    are imported: they import this module, so it cannot import them."""
    global _dict_type, _list_type, _absent, _dict_slots, _list_slots
    cdef int j
    if _dict_type != NULL:
        return
    assert len(_DICT_METHODS) == <int>D_NMETHODS and len(_LIST_METHODS) == <int>L_NMETHODS
    for j, name in enumerate(_DICT_METHODS):
        f = dict_type.__dict__[name]
        _keep.append(f)
        nch_method_init(&_dict_m[j], <PyObject *>f)
    for j, name in enumerate(_LIST_METHODS):
        f = list_type.__dict__[name]
        _keep.append(f)
        nch_method_init(&_list_m[j], <PyObject *>f)
    _keep.extend((dict_type, list_type))
    _absent = absent
    _dict_slots = nch_slots_of(<PyTypeObject *>dict_type)
    _list_slots = nch_slots_of(<PyTypeObject *>list_type)
    _dict_type = <PyObject *>dict_type
    _list_type = <PyObject *>list_type


cdef inline object _unwrap(object other):
    # A handle on the other side of a binary operator stands for its container.
    if isinstance(other, _Handle):
        return (<_Handle>other)._c
    return other


@cython.final
cdef class _AbsentAttribute:
    # ConcurrentDictHandle.ABSENT, on the class and on instances: the dict's
    # ABSENT marker, which this module cannot import (see _bind_types).
    def __get__(self, obj, objtype):
        return _absent


@cython.no_gc_clear
cdef class _Handle:
    """What both handle types share: the container reference and ownership."""

    # The one strong reference to the container, taken at creation and
    # released when the handle dies.  Hot paths use _cp, the same pointer,
    # which Cython does not reference-count.  no_gc_clear: the GC must never
    # reset _c while _cp still points at the container (a finalizer in the
    # same cycle could use the handle); the container's own tp_clear breaks
    # any cycle through it.
    cdef readonly object _c
    cdef PyObject *_cp
    # True if the container is exactly ConcurrentDict / ConcurrentList, whose
    # method tables above apply.
    cdef bint _exact
    # The container's slots (exact type) or the generic C API (subclass).
    cdef const nch_slots *_slots
    cdef unsigned long _owner

    def __init__(self, *args, **kwargs):
        raise TypeError(f"use container.handle() to create a {type(self).__name__}")

    @property
    def container(self):
        """The shared container this handle forwards to."""
        return self._c

    @property
    def owner_thread(self):
        """threading.get_ident() of the thread that created the handle: the
        one thread whose uses are free of shared reference-count traffic."""
        return self._owner

    def handle(self):
        """A new handle to the same container, owned by the calling thread."""
        return type(self)._new(self._c)

    # No __getattr__ forwarding: a type with one cannot have its method
    # loads specialised by the interpreter (LOAD_ATTR_METHOD_* needs the
    # generic tp_getattro), which made h.get(k) twice as slow as d.get(k).
    # Every public method is spelled out below instead (tests/test_handle.py
    # checks that none is missing); a subclass's own additions are reached
    # through h.container.

    cdef object _fwd(self, str name, tuple args):
        # The path of a subclass (or an unusual call): the container's own
        # bound method, so that overrides behave as on the container.  Kept
        # out of the fast methods so that their generated C shows no
        # reference to the container (tests/test_handle.py checks).
        return getattr(self._c, name)(*args)

    def _check(self):
        """The container's internal consistency check."""
        self._c._check()

    def __len__(self):
        return nch_len(self._slots, self._cp)

    def __contains__(self, key):
        return nch_contains(self._slots, self._cp, key) == 1

    def __getitem__(self, key):
        return nch_getitem(self._slots, self._cp, key)

    def __setitem__(self, key, value):
        nch_setitem(self._slots, self._cp, key, value)

    def __delitem__(self, key):
        nch_delitem(self._slots, self._cp, key)

    def __iter__(self):
        return iter(self._c)

    def __reversed__(self):
        return reversed(self._c)

    def __repr__(self):
        return f"<{type(self).__name__} of {self._c!r}>"

    def __richcmp__(self, other, int op):
        if op == 2:
            return self._c == _unwrap(other)
        if op == 3:
            return self._c != _unwrap(other)
        if op == 0:
            return self._c < _unwrap(other)
        if op == 1:
            return self._c <= _unwrap(other)
        if op == 4:
            return self._c > _unwrap(other)
        return self._c >= _unwrap(other)

    __hash__ = None
    __class_getitem__ = classmethod(_GenericAlias)

    def __reduce__(self):
        raise TypeError(
            f"cannot pickle a {type(self).__name__}: pickle its container "
            "(handle.container) and take a new handle after loading it")

    def __copy__(self):
        return type(self)._new(self._c)

    def __deepcopy__(self, memo):
        raise TypeError(f"cannot deepcopy a {type(self).__name__}: copy its container")


@cython.final
cdef class ConcurrentDictHandle(_Handle):
    """A per-thread handle to a :class:`ConcurrentDict` (``d.handle()``).

    Has the whole ``ConcurrentDict`` API and forwards every operation to the
    shared dict; the semantics are the dict's.  Lookups, ``get``, ``in``,
    ``len``, assignment, deletion and the compound operations reach the dict
    without touching its reference count, so threads that each use their own
    handle do not contend on the dict's object header (free-threaded builds).
    Create one per thread (or per request) and keep it in a local variable:

    >>> from nogil_collections import ConcurrentDict
    >>> cache = ConcurrentDict(a=1)
    >>> h = cache.handle()
    >>> h["a"], h.get("b"), "a" in h, len(h)
    (1, None, True, 1)
    >>> h["b"] = 2; cache
    {'a': 1, 'b': 2}
    """

    ABSENT = _AbsentAttribute()

    @staticmethod
    def _new(container):
        cdef ConcurrentDictHandle h
        if _dict_type == NULL or not isinstance(container, <object>_dict_type):
            raise TypeError(
                f"ConcurrentDictHandle needs a ConcurrentDict, not {type(container).__name__}")
        h = ConcurrentDictHandle.__new__(ConcurrentDictHandle)
        h._c = container
        h._cp = <PyObject *>container
        h._exact = <PyObject *>Py_TYPE(container) == _dict_type
        h._slots = &_dict_slots if h._exact else &nch_generic_slots
        h._owner = _get_ident()
        return h

    def get(self, key, default=None, /):
        """d.get(key, default) on the shared dict.  Lock-free, O(1)."""
        if self._exact:
            return nch_call2(&_dict_m[<int>D_GET], self._cp, key, default)
        return self._fwd("get", (key, default))

    def setdefault(self, key, default=None, /):
        """d.setdefault(key, default) on the shared dict.  Atomic."""
        if self._exact:
            return nch_call2(&_dict_m[<int>D_SETDEFAULT], self._cp, key, default)
        return self._fwd("setdefault", (key, default))

    def pop(self, key, *default):
        """d.pop(key[, default]) on the shared dict.  Atomic."""
        if self._exact and len(default) == 0:
            return nch_call1(&_dict_m[<int>D_POP], self._cp, key)
        if self._exact and len(default) == 1:
            return nch_call2(&_dict_m[<int>D_POP], self._cp, key, default[0])
        return self._fwd("pop", (key,) + default)

    def get_or_insert(self, key, factory):
        """d.get_or_insert(key, factory) on the shared dict."""
        if self._exact:
            return nch_call2(&_dict_m[<int>D_GET_OR_INSERT], self._cp, key, factory)
        return self._fwd("get_or_insert", (key, factory))

    def update_item(self, key, fn, *default):
        """d.update_item(key, fn[, default]) on the shared dict: the same
        compare-and-set retry loop (fn may run more than once under
        contention; one result per update is stored)."""
        cdef const nch_method *get = &_dict_m[<int>D_GET]
        cdef const nch_method *cas = &_dict_m[<int>D_COMPARE_AND_SET]
        if not self._exact or len(default) > 1:
            return self._fwd("update_item", (key, fn) + default)
        while True:
            cur = nch_call2(get, self._cp, key, _absent)
            if cur is _absent:
                if not default:
                    raise KeyError(key)
                new = fn(default[0])
            else:
                new = fn(cur)
            if nch_call3(cas, self._cp, key, cur, new):
                return new

    def compare_and_set(self, key, expected, new):
        """d.compare_and_set(key, expected, new) on the shared dict.  Atomic."""
        if self._exact:
            return nch_call3(&_dict_m[<int>D_COMPARE_AND_SET], self._cp, key, expected, new)
        return self._fwd("compare_and_set", (key, expected, new))

    def pop_if(self, key, expected):
        """d.pop_if(key, expected) on the shared dict.  Atomic."""
        if self._exact:
            return nch_call2(&_dict_m[<int>D_POP_IF], self._cp, key, expected)
        return self._fwd("pop_if", (key, expected))

    def snapshot(self):
        """d.snapshot(): a builtin dict copy of a consistent point in time."""
        if self._exact:
            return nch_call0(&_dict_m[<int>D_SNAPSHOT], self._cp)
        return self._fwd("snapshot", ())

    def keys(self):
        """The shared dict's live keys view."""
        if self._exact:
            return nch_call0(&_dict_m[<int>D_KEYS], self._cp)
        return self._fwd("keys", ())

    def values(self):
        """The shared dict's live values view."""
        if self._exact:
            return nch_call0(&_dict_m[<int>D_VALUES], self._cp)
        return self._fwd("values", ())

    def items(self):
        """The shared dict's live items view."""
        if self._exact:
            return nch_call0(&_dict_m[<int>D_ITEMS], self._cp)
        return self._fwd("items", ())

    def update(self, *args, **kwargs):
        """d.update(...) on the shared dict.  Atomic."""
        self._c.update(*args, **kwargs)

    def clear(self):
        """d.clear() on the shared dict.  Atomic."""
        if self._exact:
            nch_call0(&_dict_m[<int>D_CLEAR], self._cp)
        else:
            self._fwd("clear", ())

    def popitem(self):
        """d.popitem() on the shared dict.  Atomic."""
        if self._exact:
            return nch_call0(&_dict_m[<int>D_POPITEM], self._cp)
        return self._fwd("popitem", ())

    def copy(self):
        """d.copy(): a new ConcurrentDict (not a handle)."""
        if self._exact:
            return nch_call0(&_dict_m[<int>D_COPY], self._cp)
        return self._fwd("copy", ())

    def fromkeys(self, iterable, value=None, /):
        """type(d).fromkeys(iterable, value): a new dict (not a handle)."""
        return type(self._c).fromkeys(iterable, value)

    def __or__(self, other):
        return self._c | _unwrap(other)

    def __ror__(self, other):
        return _unwrap(other) | self._c

    def __ior__(self, other):
        self._c.update(_unwrap(other))
        return self


@cython.final
cdef class ConcurrentListHandle(_Handle):
    """A per-thread handle to a :class:`ConcurrentList` (``lst.handle()``).

    Has the whole ``ConcurrentList`` API and forwards every operation to the
    shared list; the semantics are the list's.  Indexing, assignment, ``in``,
    ``len`` and the list methods reach the list without touching its
    reference count (free-threaded builds).  Create one per thread:

    >>> from nogil_collections import ConcurrentList
    >>> lst = ConcurrentList([1, 2])
    >>> h = lst.handle()
    >>> h.append(3); h[0], len(h), 3 in h
    (1, 3, True)
    """

    @staticmethod
    def _new(container):
        cdef ConcurrentListHandle h
        if _list_type == NULL or not isinstance(container, <object>_list_type):
            raise TypeError(
                f"ConcurrentListHandle needs a ConcurrentList, not {type(container).__name__}")
        h = ConcurrentListHandle.__new__(ConcurrentListHandle)
        h._c = container
        h._cp = <PyObject *>container
        h._exact = <PyObject *>Py_TYPE(container) == _list_type
        h._slots = &_list_slots if h._exact else &nch_generic_slots
        h._owner = _get_ident()
        return h

    def append(self, x, /):
        """lst.append(x) on the shared list.  Atomic."""
        if self._exact:
            nch_call1(&_list_m[<int>L_APPEND], self._cp, x)
        else:
            self._fwd("append", (x,))

    def pop(self, *index):
        """lst.pop([index]) on the shared list.  Atomic."""
        if self._exact and len(index) == 0:
            return nch_call0(&_list_m[<int>L_POP], self._cp)
        if self._exact and len(index) == 1:
            return nch_call1(&_list_m[<int>L_POP], self._cp, index[0])
        return self._fwd("pop", index)

    def extend(self, iterable, /):
        """lst.extend(iterable) on the shared list.  Atomic."""
        if self._exact:
            nch_call1(&_list_m[<int>L_EXTEND], self._cp, iterable)
        else:
            self._fwd("extend", (iterable,))

    def insert(self, index, x, /):
        """lst.insert(index, x) on the shared list.  Atomic."""
        if self._exact:
            nch_call2(&_list_m[<int>L_INSERT], self._cp, index, x)
        else:
            self._fwd("insert", (index, x))

    def remove(self, value, /):
        """lst.remove(value) on the shared list.  Atomic."""
        if self._exact:
            nch_call1(&_list_m[<int>L_REMOVE], self._cp, value)
        else:
            self._fwd("remove", (value,))

    def index(self, *args):
        """lst.index(value[, start[, stop]]) on the shared list."""
        if self._exact and len(args) == 1:
            return nch_call1(&_list_m[<int>L_INDEX], self._cp, args[0])
        return self._fwd("index", args)

    def count(self, value, /):
        """lst.count(value) on the shared list."""
        if self._exact:
            return nch_call1(&_list_m[<int>L_COUNT], self._cp, value)
        return self._fwd("count", (value,))

    def clear(self):
        """lst.clear() on the shared list.  Atomic."""
        if self._exact:
            nch_call0(&_list_m[<int>L_CLEAR], self._cp)
        else:
            self._fwd("clear", ())

    def copy(self):
        """lst.copy(): a new ConcurrentList (not a handle)."""
        if self._exact:
            return nch_call0(&_list_m[<int>L_COPY], self._cp)
        return self._fwd("copy", ())

    def reverse(self):
        """lst.reverse() on the shared list.  Atomic."""
        if self._exact:
            nch_call0(&_list_m[<int>L_REVERSE], self._cp)
        else:
            self._fwd("reverse", ())

    def sort(self, *args, **kwargs):
        """lst.sort(...) on the shared list.  Atomic."""
        self._c.sort(*args, **kwargs)

    def snapshot(self):
        """lst.snapshot(): a builtin list copy of a consistent point in time."""
        if self._exact:
            return nch_call0(&_list_m[<int>L_SNAPSHOT], self._cp)
        return self._fwd("snapshot", ())

    def append_if_absent(self, x, /):
        """lst.append_if_absent(x) on the shared list.  Atomic."""
        if self._exact:
            return nch_call1(&_list_m[<int>L_APPEND_IF_ABSENT], self._cp, x)
        return self._fwd("append_if_absent", (x,))

    def compare_and_set(self, index, expected, new, /):
        """lst.compare_and_set(index, expected, new) on the shared list."""
        if self._exact:
            return nch_call3(&_list_m[<int>L_COMPARE_AND_SET], self._cp, index, expected, new)
        return self._fwd("compare_and_set", (index, expected, new))

    def update(self, index, fn, /):
        """lst.update(index, fn) on the shared list.  Atomic."""
        if self._exact:
            return nch_call2(&_list_m[<int>L_UPDATE], self._cp, index, fn)
        return self._fwd("update", (index, fn))

    # Heap methods: O(log n) comparisons each, so the container reference
    # (as for sort) costs nothing that matters.
    def heappush(self, item, /):
        """lst.heappush(item) on the shared list.  Atomic."""
        self._c.heappush(item)

    def heappop(self):
        """lst.heappop() on the shared list.  Atomic."""
        return self._c.heappop()

    def heappushpop(self, item, /):
        """lst.heappushpop(item) on the shared list.  Atomic."""
        return self._c.heappushpop(item)

    def heapreplace(self, item, /):
        """lst.heapreplace(item) on the shared list.  Atomic."""
        return self._c.heapreplace(item)

    def heapify(self):
        """lst.heapify() on the shared list.  Atomic."""
        self._c.heapify()

    def _layout(self):
        """The container's layout probe (tests)."""
        return self._c._layout()

    def __add__(self, other):
        return self._c + _unwrap(other)

    def __radd__(self, other):
        return _unwrap(other) + self._c

    def __iadd__(self, other):
        # In place on the container; the handle stays a handle.
        target = self._c
        target += _unwrap(other)
        return self

    def __mul__(self, count):
        return self._c * count

    def __rmul__(self, count):
        return count * self._c

    def __imul__(self, count):
        target = self._c
        target *= count
        return self

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

Hot paths: the slots (``h[k]``, ``h[k] = v``, ``del h[k]``, ``k in h``,
``len(h)``) call the container's own slot functions with the stored pointer;
every named method (``get``, ``setdefault``, ``pop``, ``get_or_insert``,
``compare_and_set``, every list method, ...) is a C trampoline installed on
the handle type at import (``nch_install``) that hands the caller's argument
vector unchanged to the container's C function, with the stored pointer as
``self``; ``update_item`` is the container's compare-and-set loop over those.
None of them touches the container's reference count (tests/test_handle.py
checks at run time and in the C).  The operators (``|``, ``+``, ``+=``,
comparisons), iteration and ``fromkeys`` forward through the container
object itself, which takes a reference, like code that uses the container.

Semantics are exactly the container's: a handle adds no state, no caching
and no lock.  Any thread may use any handle; only threads that own it (the
creating thread) get the contention-free path.

Handle or ``ConcurrentDict.immortal()`` / ``ConcurrentList.immortal()``
(docs/guarantees.md, "Immortal containers")?  An immortal container's
reference count is never written, so it needs no handle whichever way code
reaches it, but it is never freed: use it for module-level, process-lifetime
caches and registries.  For containers created and dropped while the program
runs, or when only a few hot loops read one, take handles in those loops.
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
        const char *doc;
    } nch_method;

    /* 2: a C method with a calling convention called directly (m->meth set);
     * 1: another C method (called through vectorcall); 0: not a C method. */
    static int nch_method_init(nch_method *m, PyObject *callable) {
        PyMethodDef *def = NULL;
        m->callable = callable;
        m->meth = NULL;
        m->flags = 0;
        m->doc = NULL;
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
        if (def == NULL) return 0;
        m->doc = def->ml_doc;
        {
            int flags = def->ml_flags & ~METH_COEXIST;
            if (flags == (METH_FASTCALL | METH_KEYWORDS) || flags == METH_FASTCALL
                    || flags == METH_O || flags == METH_NOARGS) {
                m->meth = def->ml_meth;
                m->flags = flags;
                return 2;
            }
        }
        return (def->ml_flags & (METH_CLASS | METH_STATIC)) ? 0 : 1;
    }

    /* m(c, *args, **kw) with kwnames as in vectorcall. */
    static PyObject *nch_invoke_kw(const nch_method *m, PyObject *c, PyObject *const *args,
                                   Py_ssize_t n, PyObject *kwnames) {
        Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
        if (m->meth != NULL && (nkw == 0 || m->flags == (METH_FASTCALL | METH_KEYWORDS))) {
            switch (m->flags) {
            case METH_FASTCALL | METH_KEYWORDS:
                return ((nch_fast_kw)(void (*)(void))m->meth)(c, args, n, nkw ? kwnames : NULL);
            case METH_FASTCALL:
                return ((nch_fast)(void (*)(void))m->meth)(c, args, n);
            case METH_O:
                if (n == 1) return m->meth(c, args[0]);
                break;
            case METH_NOARGS:
                if (n == 0) return m->meth(c, NULL);
                break;
            }
        }
        {
            /* The generic call: the callee's own arity errors and keywords. */
            PyObject *small[8];
            PyObject **stack = small;
            Py_ssize_t j, total = 1 + n + nkw;
            PyObject *r;
            if (total + 1 > 8) {
                stack = (PyObject **)PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
                if (stack == NULL) return PyErr_NoMemory();
            }
            stack[1] = c;
            for (j = 0; j < n + nkw; j++) stack[j + 2] = args[j];
            r = PyObject_Vectorcall(m->callable, stack + 1,
                                    (size_t)(n + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames);
            if (stack != small) PyMem_Free(stack);
            return r;
        }
    }
    static PyObject *nch_invoke(const nch_method *m, PyObject *c, PyObject *const *args,
                                Py_ssize_t n) {
        return nch_invoke_kw(m, c, args, n, NULL);
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

    /* Forwarding methods.  Every C method of the container type that the
     * handle type does not define itself is installed on the handle type as
     * a method whose C function is one of these trampolines: it passes the
     * caller's argument vector (and keyword names) unchanged to the
     * container's C function with the handle's stored container pointer as
     * `self`.  No argument parsing of its own, no reference to the container,
     * and the container's own error messages.  A handle of a subclass calls
     * the subclass's bound method instead (overrides are honoured). */
    #define NCH_NTRAMP 48
    typedef struct {
        nch_method m;          /* the exact container type's method */
        PyObject *name;        /* its name (a strong reference) */
    } nch_tramp_entry;
    static nch_tramp_entry nch_tramp[NCH_NTRAMP];
    static PyMethodDef nch_tramp_defs[NCH_NTRAMP];
    static int nch_ntramp = 0;
    /* Where a handle object keeps its container pointer and exactness. */
    static Py_ssize_t nch_cp_offset = -1, nch_exact_offset = -1;

    static PyObject *nch_tramp_call(int i, PyObject *self, PyObject *const *args,
                                    size_t nargsf, PyObject *kwnames) {
        PyObject *c = *(PyObject **)((char *)self + nch_cp_offset);
        Py_ssize_t n = PyVectorcall_NARGS(nargsf);
        PyObject *bound, *r;
        if (*(int *)((char *)self + nch_exact_offset))
            return nch_invoke_kw(&nch_tramp[i].m, c, args, n, kwnames);
        bound = PyObject_GetAttr(c, nch_tramp[i].name);
        if (bound == NULL) return NULL;
        r = PyObject_Vectorcall(bound, args, (size_t)n, kwnames);
        Py_DECREF(bound);
        return r;
    }
    #define NCH_T(i) \
        static PyObject *nch_t##i(PyObject *self, PyObject *const *args, Py_ssize_t nargs, \
                                  PyObject *kwnames) { \
            return nch_tramp_call(i, self, args, (size_t)nargs, kwnames); \
        }
    NCH_T(0)
    NCH_T(1)
    NCH_T(2)
    NCH_T(3)
    NCH_T(4)
    NCH_T(5)
    NCH_T(6)
    NCH_T(7)
    NCH_T(8)
    NCH_T(9)
    NCH_T(10)
    NCH_T(11)
    NCH_T(12)
    NCH_T(13)
    NCH_T(14)
    NCH_T(15)
    NCH_T(16)
    NCH_T(17)
    NCH_T(18)
    NCH_T(19)
    NCH_T(20)
    NCH_T(21)
    NCH_T(22)
    NCH_T(23)
    NCH_T(24)
    NCH_T(25)
    NCH_T(26)
    NCH_T(27)
    NCH_T(28)
    NCH_T(29)
    NCH_T(30)
    NCH_T(31)
    NCH_T(32)
    NCH_T(33)
    NCH_T(34)
    NCH_T(35)
    NCH_T(36)
    NCH_T(37)
    NCH_T(38)
    NCH_T(39)
    NCH_T(40)
    NCH_T(41)
    NCH_T(42)
    NCH_T(43)
    NCH_T(44)
    NCH_T(45)
    NCH_T(46)
    NCH_T(47)
    static PyCFunction nch_tramp_funcs[NCH_NTRAMP] = {
        (PyCFunction)(void (*)(void))nch_t0,
        (PyCFunction)(void (*)(void))nch_t1,
        (PyCFunction)(void (*)(void))nch_t2,
        (PyCFunction)(void (*)(void))nch_t3,
        (PyCFunction)(void (*)(void))nch_t4,
        (PyCFunction)(void (*)(void))nch_t5,
        (PyCFunction)(void (*)(void))nch_t6,
        (PyCFunction)(void (*)(void))nch_t7,
        (PyCFunction)(void (*)(void))nch_t8,
        (PyCFunction)(void (*)(void))nch_t9,
        (PyCFunction)(void (*)(void))nch_t10,
        (PyCFunction)(void (*)(void))nch_t11,
        (PyCFunction)(void (*)(void))nch_t12,
        (PyCFunction)(void (*)(void))nch_t13,
        (PyCFunction)(void (*)(void))nch_t14,
        (PyCFunction)(void (*)(void))nch_t15,
        (PyCFunction)(void (*)(void))nch_t16,
        (PyCFunction)(void (*)(void))nch_t17,
        (PyCFunction)(void (*)(void))nch_t18,
        (PyCFunction)(void (*)(void))nch_t19,
        (PyCFunction)(void (*)(void))nch_t20,
        (PyCFunction)(void (*)(void))nch_t21,
        (PyCFunction)(void (*)(void))nch_t22,
        (PyCFunction)(void (*)(void))nch_t23,
        (PyCFunction)(void (*)(void))nch_t24,
        (PyCFunction)(void (*)(void))nch_t25,
        (PyCFunction)(void (*)(void))nch_t26,
        (PyCFunction)(void (*)(void))nch_t27,
        (PyCFunction)(void (*)(void))nch_t28,
        (PyCFunction)(void (*)(void))nch_t29,
        (PyCFunction)(void (*)(void))nch_t30,
        (PyCFunction)(void (*)(void))nch_t31,
        (PyCFunction)(void (*)(void))nch_t32,
        (PyCFunction)(void (*)(void))nch_t33,
        (PyCFunction)(void (*)(void))nch_t34,
        (PyCFunction)(void (*)(void))nch_t35,
        (PyCFunction)(void (*)(void))nch_t36,
        (PyCFunction)(void (*)(void))nch_t37,
        (PyCFunction)(void (*)(void))nch_t38,
        (PyCFunction)(void (*)(void))nch_t39,
        (PyCFunction)(void (*)(void))nch_t40,
        (PyCFunction)(void (*)(void))nch_t41,
        (PyCFunction)(void (*)(void))nch_t42,
        (PyCFunction)(void (*)(void))nch_t43,
        (PyCFunction)(void (*)(void))nch_t44,
        (PyCFunction)(void (*)(void))nch_t45,
        (PyCFunction)(void (*)(void))nch_t46,
        (PyCFunction)(void (*)(void))nch_t47
    };

    /* Install `callable` (a method of the exact container type) as `name` on
     * the handle type `tp`.  1: installed; 0: not a C method (skipped);
     * -1: error.  Runs at import, before any other thread can see `tp`; the
     * type's dict is written directly because the type is immutable from
     * Python (as Cython fills it in at type creation). */
    static int nch_install(PyTypeObject *tp, PyObject *name, PyObject *callable) {
        int i = nch_ntramp;
        PyObject *descr;
        if (i >= NCH_NTRAMP) {
            PyErr_SetString(PyExc_RuntimeError,
                            "nogil_collections._handle: raise NCH_NTRAMP (too many methods)");
            return -1;
        }
        if (!nch_method_init(&nch_tramp[i].m, callable)) return 0;
        nch_tramp[i].name = Py_NewRef(name);
        nch_tramp_defs[i].ml_name = PyUnicode_AsUTF8(name);
        if (nch_tramp_defs[i].ml_name == NULL) return -1;
        nch_tramp_defs[i].ml_meth = nch_tramp_funcs[i];
        nch_tramp_defs[i].ml_flags = METH_FASTCALL | METH_KEYWORDS;
        nch_tramp_defs[i].ml_doc = nch_tramp[i].m.doc;
        descr = PyDescr_NewMethod(tp, &nch_tramp_defs[i]);
        if (descr == NULL) return -1;
        if (PyDict_SetItem(tp->tp_dict, name, descr) < 0) {
            Py_DECREF(descr);
            return -1;
        }
        Py_DECREF(descr);
        nch_ntramp = i + 1;
        PyType_Modified(tp);
        return 1;
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
    int nch_method_init(nch_method *m, PyObject *callable)
    object nch_call2(const nch_method *m, PyObject *c, object a, object b)
    object nch_call3(const nch_method *m, PyObject *c, object a, object b, object d)
    Py_ssize_t nch_cp_offset, nch_exact_offset
    int nch_install(PyTypeObject *tp, object name, PyObject *callable) except -1


# ----------------------------------------------------------------------
# Binding to the container types (done once, by the package's __init__).

# Strong references (module lifetime) to what the C tables point at.
cdef list _keep = []
cdef nch_method _dict_get
cdef nch_method _dict_cas
cdef nch_slots _dict_slots
cdef nch_slots _list_slots
cdef PyObject *_dict_type = NULL
cdef PyObject *_list_type = NULL
cdef object _absent = None
# Proof of creation by _new: a handle made any other way (T.__new__(T), a
# subclass of _Handle) would have no container pointer and no slot table, and
# its first use would dereference NULL.  Never exposed to Python.
cdef object _CREATE = object()


cdef int _install_forwarders(container_type, handle_type) except -1:
    # Every C method of the container type that the handle type does not
    # define itself (special methods excluded: those are the slots above).
    cdef int n = 0
    for name, f in list(container_type.__dict__.items()):
        if name.startswith("__") or hasattr(handle_type, name):
            continue
        _keep.append(f)
        n += nch_install(<PyTypeObject *>handle_type, name, <PyObject *>f)
    return n


def _bind_types(dict_type, list_type, absent):
    """Called once by the package (__init__) after both container modules
    are imported: they import this module, so it cannot import them."""
    global _dict_type, _list_type, _absent, _dict_slots, _list_slots
    global nch_cp_offset, nch_exact_offset
    cdef _Handle probe
    if _dict_type != NULL:
        return
    probe = ConcurrentDictHandle.__new__(ConcurrentDictHandle, _CREATE)
    nch_cp_offset = <char *>&probe._cp - <char *><PyObject *>probe
    nch_exact_offset = <char *>&probe._exact - <char *><PyObject *>probe
    _keep.extend((dict_type, list_type))
    _install_forwarders(dict_type, ConcurrentDictHandle)
    _install_forwarders(list_type, ConcurrentListHandle)
    get = dict_type.__dict__["get"]
    cas = dict_type.__dict__["compare_and_set"]
    _keep.extend((get, cas))
    nch_method_init(&_dict_get, <PyObject *>get)
    nch_method_init(&_dict_cas, <PyObject *>cas)
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

    def __cinit__(self, *args, **kwargs):
        # Only _new (which fills every field before the handle is returned)
        # may create a handle; see _CREATE.
        if len(args) != 1 or args[0] is not _CREATE or kwargs:
            raise TypeError(f"use container.handle() to create a {type(self).__name__}")

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

    def immortal(self, *args, **kwargs):
        """type(c).immortal(...): a new immortal container of the
        container's type (not a handle), as ``c.immortal(...)`` gives."""
        return type(self._c).immortal(*args, **kwargs)

    # No __getattr__ forwarding: a type with one cannot have its method
    # loads specialised by the interpreter (LOAD_ATTR_METHOD_* needs the
    # generic tp_getattro), which made h.get(k) twice as slow as d.get(k).
    # Instead _bind_types installs a forwarding method (a C trampoline, see
    # nch_install) for every method of the container type that the handle
    # types do not define below, so the handles follow the containers' API
    # as it grows (tests/test_handle.py checks that none is missing).  A
    # subclass's own additions are reached through h.container.

    cdef object _fwd(self, str name, tuple args):
        # The path of a subclass (or an unusual call): the container's own
        # bound method, so that overrides behave as on the container.  Kept
        # out of the fast methods so that their generated C shows no
        # reference to the container (tests/test_handle.py checks).
        return getattr(self._c, name)(*args)

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


cdef _Handle _init_handle(_Handle h, object container, PyObject *exact_type,
                          const nch_slots *exact_slots):
    # Fill a handle made by _new (after its type check): the one strong
    # reference, the borrowed pointer the hot paths use, and the slot table
    # (the exact type's own, or the generic C API for a subclass).
    h._c = container
    h._cp = <PyObject *>container
    h._exact = <PyObject *>Py_TYPE(container) == exact_type
    h._slots = exact_slots if h._exact else &nch_generic_slots
    h._owner = _get_ident()
    return h


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
        if _dict_type == NULL or not isinstance(container, <object>_dict_type):
            raise TypeError(
                f"ConcurrentDictHandle needs a ConcurrentDict, not {type(container).__name__}")
        return _init_handle(ConcurrentDictHandle.__new__(ConcurrentDictHandle, _CREATE),
                            container, _dict_type, &_dict_slots)

    def update_item(self, key, fn, *default):
        """d.update_item(key, fn[, default]) on the shared dict: the same
        compare-and-set retry loop (fn may run more than once under
        contention; one result per update is stored)."""
        cdef const nch_method *get = &_dict_get
        cdef const nch_method *cas = &_dict_cas
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
        if _list_type == NULL or not isinstance(container, <object>_list_type):
            raise TypeError(
                f"ConcurrentListHandle needs a ConcurrentList, not {type(container).__name__}")
        return _init_handle(ConcurrentListHandle.__new__(ConcurrentListHandle, _CREATE),
                            container, _list_type, &_list_slots)

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

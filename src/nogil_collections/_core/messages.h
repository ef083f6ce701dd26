/* messages.h -- error messages that mirror the builtins', per Python version.
 *
 * ConcurrentList / ConcurrentDict raise the same exceptions, with the same
 * messages, as list / dict on the interpreter they run on.  Most of their
 * messages come from the interpreter itself (hash(), comparisons, argument
 * parsing, the builtin dict that update() reads through) and so follow it
 * automatically; the few built here changed between versions and are chosen
 * at compile time (each extension is built for one interpreter).  The tests
 * compare against the running interpreter's builtin, never against a fixed
 * text (tests/test_list_behaviour.py, tests/test_dict.py::test_unhashable_key).
 *
 *   ncc_dict_key_hash(key)
 *       hash(key) for use as a dict key: -1 with an exception set if key is
 *       unhashable.  3.14+: an exact TypeError from hash() is replaced by
 *       "cannot use '<type>' as a dict key (<original message>)", as
 *       dict_unhashable_type does (Objects/dictobject.c: 3.14.7 line 2353,
 *       3.15.0rc2 line 2427; called on every dict operation's hash failure:
 *       subscript, setitem, delitem, contains, get, setdefault, pop).  A
 *       subclass of TypeError, or any other exception, passes unchanged.
 *       3.13 and older: hash()'s own "unhashable type: '<type>'".
 *
 *   NCC_LIST_INDEX_NOT_FOUND_FIXED
 *       1 where list.index raises the fixed "list.index(x): x not in list"
 *       (3.14+: Objects/listobject.c list_index_impl, 3.14.7 line 3310,
 *       3.15.0rc2 line 3352), 0 where it raises "<repr(x)> is not in list"
 *       (3.13 and older).
 */
#ifndef NOGIL_COLLECTIONS_MESSAGES_H
#define NOGIL_COLLECTIONS_MESSAGES_H

#include <Python.h>

#if PY_VERSION_HEX >= 0x030E0000
#  define NCC_LIST_INDEX_NOT_FOUND_FIXED 1
#else
#  define NCC_LIST_INDEX_NOT_FOUND_FIXED 0
#endif

/* Called with hash()'s exception set. */
static inline void ncc__dict_unhashable(PyObject *key) {
#if PY_VERSION_HEX >= 0x030E0000
    PyObject *exc = PyErr_GetRaisedException();
    if (exc == NULL) {
        return;
    }
    if (!Py_IS_TYPE(exc, (PyTypeObject *)PyExc_TypeError)) {
        PyErr_SetRaisedException(exc);
        return;
    }
    /* %T: the key type's fully qualified name, as CPython's own format. */
    PyErr_Format(PyExc_TypeError, "cannot use '%T' as a dict key (%S)", key, exc);
    Py_DECREF(exc);
#else
    (void)key;
#endif
}

static inline Py_hash_t ncc_dict_key_hash(PyObject *key) {
    Py_hash_t h = PyObject_Hash(key);
    if (h == -1 && PyErr_Occurred()) {
        ncc__dict_unhashable(key);
    }
    return h;
}

#endif /* NOGIL_COLLECTIONS_MESSAGES_H */

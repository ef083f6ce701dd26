/* exact_eq.h -- equality of exact ints and exact strs without Python code.
 *
 * Shared by the dict's probe (_dict_table.h: pinned str/int keys) and the
 * list's `in` (_list_array.h): each gives the result long_richcompare /
 * unicode_compare_eq would, but runs no Python code, does not allocate and
 * cannot fail.  Both objects must be alive for the call. */
#ifndef NOGIL_COLLECTIONS_EXACT_EQ_H
#define NOGIL_COLLECTIONS_EXACT_EQ_H

#include <Python.h>
#include <string.h>

/* 1 and the value in *v if the exact int `o` is compact (one digit at most:
 * |value| < 2^30 with 30-bit digits), else 0.  CPython keeps ints
 * normalized, so a value that fits one digit is always stored compact: a
 * compact int never equals a non-compact one (long_compare relies on the
 * same fact, comparing digit counts first). */
static inline int ncc_int_compact(PyObject *o, Py_ssize_t *v) {
#if PY_VERSION_HEX >= 0x030C0000
    if (!PyUnstable_Long_IsCompact((PyLongObject *)o)) return 0;
    *v = (Py_ssize_t)PyUnstable_Long_CompactValue((PyLongObject *)o);
#else
    Py_ssize_t size = Py_SIZE(o);   /* sign * number of digits */
    if (size < -1 || size > 1) return 0;
    *v = size == 0 ? 0 : size * (Py_ssize_t)((PyLongObject *)o)->ob_digit[0];
#endif
    return 1;
}

/* Equality of two exact str objects (equal strs have equal length, kind and
 * code units). */
static inline int ncc_str_eq(PyObject *a, PyObject *b) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);
    if (n != PyUnicode_GET_LENGTH(b)) return 0;
    int kind = PyUnicode_KIND(a);
    if (kind != (int)PyUnicode_KIND(b)) return 0;
    return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * (size_t)kind) == 0;
}

#endif /* NOGIL_COLLECTIONS_EXACT_EQ_H */

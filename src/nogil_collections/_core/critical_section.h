/* critical_section.h -- a container's writer-lock critical section on a
 * BORROWED pointer.
 *
 * The same critical section as `with cython.critical_section(lock)`
 * (Py_BEGIN_CRITICAL_SECTION), for the hottest writes (lst.append, lst.pop,
 * lst[i] = v, d[k] = v, del d[k], d.pop): Cython wraps its form in an
 * incref/decref of the object, which on 3.13t is a pair of atomic operations
 * on the lock's shared refcount whenever the writer is not the thread that
 * created it.  Callers pass their own writer lock, which the container keeps
 * alive for its whole life.  GIL builds (every version): no-ops, the GIL is
 * the lock.  (On 3.13/3.14 GIL builds struct PyCriticalSection is not even
 * defined -- Include/cpython/critical_section.h 3.14.7:91-108 defines it only
 * under Py_GIL_DISABLED -- so a local ncc_cs must not name it there.)
 *
 * The borrowed-pointer form needs nothing private: PyCriticalSection_Begin
 * locks op->ob_mutex (Include/internal/pycore_critical_section.h
 * 3.14.7:113-116), is public on 3.13-3.15, and is what
 * Py_BEGIN_CRITICAL_SECTION expands to.  3.14+ also offers
 * PyCriticalSection_BeginMutex(c, &mutex) for a bare PyMutex; we lock a
 * separate lock object's ob_mutex, the same thing through the older API.
 * 3.14+ skips the lock when the top-most active section already holds the
 * same mutex (Python/critical_section.c 3.14.7:32, 3.15.0rc2:31); our code
 * never nests a section on the same lock, and correctness does not depend
 * on it either way. */
#ifndef NOGIL_COLLECTIONS_CRITICAL_SECTION_H
#define NOGIL_COLLECTIONS_CRITICAL_SECTION_H

#include <Python.h>

#if defined(Py_GIL_DISABLED)
typedef PyCriticalSection ncc_cs;
#define ncc_cs_begin(cs, o) PyCriticalSection_Begin((cs), (o))
#define ncc_cs_end(cs) PyCriticalSection_End(cs)
#endif

/* 1 if the per-object mutex that ncc_cs_begin(cs, o) locks is held by some
 * thread now, 0 if not (always 0 on GIL builds).  A hint: the answer may be
 * stale as soon as it is returned.  3.14+: the public PyMutex_IsLocked
 * (Include/cpython/lock.h 3.14.7:70, pylock.h 3.15.0rc2:74: a seq_cst load
 * of _bits & _Py_LOCKED).  3.13: the same test by hand: PyMutex is
 * { uint8_t _bits; } with _Py_LOCKED = 1 (Include/cpython/lock.h).
 * tests/test_core.py::test_assumption_ob_mutex_is_the_critical_section_lock. */
static inline int ncc_cs_is_locked(PyObject *o) {
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030E0000
    return PyMutex_IsLocked(&o->ob_mutex);
#elif defined(Py_GIL_DISABLED)
    /* Relaxed: a hint. */
    return __atomic_load_n(&o->ob_mutex._bits, __ATOMIC_RELAXED) & 1;
#else
    (void)o;
    return 0;
#endif
}

#if !defined(Py_GIL_DISABLED)
typedef struct { int unused; } ncc_cs;
#define ncc_cs_begin(cs, o) ((void)(cs), (void)(o))
#define ncc_cs_end(cs) ((void)(cs))
#endif

#endif /* NOGIL_COLLECTIONS_CRITICAL_SECTION_H */

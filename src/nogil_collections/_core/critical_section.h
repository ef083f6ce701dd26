/* critical_section.h -- a container's writer-lock critical section on a
 * BORROWED pointer.
 *
 * The same critical section as `with cython.critical_section(lock)`
 * (Py_BEGIN_CRITICAL_SECTION), for the hottest writes (lst.append, lst.pop,
 * lst[i] = v, d[k] = v, del d[k], d.pop): Cython wraps its form in an
 * incref/decref of the object, which on 3.13t is a pair of atomic operations
 * on the lock's shared refcount whenever the writer is not the thread that
 * created it.  Callers pass their own writer lock, which the container keeps
 * alive for its whole life.  GIL builds (< 3.13): no-ops, the GIL is the
 * lock. */
#ifndef NOGIL_COLLECTIONS_CRITICAL_SECTION_H
#define NOGIL_COLLECTIONS_CRITICAL_SECTION_H

#include <Python.h>

#if PY_VERSION_HEX >= 0x030D0000
typedef PyCriticalSection ncc_cs;
#define ncc_cs_begin(cs, o) PyCriticalSection_Begin((cs), (o))
#define ncc_cs_end(cs) PyCriticalSection_End(cs)
#else
typedef struct { int unused; } ncc_cs;
#define ncc_cs_begin(cs, o) ((void)(cs), (void)(o))
#define ncc_cs_end(cs) ((void)(cs))
#endif

#endif /* NOGIL_COLLECTIONS_CRITICAL_SECTION_H */

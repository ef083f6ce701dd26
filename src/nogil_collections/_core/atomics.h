/* atomics.h -- the package's only atomic primitives.
 *
 * Thin static-inline wrappers over the GCC/Clang __atomic builtins, so the same
 * API compiles on GIL builds (3.11+) and free-threaded builds (3.13t, 3.14t);
 * we do not depend on CPython's _Py_atomic_* (no stability promise, absent on
 * 3.11/3.12).  Naming: ncc_<op>_<type>[_<order>].
 *
 * Every call site in the package names, in a comment, the operation it pairs
 * with (e.g. "acquire; pairs with the release store in list_publish_array").
 */
#ifndef NOGIL_COLLECTIONS_ATOMICS_H
#define NOGIL_COLLECTIONS_ATOMICS_H

#include <Python.h>
#include <stdint.h>
#include <time.h>

#if !defined(__GNUC__) && !defined(__clang__)
#  error "nogil_collections needs GCC or Clang (__atomic builtins)"
#endif

#define NCC_CACHE_LINE 64

/* ---- generic generator: load/store with each ordering, CAS, fetch-add, exchange ---- */
#define NCC_DEFINE_ATOMICS(SUFFIX, T)                                                   \
    static inline T ncc_load_##SUFFIX##_relaxed(T *p)                             \
        { return __atomic_load_n(p, __ATOMIC_RELAXED); }                                 \
    static inline T ncc_load_##SUFFIX##_acquire(T *p)                             \
        { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }                                 \
    static inline T ncc_load_##SUFFIX(T *p)                                       \
        { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }                                 \
    static inline void ncc_store_##SUFFIX##_relaxed(T *p, T v)                          \
        { __atomic_store_n(p, v, __ATOMIC_RELAXED); }                                    \
    static inline void ncc_store_##SUFFIX##_release(T *p, T v)                          \
        { __atomic_store_n(p, v, __ATOMIC_RELEASE); }                                    \
    static inline void ncc_store_##SUFFIX(T *p, T v)                                    \
        { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }                                    \
    static inline T ncc_exchange_##SUFFIX(T *p, T v)                                    \
        { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }                          \
    /* Strong CAS, seq_cst on success and failure.  On failure *expected is updated. */ \
    static inline int ncc_cas_##SUFFIX(T *p, T *expected, T desired)                    \
        { return __atomic_compare_exchange_n(p, expected, desired, 0,                    \
                                             __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); }      \
    static inline int ncc_cas_##SUFFIX##_relaxed(T *p, T *expected, T desired)          \
        { return __atomic_compare_exchange_n(p, expected, desired, 0,                    \
                                             __ATOMIC_RELAXED, __ATOMIC_RELAXED); }

#define NCC_DEFINE_FETCH_ADD(SUFFIX, T)                                                 \
    /* Returns the OLD value (like _Py_atomic_add_*). */                                \
    static inline T ncc_fetch_add_##SUFFIX(T *p, T v)                                   \
        { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }                           \
    static inline T ncc_fetch_add_##SUFFIX##_relaxed(T *p, T v)                         \
        { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }                           \
    static inline T ncc_fetch_add_##SUFFIX##_release(T *p, T v)                         \
        { return __atomic_fetch_add(p, v, __ATOMIC_RELEASE); }

NCC_DEFINE_ATOMICS(ptr, void *)
NCC_DEFINE_ATOMICS(obj, PyObject *)
NCC_DEFINE_ATOMICS(ssize, Py_ssize_t)
NCC_DEFINE_ATOMICS(uint64, uint64_t)
NCC_DEFINE_ATOMICS(uint32, uint32_t)
NCC_DEFINE_ATOMICS(int, int)
NCC_DEFINE_FETCH_ADD(ssize, Py_ssize_t)
NCC_DEFINE_FETCH_ADD(uint64, uint64_t)
NCC_DEFINE_FETCH_ADD(int, int)

/* Pointer fetch-add in bytes (rarely useful, provided for completeness). */
static inline void *ncc_fetch_add_ptr(void **p, Py_ssize_t nbytes)
    { return (void *)__atomic_fetch_add((uintptr_t *)p, (uintptr_t)nbytes, __ATOMIC_SEQ_CST); }

/* ---- fences ---- */
static inline void ncc_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void ncc_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
static inline void ncc_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
/* Compiler-only barrier: orders code generation, emits no instruction. */
static inline void ncc_compiler_barrier(void) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

static inline void ncc_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Busy-wait `seconds` of wall time without detaching (a critical section or
 * write window stays held): the race window of the tests' deliberately
 * broken writers.  By the clock, not a count of pause instructions, whose
 * length varies about tenfold between CPUs. */
static inline void ncc_spin_for(double seconds) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        ncc_cpu_relax();
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) < seconds);
}

#endif /* NOGIL_COLLECTIONS_ATOMICS_H */

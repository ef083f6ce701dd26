/* cache_line_pingpong.c -- what one cache line costs to move between two cores.
 *
 * Two threads, pinned to CPUs 0 and 1, hand one counter back and forth: each
 * waits until the other has stored the next value, then stores its own.
 * Every hand-over moves the counter's line to the other core, so half a
 * round trip is the latency of one line transfer, the unit in which
 * docs/performance.md ("What bounds the list's writes") prices a value
 * replacement that a reader on the other core then reads.  Plain C: no
 * interpreter, no package.
 *
 *     cc -O2 -pthread tools/cache_line_pingpong.c -o /tmp/pingpong && /tmp/pingpong
 *
 * On a loaded machine give it a raised priority, as the contention tools
 * (tools/list_write_contention.py): a descheduled partner shows up as a
 * slower hand-over.  Linux only (pthread_setaffinity_np).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

enum { ROUNDS = 2000000 };

/* Alone on its line: nothing else moves with it. */
static _Alignas(64) uint64_t counter;
static _Alignas(64) char after_counter[64];

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *partner(void *arg) {
    (void)arg;
    pin(1);
    for (uint64_t i = 0; i < ROUNDS; i++) {
        /* Acquire; pairs with the main thread's release store of 2i+1. */
        while (__atomic_load_n(&counter, __ATOMIC_ACQUIRE) != 2 * i + 1) {
        }
        /* Release; pairs with the main thread's acquire load. */
        __atomic_store_n(&counter, 2 * i + 2, __ATOMIC_RELEASE);
    }
    return NULL;
}

int main(void) {
    pthread_t t;
    struct timespec t0, t1;
    (void)after_counter;
    pthread_create(&t, NULL, partner, NULL);
    pin(0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < ROUNDS; i++) {
        /* Release; pairs with the partner's acquire load. */
        __atomic_store_n(&counter, 2 * i + 1, __ATOMIC_RELEASE);
        /* Acquire; pairs with the partner's release store of 2i+2. */
        while (__atomic_load_n(&counter, __ATOMIC_ACQUIRE) != 2 * i + 2) {
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("round trip %.1f ns; one line transfer about %.1f ns\n", ns / ROUNDS, ns / ROUNDS / 2);
    return 0;
}

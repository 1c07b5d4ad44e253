#define _GNU_SOURCE
#include "CKernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

// The compute threads' pool. Decode runs about five parallel regions per layer, each some tens of
// microseconds long; waking a sleeping GCD worker for each took about as long as the work (the
// threads sat idle about 40% of a decode). Here the workers spin on a generation counter for
// 50 µs after each region, so back-to-back regions start at once, then sleep, so OpenBLAS's own
// threads have the cores during a training step's long products.

#if defined(__x86_64__) || defined(__i386__)
#define relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define relax() __asm__ __volatile__("yield")
#else
#define relax() ((void)0)
#endif

#define MAX_WORKERS 255
#define SPIN_NS 50000L  // spin this long after a region, then sleep

typedef struct {
    lk_part_fn fn;
    void *context;
    long parts;
    atomic_long next;  // the next part to take
    atomic_long done;  // parts finished
} Region;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;  // guards starting workers and sleeping
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static atomic_flag busy = ATOMIC_FLAG_INIT;  // one region at a time; others fall back to the caller
static atomic_long generation;
static atomic_int sleepers;
static atomic_int active;  // workers that may hold `current`: a region's caller waits for none
static _Atomic(Region *) current;
static atomic_int started;

static long nanos(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void take_parts(Region *r) {
    for (long part; (part = atomic_fetch_add(&r->next, 1)) < r->parts;) {
        r->fn(r->context, part);
        atomic_fetch_add(&r->done, 1);
    }
}

static void *worker(void *unused) {
    (void)unused;
    long seen = atomic_load(&generation);
    for (;;) {
        long start = nanos(), g;
        while ((g = atomic_load(&generation)) == seen) {
            long waited = nanos() - start;
            if (waited < SPIN_NS) { for (int i = 0; i < 64; i++) relax(); }
            else {
                atomic_fetch_add(&sleepers, 1);
                pthread_mutex_lock(&lock);
                while (atomic_load(&generation) == seen) pthread_cond_wait(&wake, &lock);
                pthread_mutex_unlock(&lock);
                atomic_fetch_sub(&sleepers, 1);
            }
        }
        seen = g;
        atomic_fetch_add(&active, 1);
        Region *r = atomic_load(&current);
        if (r) take_parts(r);
        atomic_fetch_sub(&active, 1);
    }
    return NULL;
}

// Starts workers up to `count`, at most one per other online CPU: spinning workers beyond the
// cores would only take turns with the caller (the parts are shared out dynamically, so fewer
// workers than parts is fine). Never stops them: a daemon sets its thread count once.
static int ensure_workers(int count) {
    static long cpus;
    if (!cpus) cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus > 0 && count > cpus - 1) count = (int)(cpus - 1);
    if (count > MAX_WORKERS) count = MAX_WORKERS;
    if (started >= count) return started;
    pthread_mutex_lock(&lock);
    while (started < count) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&t, &attr, worker, NULL);
        pthread_attr_destroy(&attr);
        if (failed) break;
        started++;
    }
    int n = started;
    pthread_mutex_unlock(&lock);
    return n;
}

void lk_parallel(long parts, lk_part_fn fn, void *context) {
    if (parts <= 1 || atomic_flag_test_and_set(&busy)) {
        // One part, or a region already running (nested, or another caller's): on this thread.
        for (long p = 0; p < parts; p++) fn(context, p);
        return;
    }
    int workers = ensure_workers((int)(parts - 1));
    Region r = { fn, context, parts, 0, 0 };
    if (workers > 0) {
        atomic_store(&current, &r);
        atomic_fetch_add(&generation, 1);
        if (atomic_load(&sleepers) > 0) {
            pthread_mutex_lock(&lock);
            pthread_cond_broadcast(&wake);
            pthread_mutex_unlock(&lock);
        }
    }
    take_parts(&r);
    while (atomic_load(&r.done) < parts) relax();
    // r lives on this stack: no worker may still be looking at it when this returns.
    atomic_store(&current, NULL);
    while (atomic_load(&active) > 0) relax();
    atomic_flag_clear(&busy);
}

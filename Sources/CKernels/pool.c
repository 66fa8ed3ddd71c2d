#include "ckpool.h"
#include "ckernels.h"
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#define CK_PAUSE() _mm_pause()
#else
#define CK_PAUSE() ((void)0)
#endif

struct ck_pool {
    int32_t workers;
    pthread_t *threads;
    _Atomic uint64_t generation;   // bumped once per task
    _Atomic uint32_t wake;         // low bits of generation: the word sleeping helpers wait on
    _Atomic int32_t sleepers;      // helpers blocked (or about to block) on `wake`
    _Atomic int32_t pending;       // helpers still running the current task
    _Atomic int32_t stop;
    ck_pool_fn fn;
    void *ctx;
    int selection;                 // the caller's kernel switches (ck_selection_get) for this task
};

typedef struct { ck_pool *pool; int32_t index; } helper_arg;

// How long an idle helper stays awake for the next task: it spins (PAUSE), then yields, for about this
// long — back-to-back products (hundreds per token) never pay a wake-up — then blocks on a futex, so
// a worker between passes (sampling, detokenising, waiting for a lease, scoring) costs no CPU.
#define CK_SPIN_PAUSES 20000
#define CK_AWAKE_NS 2000000LL

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void wait_on(_Atomic uint32_t *word, uint32_t expected) {
#if defined(__linux__)
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
    (void)word; (void)expected; sched_yield();
#endif
}

static void wake_all(_Atomic uint32_t *word) {
#if defined(__linux__)
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
#endif
}

/// Waits until `generation` moves past `seen`: spin, yield, then sleep.
static uint64_t await_task(ck_pool *pool, uint64_t seen) {
    uint64_t g;
    int spins = 0;
    int64_t yielding_since = 0;
    while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
        if (atomic_load_explicit(&pool->stop, memory_order_relaxed)) return g;
        if (++spins < CK_SPIN_PAUSES) { CK_PAUSE(); continue; }
        if (yielding_since == 0) yielding_since = now_ns();
        if (now_ns() - yielding_since < CK_AWAKE_NS) { sched_yield(); continue; }
        // Announce the sleep, then re-check: ck_pool_run bumps generation and `wake` before it reads
        // `sleepers`, so either it sees this sleeper and wakes it, or this check sees its task.
        atomic_fetch_add_explicit(&pool->sleepers, 1, memory_order_seq_cst);
        uint32_t w = atomic_load_explicit(&pool->wake, memory_order_seq_cst);
        if (atomic_load_explicit(&pool->generation, memory_order_seq_cst) == seen && !atomic_load(&pool->stop)) wait_on(&pool->wake, w);
        atomic_fetch_sub_explicit(&pool->sleepers, 1, memory_order_seq_cst);
        spins = 0;
        yielding_since = 0;
    }
    return g;
}

static void *helper_main(void *p) {
    helper_arg *a = (helper_arg *)p;
    ck_pool *pool = a->pool;
    int32_t index = a->index;
    free(a);
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = await_task(pool, seen);
        seen = g;
        if (atomic_load_explicit(&pool->stop, memory_order_relaxed)) return NULL;
        ck_selection_set(pool->selection);
        pool->fn(pool->ctx, index, pool->workers);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
    }
}

ck_pool *ck_pool_create(int32_t workers) {
    if (workers < 1) workers = 1;
    ck_pool *pool = calloc(1, sizeof(ck_pool));
    pool->workers = workers;
    pool->threads = calloc((size_t)workers, sizeof(pthread_t));
    for (int32_t i = 1; i < workers; i++) {
        helper_arg *a = malloc(sizeof(helper_arg));
        a->pool = pool;
        a->index = i;
        pthread_create(&pool->threads[i], NULL, helper_main, a);
    }
    return pool;
}

void ck_pool_run(ck_pool *pool, ck_pool_fn fn, void *ctx) {
    if (pool->workers == 1) { fn(ctx, 0, 1); return; }
    pool->fn = fn;
    pool->ctx = ctx;
    pool->selection = ck_selection_get();
    atomic_store_explicit(&pool->pending, pool->workers - 1, memory_order_relaxed);
    uint64_t g = atomic_fetch_add_explicit(&pool->generation, 1, memory_order_seq_cst) + 1;
    atomic_store_explicit(&pool->wake, (uint32_t)g, memory_order_seq_cst);
    if (atomic_load_explicit(&pool->sleepers, memory_order_seq_cst) > 0) wake_all(&pool->wake);
    fn(ctx, 0, pool->workers);
    int spins = 0;
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) {
        if (++spins < 20000) CK_PAUSE(); else sched_yield();
    }
}

void ck_pool_destroy(ck_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    uint64_t g = atomic_fetch_add(&pool->generation, 1) + 1;
    atomic_store(&pool->wake, (uint32_t)g);
    wake_all(&pool->wake);
    for (int32_t i = 1; i < pool->workers; i++) pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    free(pool);
}

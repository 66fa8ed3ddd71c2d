#include "ckpool.h"
#include "ckernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

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
    _Atomic int32_t pending;       // helpers still running the current task
    _Atomic int32_t stop;
    ck_pool_fn fn;
    void *ctx;
    int selection;                 // the caller's kernel switches (ck_selection_get) for this task
};

typedef struct { ck_pool *pool; int32_t index; } helper_arg;

static void *helper_main(void *p) {
    helper_arg *a = (helper_arg *)p;
    ck_pool *pool = a->pool;
    int32_t index = a->index;
    free(a);
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&pool->stop, memory_order_relaxed)) return NULL;
            if (++spins < 20000) CK_PAUSE(); else sched_yield();
        }
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
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    fn(ctx, 0, pool->workers);
    int spins = 0;
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) {
        if (++spins < 20000) CK_PAUSE(); else sched_yield();
    }
}

void ck_pool_destroy(ck_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    atomic_fetch_add(&pool->generation, 1);
    for (int32_t i = 1; i < pool->workers; i++) pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    free(pool);
}

#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A fixed set of worker threads that run one data-parallel task at a time. The caller takes part
/// as worker 0; helpers spin briefly on a generation counter, then yield, so back-to-back small
/// products (hundreds per token) do not pay a thread wake-up each; after ~2 ms without a task they
/// block on a futex until the next one, so an idle pool costs no CPU.
typedef struct ck_pool ck_pool;
typedef void (*ck_pool_fn)(void *ctx, int32_t worker, int32_t workers);

ck_pool *ck_pool_create(int32_t workers);
/// Runs fn(ctx, i, workers) for every i in 0..<workers (i = 0 on the calling thread) and returns
/// when all have finished.
void ck_pool_run(ck_pool *pool, ck_pool_fn fn, void *ctx);
void ck_pool_destroy(ck_pool *pool);

#ifdef __cplusplus
}
#endif

// Shared by the kernel benchmarks in this folder: a monotonic clock and random quantised weights.
#pragma once
#include "ckernels.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// `rows` rows of `cols` weights in Q4_1 or Q8_0 blocks: random quants with small positive f16 scales
// (and negative Q4_1 mins), so the sums stay finite.
static inline uint8_t *bench_random_rows(size_t rows, size_t cols, int type) {
    const size_t bb = type == CK_Q8_0 ? 34 : 20, nb = cols / 32, bytes = rows * nb * bb;
    uint8_t *w = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)rand();
    for (size_t b = 0; b < rows * nb; b++) {
        const uint16_t d = 0x2000 | (rand() & 0x3ff), m = 0xa000 | (rand() & 0x3ff);
        memcpy(w + b * bb, &d, 2);
        if (type == CK_Q4_1) memcpy(w + b * bb + 2, &m, 2);
    }
    return w;
}

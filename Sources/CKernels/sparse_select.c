#include <math.h>
#include <string.h>
#include "ckernels.h"

// CATS's choice of active neurons (sirius-method.md §2.2), without a sort: the k-th largest magnitude is
// found by a radix select on the magnitudes' bit patterns (non-negative floats order like their bits),
// then one scan in index order lists the neurons above it and, of those equal to it, the lowest indices.

static inline uint32_t key_of(float m) {
    uint32_t u;
    memcpy(&u, &m, 4);
    return u;
}

/// Of the keys whose bits above `shift + width` equal `prefix`, the bucket of bits [shift, shift + width)
/// that holds the `need`-th largest; `need` becomes the rank inside that bucket.
static uint32_t select_bucket(const float *mag, int64_t d, int shift, int width, uint32_t prefix, int64_t *need) {
    uint32_t hist[2048];
    const uint32_t buckets = 1u << width;
    memset(hist, 0, buckets * sizeof(uint32_t));
    const int top = shift + width;
    for (int64_t j = 0; j < d; j++) {
        const uint32_t u = key_of(mag[j]);
        if (top < 32 && (u >> top) != prefix) continue;
        hist[(u >> shift) & (buckets - 1)]++;
    }
    uint32_t b = buckets;
    while (b > 0) {
        b--;
        if ((int64_t)hist[b] >= *need) break;
        *need -= hist[b];
    }
    return b;
}

int64_t ck_cats_select(const float *g, int64_t T, int64_t d, int64_t k, float threshold, int by_threshold,
                       float *mag, int32_t *active) {
    for (int64_t j = 0; j < d; j++) mag[j] = fabsf(g[j]);
    for (int64_t t = 1; t < T; t++)
        for (int64_t j = 0; j < d; j++) mag[j] += fabsf(g[t * d + j]);
    int64_t n = 0;
    if (by_threshold) {
        for (int64_t j = 0; j < d; j++) {
            active[n] = (int32_t)j;
            n += mag[j] > threshold;
        }
        return n;
    }
    if (k >= d) {
        for (int64_t j = 0; j < d; j++) active[j] = (int32_t)j;
        return d;
    }
    if (k <= 0) return 0;
    // The k-th largest key, 11 + 11 + 10 bits at a time.
    int64_t need = k;
    const uint32_t b1 = select_bucket(mag, d, 21, 11, 0, &need);
    const uint32_t b2 = select_bucket(mag, d, 10, 11, b1, &need);
    const uint32_t b3 = select_bucket(mag, d, 0, 10, (b1 << 11) | b2, &need);
    const uint32_t kth = (b1 << 21) | (b2 << 10) | b3;
    // `need` of the neurons equal to the k-th largest are kept: the lowest indices. Without branches: about
    // half the neurons are kept, in an order no predictor learns (with a branch here the choice took
    // 9.7 µs per call on SmolLM2's 1536 neurons at k = 768, without 6.4).
    int64_t equal = need;
    for (int64_t j = 0; j < d; j++) {
        const uint32_t u = key_of(mag[j]);
        const int64_t tie = (u == kth) & (equal > 0);
        equal -= tie;
        active[n] = (int32_t)j;
        n += (u > kth) | tie;
    }
    return n;
}

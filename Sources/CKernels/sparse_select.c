#include <math.h>
#include <string.h>
#include "ckernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

static int64_t select_scalar(const float *g, int64_t T, int64_t d, int64_t k, float threshold, int by_threshold,
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

#if defined(__x86_64__)
#pragma clang attribute push (__attribute__((target("avx2,avx512f,avx512bw,avx512vl,popcnt"))), apply_to = function)

// The same choice on AVX-512, 16 neurons per vector: the k-th largest key by a binary search over its 31
// bits (each step counts the keys at or above a candidate, one compare per vector), then one pass that
// compresses the kept indices into the list. It lists exactly the neurons the radix select lists: the
// keys are compared as the same integers and ties go the same way. 5.4 → 1.45 µs per call on SmolLM2's
// 1536 neurons at k = 768.

static inline __mmask16 tail_mask(int64_t j, int64_t d) {
    return d - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - j)) - 1);
}

// How many of the d keys are >= v (unsigned).
static inline int64_t count_at_least(const uint32_t *u, int64_t d, uint32_t v) {
    const __m512i vv = _mm512_set1_epi32((int)v), one = _mm512_set1_epi32(1);
    __m512i cnt = _mm512_setzero_si512();
    int64_t j = 0;
    for (; j + 16 <= d; j += 16)
        cnt = _mm512_mask_add_epi32(cnt, _mm512_cmpge_epu32_mask(_mm512_loadu_si512((const void *)(u + j)), vv), cnt, one);
    if (j < d) {
        const __mmask16 t = tail_mask(j, d);
        cnt = _mm512_mask_add_epi32(cnt, _mm512_mask_cmpge_epu32_mask(t, _mm512_maskz_loadu_epi32(t, u + j), vv), cnt, one);
    }
    return _mm512_reduce_add_epi32(cnt);
}

// Appends the lanes of `idx` set in `keep` to the list at n; returns the new n.
static inline int64_t append(int32_t *active, int64_t n, __m512i idx, __mmask16 keep) {
    const int c = _mm_popcnt_u32(keep);
    _mm512_mask_storeu_epi32(active + n, (__mmask16)((1u << c) - 1), _mm512_maskz_compress_epi32(keep, idx));
    return n + c;
}

static int64_t select_avx512(const float *g, int64_t T, int64_t d, int64_t k, float threshold, int by_threshold,
                             float *mag, int32_t *active) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
    for (int64_t j = 0; j < d; j += 16) {  // in row order, as the scalar sum
        const __mmask16 t = tail_mask(j, d);
        __m512 m = _mm512_castsi512_ps(_mm512_and_si512(_mm512_maskz_loadu_epi32(t, g + j), abs_mask));
        for (int64_t r = 1; r < T; r++)
            m = _mm512_add_ps(m, _mm512_castsi512_ps(_mm512_and_si512(_mm512_maskz_loadu_epi32(t, g + r * d + j), abs_mask)));
        _mm512_mask_storeu_ps(mag + j, t, m);
    }
    const __m512i step = _mm512_set1_epi32(16);
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int64_t n = 0;
    if (by_threshold) {
        const __m512 th = _mm512_set1_ps(threshold);
        for (int64_t j = 0; j < d; j += 16, idx = _mm512_add_epi32(idx, step)) {
            const __mmask16 t = tail_mask(j, d);
            n = append(active, n, idx, _mm512_mask_cmp_ps_mask(t, _mm512_maskz_loadu_ps(t, mag + j), th, _CMP_GT_OQ));
        }
        return n;
    }
    if (k >= d) {
        for (int64_t j = 0; j < d; j++) active[j] = (int32_t)j;
        return d;
    }
    if (k <= 0) return 0;
    // The k-th largest key: the largest v with at least k keys >= v, bit by bit from the top. Magnitudes
    // have a clear sign bit, so bit 31 stays 0 (and kth + 1 below does not wrap).
    const uint32_t *u = (const uint32_t *)(const void *)mag;
    uint32_t kth = 0;
    for (int bit = 30; bit >= 0; bit--) {
        const uint32_t c = kth | (1u << bit);
        if (count_at_least(u, d, c) >= k) kth = c;
    }
    // Keys above kth are all kept; of those equal to it, the `equal` lowest indices.
    int64_t equal = k - count_at_least(u, d, kth + 1);
    const __m512i kv = _mm512_set1_epi32((int)kth);
    for (int64_t j = 0; j < d; j += 16, idx = _mm512_add_epi32(idx, step)) {
        const __mmask16 t = tail_mask(j, d);
        const __m512i x = _mm512_maskz_loadu_epi32(t, u + j);
        __mmask16 keep = _mm512_mask_cmpgt_epu32_mask(t, x, kv);
        uint32_t eq = _mm512_mask_cmpeq_epu32_mask(t, x, kv);
        if (eq) {
            if (_mm_popcnt_u32(eq) <= equal) {
                keep |= (__mmask16)eq;
                equal -= _mm_popcnt_u32(eq);
            } else {
                for (; equal > 0; equal--) {  // its lowest set bits
                    keep |= (__mmask16)(eq & -eq);
                    eq &= eq - 1;
                }
            }
        }
        n = append(active, n, idx, keep);
    }
    return n;
}

#pragma clang attribute pop
#endif

int64_t ck_cats_select(const float *g, int64_t T, int64_t d, int64_t k, float threshold, int by_threshold,
                       float *mag, int32_t *active) {
#if defined(__x86_64__)
    if (ck_has_avx512()) return select_avx512(g, T, d, k, threshold, by_threshold, mag, active);
#endif
    return select_scalar(g, T, d, k, threshold, by_threshold, mag, active);
}

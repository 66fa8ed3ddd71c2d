// Grouped-query attention over the KV cache: every query head that shares one KV head, for a run of
// consecutive tokens, in one call. Keys and values are converted to floats one tile of 8 positions at
// a time and that tile is used by all the call's queries (a decode step has `group` of them, a Sirius
// verification pass `group × K`).
//
// Each query's result is a function of its own vector, its causal length, its visibility row and the
// cache alone — never of how many other queries share the call — so a token gets bit-identical
// attention whether it is decoded alone or inside a multi-token pass. The Sirius correction relies on
// that (verification logits equal decode logits).

#include "ckernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define CKA_X86 1
#else
#define CKA_X86 0
#endif

#define CKA_MAX_D 256

#if CKA_X86
#pragma clang attribute push (__attribute__((target("avx2,fma,f16c"))), apply_to = function)

#include "vexp.h"

// Prefetch the tile two ahead of rows j0 … (a prefetch past the end of the buffer is harmless: it
// never faults). Used by both kernels' tile loaders.
static inline void prefetch_tile_ahead(const void *base, int half, int64_t stride, int64_t j0, int rows, int64_t d) {
    const size_t esize = half ? 2 : 4;
    for (int r = 0; r < rows; r++) {
        const char *ahead = (const char *)base + ((size_t)(j0 + 16 + r) * stride) * esize;
        for (size_t off = 0; off < (size_t)d * esize; off += 64) _mm_prefetch(ahead + off, _MM_HINT_T0);
    }
}

// Rows j0..j0+rows of the cache (floats or halves, `stride` elements apart) as floats into tile[8][d];
// the rows past `rows` are zero.
static inline void load_tile(const void *base, int half, int64_t stride, int64_t j0, int rows, int64_t d, float *tile) {
    prefetch_tile_ahead(base, half, stride, j0, rows, d);
    for (int r = 0; r < rows; r++) {
        float *t = tile + r * d;
        if (half) {
            const uint16_t *src = (const uint16_t *)base + (j0 + r) * stride;
            for (int64_t i = 0; i < d; i += 8)
                _mm256_store_ps(t + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
        } else {
            const float *src = (const float *)base + (j0 + r) * stride;
            for (int64_t i = 0; i < d; i += 8) _mm256_store_ps(t + i, _mm256_loadu_ps(src + i));
        }
    }
    for (int r = rows; r < 8; r++) memset(tile + r * d, 0, (size_t)d * sizeof(float));
}

// The 8 dot products of one query with the 8 rows of a tile: lane r of the result is row r's.
static inline __m256 tile_dots(const float *qv, const float *tile, int64_t d) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int64_t i = 0; i < d; i += 8) {
        __m256 qs = _mm256_loadu_ps(qv + i);
        a0 = _mm256_fmadd_ps(qs, _mm256_load_ps(tile + 0 * d + i), a0);
        a1 = _mm256_fmadd_ps(qs, _mm256_load_ps(tile + 1 * d + i), a1);
        a2 = _mm256_fmadd_ps(qs, _mm256_load_ps(tile + 2 * d + i), a2);
        a3 = _mm256_fmadd_ps(qs, _mm256_load_ps(tile + 3 * d + i), a3);
        a4 = _mm256_fmadd_ps(qs, _mm256_load_ps(tile + 4 * d + i), a4);
        a5 = _mm256_fmadd_ps(qs, _mm256_load_ps(tile + 5 * d + i), a5);
        a6 = _mm256_fmadd_ps(qs, _mm256_load_ps(tile + 6 * d + i), a6);
        a7 = _mm256_fmadd_ps(qs, _mm256_load_ps(tile + 7 * d + i), a7);
    }
    // Transpose-and-add: lane r ends up holding the sum of a_r's eight lanes.
    __m256 t0 = _mm256_hadd_ps(a0, a1), t1 = _mm256_hadd_ps(a2, a3);
    __m256 t2 = _mm256_hadd_ps(a4, a5), t3 = _mm256_hadd_ps(a6, a7);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// Step 2 of both kernels: masks (causal tail of the last tile, visibility rows) and e^(s − max) per query.
static void softmax_numerators(int64_t ntok, int64_t heads, int64_t first_n, int64_t npad, const uint8_t *vis,
                               int64_t vstride, float *scores) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (int64_t i = 0; i < ntok; i++) {
        const int64_t n = first_n + i, nq = (n + 7) & ~(int64_t)7;
        const uint8_t *vrow = vis ? vis + i * vstride : NULL;
        for (int64_t h = 0; h < heads; h++) {
            float *s = scores + (i * heads + h) * npad;
            for (int64_t j = n; j < nq; j++) s[j] = -INFINITY;
            if (vrow) for (int64_t j = 0; j < n; j++) if (!vrow[j]) s[j] = -INFINITY;
            __m256 mx = ninf;
            for (int64_t j = 0; j < nq; j += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + j));
            __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
            const __m256 vmax = _mm256_set1_ps(_mm_cvtss_f32(m4));
            for (int64_t j = 0; j < nq; j += 8)
                _mm256_storeu_ps(s + j, ck_vexp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vmax)));
        }
    }
}

static void attend_gqa_avx2(const float *q, float *out, int64_t tstride, int64_t ntok, int64_t heads, int64_t d,
                            int64_t first_n, const void *k, const void *v, int half, int64_t kvstride, float scale,
                            const uint8_t *vis, int64_t vstride, float *scores) {
    _Alignas(32) float tile[8 * CKA_MAX_D];
    const int64_t nmax = first_n + ntok - 1;
    const int64_t npad = (nmax + 7) & ~(int64_t)7;
    const __m256 vscale = _mm256_set1_ps(scale);
    // 1. Scaled scores q·k_j for every query over the positions its token may see (whole tiles).
    for (int64_t j0 = 0; j0 < nmax; j0 += 8) {
        const int rows = nmax - j0 < 8 ? (int)(nmax - j0) : 8;
        load_tile(k, half, kvstride, j0, rows, d, tile);
        for (int64_t i = 0; i < ntok; i++) {
            if (first_n + i <= j0) continue;
            for (int64_t h = 0; h < heads; h++) {
                __m256 s = _mm256_mul_ps(tile_dots(q + i * tstride + h * d, tile, d), vscale);
                _mm256_storeu_ps(scores + (i * heads + h) * npad + j0, s);
            }
        }
    }
    // 2. Mask and softmax numerators.
    softmax_numerators(ntok, heads, first_n, npad, vis, vstride, scores);
    // 3. out = (Σ_j p_j v_j) / Σ_j p_j, in slices of 64 dimensions held in registers per tile. Both sums
    //    run over the positions in increasing order, and a masked position adds exactly zero, so a
    //    query's result is the same wherever its visible positions sit (the Sirius tree puts a path's
    //    tokens at other slots than plain decoding does).
    float total[ntok * heads];
    for (int64_t i = 0; i < ntok; i++)
        for (int64_t h = 0; h < heads; h++) {
            memset(out + i * tstride + h * d, 0, (size_t)d * sizeof(float));
            total[i * heads + h] = 0.0f;
        }
    for (int64_t j0 = 0; j0 < nmax; j0 += 8) {
        const int rows = nmax - j0 < 8 ? (int)(nmax - j0) : 8;
        load_tile(v, half, kvstride, j0, rows, d, tile);
        for (int64_t i = 0; i < ntok; i++) {
            const int64_t n = first_n + i;
            if (n <= j0) continue;
            const int live = n - j0 < 8 ? (int)(n - j0) : 8;
            for (int64_t h = 0; h < heads; h++) {
                const float *p = scores + (i * heads + h) * npad + j0;
                float *o = out + i * tstride + h * d;
                for (int64_t c0 = 0; c0 < d; c0 += 64) {
                    const int64_t w = d - c0 < 64 ? d - c0 : 64;
                    if (w == 64) {
                        // The usual head size: eight named accumulators so they stay in registers; the
                        // first slice also carries the running Σ p (every lane holds it).
                        float *oc = o + c0;
                        __m256 at = _mm256_set1_ps(total[i * heads + h]);
                        __m256 a0 = _mm256_loadu_ps(oc), a1 = _mm256_loadu_ps(oc + 8), a2 = _mm256_loadu_ps(oc + 16),
                               a3 = _mm256_loadu_ps(oc + 24), a4 = _mm256_loadu_ps(oc + 32), a5 = _mm256_loadu_ps(oc + 40),
                               a6 = _mm256_loadu_ps(oc + 48), a7 = _mm256_loadu_ps(oc + 56);
                        for (int r = 0; r < live; r++) {
                            const __m256 pr = _mm256_set1_ps(p[r]);
                            const float *vr = tile + r * d + c0;
                            a0 = _mm256_fmadd_ps(pr, _mm256_load_ps(vr), a0);
                            a1 = _mm256_fmadd_ps(pr, _mm256_load_ps(vr + 8), a1);
                            a2 = _mm256_fmadd_ps(pr, _mm256_load_ps(vr + 16), a2);
                            a3 = _mm256_fmadd_ps(pr, _mm256_load_ps(vr + 24), a3);
                            a4 = _mm256_fmadd_ps(pr, _mm256_load_ps(vr + 32), a4);
                            a5 = _mm256_fmadd_ps(pr, _mm256_load_ps(vr + 40), a5);
                            a6 = _mm256_fmadd_ps(pr, _mm256_load_ps(vr + 48), a6);
                            a7 = _mm256_fmadd_ps(pr, _mm256_load_ps(vr + 56), a7);
                            at = _mm256_add_ps(at, pr);
                        }
                        if (c0 == 0) total[i * heads + h] = _mm256_cvtss_f32(at);
                        _mm256_storeu_ps(oc, a0); _mm256_storeu_ps(oc + 8, a1); _mm256_storeu_ps(oc + 16, a2);
                        _mm256_storeu_ps(oc + 24, a3); _mm256_storeu_ps(oc + 32, a4); _mm256_storeu_ps(oc + 40, a5);
                        _mm256_storeu_ps(oc + 48, a6); _mm256_storeu_ps(oc + 56, a7);
                        continue;
                    }
                    if (c0 == 0) {
                        float t = total[i * heads + h];
                        for (int r = 0; r < live; r++) t += p[r];
                        total[i * heads + h] = t;
                    }
                    __m256 acc[8];
                    for (int64_t c = 0; c < w; c += 8) acc[c / 8] = _mm256_loadu_ps(o + c0 + c);
                    for (int r = 0; r < live; r++) {
                        const __m256 pr = _mm256_set1_ps(p[r]);
                        const float *vr = tile + r * d + c0;
                        for (int64_t c = 0; c < w; c += 8) acc[c / 8] = _mm256_fmadd_ps(pr, _mm256_load_ps(vr + c), acc[c / 8]);
                    }
                    for (int64_t c = 0; c < w; c += 8) _mm256_storeu_ps(o + c0 + c, acc[c / 8]);
                }
            }
        }
    }
    for (int64_t i = 0; i < ntok; i++)
        for (int64_t h = 0; h < heads; h++) {
            float *o = out + i * tstride + h * d;
            const __m256 f = _mm256_set1_ps(1.0f / total[i * heads + h]);
            for (int64_t c = 0; c < d; c += 8) _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_loadu_ps(o + c), f));
        }
}

#pragma clang attribute pop

#pragma clang attribute push (__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl"))), apply_to = function)

// The AVX-512 kernel (where the CPU has it): the same three steps with 16-float vectors, for head sizes
// that are a multiple of 16. Its additions are grouped differently from the AVX2 kernel's, so a process
// uses one of them throughout (chosen once per CPU), which keeps decode and verification bit-identical.
static inline void load_tile16(const void *base, int half, int64_t stride, int64_t j0, int rows, int64_t d, float *tile) {
    prefetch_tile_ahead(base, half, stride, j0, rows, d);
    for (int r = 0; r < rows; r++) {
        float *t = tile + r * d;
        if (half) {
            const uint16_t *src = (const uint16_t *)base + (j0 + r) * stride;
            for (int64_t i = 0; i < d; i += 16)
                _mm512_store_ps(t + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
        } else {
            const float *src = (const float *)base + (j0 + r) * stride;
            for (int64_t i = 0; i < d; i += 16) _mm512_store_ps(t + i, _mm512_loadu_ps(src + i));
        }
    }
    for (int r = rows; r < 8; r++) memset(tile + r * d, 0, (size_t)d * sizeof(float));
}

/// The tile of positions j0 … j0+7 as floats: read in place from an f32 cache whose positions are
/// contiguous rows of d floats (64-byte aligned: the cache's allocation and d a multiple of 16), else
/// converted / copied (and zero-padded) into `tile`. The same values either way.
static inline const float *tile16(const void *base, int half, int64_t stride, int64_t j0, int rows, int64_t d, float *tile) {
    if (!half && rows == 8 && stride == d) {
        prefetch_tile_ahead(base, half, stride, j0, rows, d);
        return (const float *)base + j0 * d;
    }
    load_tile16(base, half, stride, j0, rows, d, tile);
    return tile;
}

static inline __m256 tile_dots16(const float *qv, const float *tile, int64_t d) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int64_t i = 0; i < d; i += 16) {
        __m512 qs = _mm512_loadu_ps(qv + i);
        a0 = _mm512_fmadd_ps(qs, _mm512_load_ps(tile + 0 * d + i), a0);
        a1 = _mm512_fmadd_ps(qs, _mm512_load_ps(tile + 1 * d + i), a1);
        a2 = _mm512_fmadd_ps(qs, _mm512_load_ps(tile + 2 * d + i), a2);
        a3 = _mm512_fmadd_ps(qs, _mm512_load_ps(tile + 3 * d + i), a3);
        a4 = _mm512_fmadd_ps(qs, _mm512_load_ps(tile + 4 * d + i), a4);
        a5 = _mm512_fmadd_ps(qs, _mm512_load_ps(tile + 5 * d + i), a5);
        a6 = _mm512_fmadd_ps(qs, _mm512_load_ps(tile + 6 * d + i), a6);
        a7 = _mm512_fmadd_ps(qs, _mm512_load_ps(tile + 7 * d + i), a7);
    }
#define CKA_HALVES(a) _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)))
    __m256 b0 = CKA_HALVES(a0), b1 = CKA_HALVES(a1), b2 = CKA_HALVES(a2), b3 = CKA_HALVES(a3);
    __m256 b4 = CKA_HALVES(a4), b5 = CKA_HALVES(a5), b6 = CKA_HALVES(a6), b7 = CKA_HALVES(a7);
#undef CKA_HALVES
    __m256 t0 = _mm256_hadd_ps(b0, b1), t1 = _mm256_hadd_ps(b2, b3);
    __m256 t2 = _mm256_hadd_ps(b4, b5), t3 = _mm256_hadd_ps(b6, b7);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

static void attend_gqa_avx512(const float *q, float *out, int64_t tstride, int64_t ntok, int64_t heads, int64_t d,
                              int64_t first_n, const void *k, const void *v, int half, int64_t kvstride, float scale,
                              const uint8_t *vis, int64_t vstride, float *scores) {
    _Alignas(64) float tile[8 * CKA_MAX_D];
    const int64_t nmax = first_n + ntok - 1;
    const int64_t npad = (nmax + 7) & ~(int64_t)7;
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int64_t j0 = 0; j0 < nmax; j0 += 8) {
        const int rows = nmax - j0 < 8 ? (int)(nmax - j0) : 8;
        const float *kt = tile16(k, half, kvstride, j0, rows, d, tile);
        for (int64_t i = 0; i < ntok; i++) {
            if (first_n + i <= j0) continue;
            for (int64_t h = 0; h < heads; h++)
                _mm256_storeu_ps(scores + (i * heads + h) * npad + j0, _mm256_mul_ps(tile_dots16(q + i * tstride + h * d, kt, d), vscale));
        }
    }
    softmax_numerators(ntok, heads, first_n, npad, vis, vstride, scores);
    float total[ntok * heads];
    for (int64_t i = 0; i < ntok; i++)
        for (int64_t h = 0; h < heads; h++) {
            memset(out + i * tstride + h * d, 0, (size_t)d * sizeof(float));
            total[i * heads + h] = 0.0f;
        }
    for (int64_t j0 = 0; j0 < nmax; j0 += 8) {
        const int rows = nmax - j0 < 8 ? (int)(nmax - j0) : 8;
        const float *vt = tile16(v, half, kvstride, j0, rows, d, tile);
        for (int64_t i = 0; i < ntok; i++) {
            const int64_t n = first_n + i;
            if (n <= j0) continue;
            const int live = n - j0 < 8 ? (int)(n - j0) : 8;
            for (int64_t h = 0; h < heads; h++) {
                const float *p = scores + (i * heads + h) * npad + j0;
                float *o = out + i * tstride + h * d;
                // Slices of 64 dimensions in four registers; the first also carries the running Σ p.
                for (int64_t c0 = 0; c0 < d; c0 += 64) {
                    const int64_t w = d - c0 < 64 ? d - c0 : 64;
                    float *oc = o + c0;
                    __m256 at = _mm256_set1_ps(total[i * heads + h]);
                    __m512 a0 = _mm512_loadu_ps(oc), a1 = w > 16 ? _mm512_loadu_ps(oc + 16) : _mm512_setzero_ps();
                    __m512 a2 = w > 32 ? _mm512_loadu_ps(oc + 32) : _mm512_setzero_ps(), a3 = w > 48 ? _mm512_loadu_ps(oc + 48) : _mm512_setzero_ps();
                    for (int r = 0; r < live; r++) {
                        const __m512 pr = _mm512_set1_ps(p[r]);
                        const float *vr = vt + r * d + c0;
                        a0 = _mm512_fmadd_ps(pr, _mm512_load_ps(vr), a0);
                        if (w > 16) a1 = _mm512_fmadd_ps(pr, _mm512_load_ps(vr + 16), a1);
                        if (w > 32) a2 = _mm512_fmadd_ps(pr, _mm512_load_ps(vr + 32), a2);
                        if (w > 48) a3 = _mm512_fmadd_ps(pr, _mm512_load_ps(vr + 48), a3);
                        at = _mm256_add_ps(at, _mm512_castps512_ps256(pr));
                    }
                    if (c0 == 0) total[i * heads + h] = _mm256_cvtss_f32(at);
                    _mm512_storeu_ps(oc, a0);
                    if (w > 16) _mm512_storeu_ps(oc + 16, a1);
                    if (w > 32) _mm512_storeu_ps(oc + 32, a2);
                    if (w > 48) _mm512_storeu_ps(oc + 48, a3);
                }
            }
        }
    }
    for (int64_t i = 0; i < ntok; i++)
        for (int64_t h = 0; h < heads; h++) {
            float *o = out + i * tstride + h * d;
            const __m512 f = _mm512_set1_ps(1.0f / total[i * heads + h]);
            for (int64_t c = 0; c < d; c += 16) _mm512_storeu_ps(o + c, _mm512_mul_ps(_mm512_loadu_ps(o + c), f));
        }
}

#pragma clang attribute pop

#endif

void ck_attend_gqa(const float *q, float *out, int64_t tstride, int64_t ntok, int64_t heads, int64_t d,
                   int64_t first_n, const void *k, const void *v, int half, int64_t kvstride, float scale,
                   const uint8_t *vis, int64_t vstride, float *scores) {
#if CKA_X86
    if (d % 16 == 0 && d <= CKA_MAX_D && ck_has_avx512()) {
        attend_gqa_avx512(q, out, tstride, ntok, heads, d, first_n, k, v, half, kvstride, scale, vis, vstride, scores);
        return;
    }
    if (ck_has_avx2() && d % 8 == 0 && d <= CKA_MAX_D) {
        attend_gqa_avx2(q, out, tstride, ntok, heads, d, first_n, k, v, half, kvstride, scale, vis, vstride, scores);
        return;
    }
#endif
    // Portable path: one query at a time with the scalar-friendly routine.
    for (int64_t i = 0; i < ntok; i++)
        for (int64_t h = 0; h < heads; h++) {
            const float *qv = q + i * tstride + h * d;
            float *o = out + i * tstride + h * d;
            const uint8_t *vrow = vis ? vis + i * vstride : NULL;
            if (half) ck_attend_f16(qv, (const uint16_t *)k, (const uint16_t *)v, kvstride, first_n + i, d, scale, vrow, scores, o);
            else ck_attend(qv, (const float *)k, (const float *)v, kvstride, first_n + i, d, scale, vrow, scores, o);
        }
}

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

// The driver of both kernels (AVX2 and AVX-512 differ only in the tile helpers they pass). Three steps:
// 1. the scaled scores q·k_j of every query over the positions its token may see (whole tiles of 8);
// 2. masks and softmax numerators; 3. out = (Σ_j p_j v_j) / Σ_j p_j, both sums over the positions in
// increasing order — a masked position adds exactly zero, so a query's result is the same wherever its
// visible positions sit (the Sirius tree puts a path's tokens at other slots than plain decoding does).
// Positions below `split` are read from k0 / v0 (a prefix every job shares: each of its tiles is read
// once for all jobs), the others from each job's own k / v. Per query, the operations and their order
// are exactly those of the query alone, so sharing changes no bit.
#define ATTEND_JOBS(NAME, ALIGN, TILE, SCORES, VALUES, FINISH, VEC, SET1)                                      \
static void NAME(const ck_attn_job *jobs, int64_t njobs, int64_t tstride, int64_t heads, int64_t d,           \
                 const void *k0, const void *v0, int64_t split, int half, int64_t kvstride, float scale) {     \
    ALIGN float tile[8 * CKA_MAX_D];                                                                          \
    const VEC vscale = SET1(scale);                                                                           \
    int64_t shared_end = 0, ntotal = 0;                                                                       \
    for (int64_t b = 0; b < njobs; b++) {                                                                     \
        const int64_t nmax = jobs[b].first_n + jobs[b].ntok - 1, e = nmax < split ? nmax : split;            \
        if (e > shared_end) shared_end = e;                                                                   \
        ntotal += jobs[b].ntok * heads;                                                                       \
    }                                                                                                         \
    for (int64_t j0 = 0; j0 < shared_end; j0 += 8) {                                                          \
        const int rows = shared_end - j0 < 8 ? (int)(shared_end - j0) : 8;                                   \
        const float *kt = TILE(k0, half, kvstride, j0, rows, d, tile);                                        \
        for (int64_t b = 0; b < njobs; b++) {                                                                 \
            const int64_t npad = (jobs[b].first_n + jobs[b].ntok - 1 + 7) & ~(int64_t)7;                     \
            SCORES(&jobs[b], tstride, heads, d, npad, j0, kt, vscale);                                        \
        }                                                                                                     \
    }                                                                                                         \
    for (int64_t b = 0; b < njobs; b++) {                                                                     \
        const ck_attn_job *jb = &jobs[b];                                                                     \
        const int64_t nmax = jb->first_n + jb->ntok - 1, npad = (nmax + 7) & ~(int64_t)7;                    \
        for (int64_t j0 = split; j0 < nmax; j0 += 8) {                                                        \
            const int rows = nmax - j0 < 8 ? (int)(nmax - j0) : 8;                                            \
            SCORES(jb, tstride, heads, d, npad, j0, TILE(jb->k, half, kvstride, j0, rows, d, tile), vscale); \
        }                                                                                                     \
        softmax_numerators(jb->ntok, heads, jb->first_n, npad, jb->vis, jb->vstride, jb->scores);             \
    }                                                                                                         \
    float total[ntotal];                                                                                      \
    int64_t first[njobs];                                                                                     \
    for (int64_t b = 0, off = 0; b < njobs; b++) {                                                            \
        first[b] = off;                                                                                       \
        for (int64_t i = 0; i < jobs[b].ntok; i++)                                                            \
            for (int64_t h = 0; h < heads; h++) {                                                             \
                memset(jobs[b].out + i * tstride + h * d, 0, (size_t)d * sizeof(float));                      \
                total[off++] = 0.0f;                                                                          \
            }                                                                                                 \
    }                                                                                                         \
    for (int64_t j0 = 0; j0 < shared_end; j0 += 8) {                                                          \
        const int rows = shared_end - j0 < 8 ? (int)(shared_end - j0) : 8;                                   \
        const float *vt = TILE(v0, half, kvstride, j0, rows, d, tile);                                        \
        for (int64_t b = 0; b < njobs; b++) {                                                                 \
            const int64_t npad = (jobs[b].first_n + jobs[b].ntok - 1 + 7) & ~(int64_t)7;                     \
            VALUES(&jobs[b], tstride, heads, d, npad, j0, vt, total + first[b]);                             \
        }                                                                                                     \
    }                                                                                                         \
    for (int64_t b = 0; b < njobs; b++) {                                                                     \
        const ck_attn_job *jb = &jobs[b];                                                                     \
        const int64_t nmax = jb->first_n + jb->ntok - 1, npad = (nmax + 7) & ~(int64_t)7;                    \
        for (int64_t j0 = split; j0 < nmax; j0 += 8) {                                                        \
            const int rows = nmax - j0 < 8 ? (int)(nmax - j0) : 8;                                            \
            VALUES(jb, tstride, heads, d, npad, j0, TILE(jb->v, half, kvstride, j0, rows, d, tile), total + first[b]); \
        }                                                                                                     \
        FINISH(jb, tstride, heads, d, total + first[b]);                                                      \
    }                                                                                                         \
}

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

// One tile's work for one job (both kernels): the scaled scores of every query that sees position j0, and
// the weighted values added to every query that sees it. Masked positions add exactly zero later.
static inline void scores_tile_avx2(const ck_attn_job *jb, int64_t tstride, int64_t heads, int64_t d, int64_t npad,
                                    int64_t j0, const float *kt, __m256 vscale) {
    for (int64_t i = 0; i < jb->ntok; i++) {
        if (jb->first_n + i <= j0) continue;
        for (int64_t h = 0; h < heads; h++)
            _mm256_storeu_ps(jb->scores + (i * heads + h) * npad + j0, _mm256_mul_ps(tile_dots(jb->q + i * tstride + h * d, kt, d), vscale));
    }
}

static inline void values_tile_avx2(const ck_attn_job *jb, int64_t tstride, int64_t heads, int64_t d, int64_t npad,
                                    int64_t j0, const float *vt, float *total) {
    for (int64_t i = 0; i < jb->ntok; i++) {
        const int64_t n = jb->first_n + i;
        if (n <= j0) continue;
        const int live = n - j0 < 8 ? (int)(n - j0) : 8;
        for (int64_t h = 0; h < heads; h++) {
            const float *p = jb->scores + (i * heads + h) * npad + j0;
            float *o = jb->out + i * tstride + h * d;
            for (int64_t c0 = 0; c0 < d; c0 += 64) {
                const int64_t w = d - c0 < 64 ? d - c0 : 64;
                if (w == 64) {
                    // The usual head size: eight named accumulators so they stay in registers; the first
                    // slice also carries the running Σ p (every lane holds it).
                    float *oc = o + c0;
                    __m256 at = _mm256_set1_ps(total[i * heads + h]);
                    __m256 a0 = _mm256_loadu_ps(oc), a1 = _mm256_loadu_ps(oc + 8), a2 = _mm256_loadu_ps(oc + 16),
                           a3 = _mm256_loadu_ps(oc + 24), a4 = _mm256_loadu_ps(oc + 32), a5 = _mm256_loadu_ps(oc + 40),
                           a6 = _mm256_loadu_ps(oc + 48), a7 = _mm256_loadu_ps(oc + 56);
                    for (int r = 0; r < live; r++) {
                        const __m256 pr = _mm256_set1_ps(p[r]);
                        const float *vr = vt + r * d + c0;
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
                    const float *vr = vt + r * d + c0;
                    for (int64_t c = 0; c < w; c += 8) acc[c / 8] = _mm256_fmadd_ps(pr, _mm256_load_ps(vr + c), acc[c / 8]);
                }
                for (int64_t c = 0; c < w; c += 8) _mm256_storeu_ps(o + c0 + c, acc[c / 8]);
            }
        }
    }
}

static inline const float *tile_avx2(const void *base, int half, int64_t stride, int64_t j0, int rows, int64_t d, float *tile) {
    load_tile(base, half, stride, j0, rows, d, tile);
    return tile;
}

static inline void finish_avx2(const ck_attn_job *jb, int64_t tstride, int64_t heads, int64_t d, const float *total) {
    for (int64_t i = 0; i < jb->ntok; i++)
        for (int64_t h = 0; h < heads; h++) {
            float *o = jb->out + i * tstride + h * d;
            const __m256 f = _mm256_set1_ps(1.0f / total[i * heads + h]);
            for (int64_t c = 0; c < d; c += 8) _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_loadu_ps(o + c), f));
        }
}

ATTEND_JOBS(attend_jobs_avx2, _Alignas(32), tile_avx2, scores_tile_avx2, values_tile_avx2, finish_avx2, __m256, _mm256_set1_ps)

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

// _mm256_hadd_ps on both 256-bit halves at once: per 128-bit lane [x0 + x1, x2 + x3, y0 + y1, y2 + y3].
static inline __m512 hadd_halves(__m512 x, __m512 y) {
    return _mm512_add_ps(_mm512_shuffle_ps(x, y, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
}

// tile_dots16 of two queries at once: the same products and, per query, the same tree of additions
// (query a's eight sums in the low half of the result, b's in the high half), with the reduction's
// shuffles working on both queries together — the reduction costs about as many instructions as the
// products, and this halves it.
static inline __m512 tile_dots16_two(const float *qa, const float *qb, const float *tile, int64_t d) {
    __m512 a[8], b[8];
#pragma clang loop unroll(full)
    for (int r = 0; r < 8; r++) { a[r] = _mm512_setzero_ps(); b[r] = _mm512_setzero_ps(); }
    for (int64_t i = 0; i < d; i += 16) {
        const __m512 qsa = _mm512_loadu_ps(qa + i), qsb = _mm512_loadu_ps(qb + i);
#pragma clang loop unroll(full)
        for (int r = 0; r < 8; r++) {
            // Unaligned load: a tile read in place need not be 64-byte aligned (the tests' caches are not).
            const __m512 t = _mm512_loadu_ps(tile + r * d + i);
            a[r] = _mm512_fmadd_ps(qsa, t, a[r]);
            b[r] = _mm512_fmadd_ps(qsb, t, b[r]);
        }
    }
    // Per query and row: low 256 bits + high 256 bits (tile_dots16's CKA_HALVES), a's in the low half.
    __m512 e[8];
#pragma clang loop unroll(full)
    for (int r = 0; r < 8; r++) e[r] = _mm512_add_ps(_mm512_shuffle_f32x4(a[r], b[r], 0x44), _mm512_shuffle_f32x4(a[r], b[r], 0xEE));
    const __m512 t0 = hadd_halves(e[0], e[1]), t1 = hadd_halves(e[2], e[3]), t2 = hadd_halves(e[4], e[5]), t3 = hadd_halves(e[6], e[7]);
    const __m512 u0 = hadd_halves(t0, t1), u1 = hadd_halves(t2, t3);
    // tile_dots16's last step per half: [u0.lo128, u1.lo128] + [u0.hi128, u1.hi128].
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    const __m512i hi = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    return _mm512_add_ps(_mm512_permutex2var_ps(u0, lo, u1), _mm512_permutex2var_ps(u0, hi, u1));
}

// Queries in pairs through tile_dots16_two (a lone last one through tile_dots16): each query's scores
// are the same bits either way.
static inline void scores_tile_avx512(const ck_attn_job *jb, int64_t tstride, int64_t heads, int64_t d, int64_t npad,
                                      int64_t j0, const float *kt, __m256 vscale) {
    const __m512 vscale2 = _mm512_shuffle_f32x4(_mm512_castps256_ps512(vscale), _mm512_castps256_ps512(vscale), 0x44);
    const float *held = NULL;
    float *heldOut = NULL;
    for (int64_t i = 0; i < jb->ntok; i++) {
        if (jb->first_n + i <= j0) continue;
        for (int64_t h = 0; h < heads; h++) {
            const float *q = jb->q + i * tstride + h * d;
            float *o = jb->scores + (i * heads + h) * npad + j0;
            if (!held) { held = q; heldOut = o; continue; }
            const __m512 s = _mm512_mul_ps(tile_dots16_two(held, q, kt, d), vscale2);
            _mm256_storeu_ps(heldOut, _mm512_castps512_ps256(s));
            _mm256_storeu_ps(o, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
            held = NULL;
        }
    }
    if (held) _mm256_storeu_ps(heldOut, _mm256_mul_ps(tile_dots16(held, kt, d), vscale));
}

static inline void values_tile_avx512(const ck_attn_job *jb, int64_t tstride, int64_t heads, int64_t d, int64_t npad,
                                      int64_t j0, const float *vt, float *total) {
    for (int64_t i = 0; i < jb->ntok; i++) {
        const int64_t n = jb->first_n + i;
        if (n <= j0) continue;
        const int live = n - j0 < 8 ? (int)(n - j0) : 8;
        for (int64_t h = 0; h < heads; h++) {
            const float *p = jb->scores + (i * heads + h) * npad + j0;
            float *o = jb->out + i * tstride + h * d;
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

static inline void finish_avx512(const ck_attn_job *jb, int64_t tstride, int64_t heads, int64_t d, const float *total) {
    for (int64_t i = 0; i < jb->ntok; i++)
        for (int64_t h = 0; h < heads; h++) {
            float *o = jb->out + i * tstride + h * d;
            const __m512 f = _mm512_set1_ps(1.0f / total[i * heads + h]);
            for (int64_t c = 0; c < d; c += 16) _mm512_storeu_ps(o + c, _mm512_mul_ps(_mm512_loadu_ps(o + c), f));
        }
}

ATTEND_JOBS(attend_jobs_avx512, _Alignas(64), tile16, scores_tile_avx512, values_tile_avx512, finish_avx512, __m256, _mm256_set1_ps)

#pragma clang attribute pop

#endif

void ck_attend_gqa_jobs(const ck_attn_job *jobs, int64_t njobs, int64_t tstride, int64_t heads, int64_t d,
                        const void *k0, const void *v0, int64_t split, int half, int64_t kvstride, float scale) {
#if CKA_X86
    if (d % 16 == 0 && d <= CKA_MAX_D && ck_has_avx512()) {
        attend_jobs_avx512(jobs, njobs, tstride, heads, d, k0, v0, split, half, kvstride, scale);
        return;
    }
    if (ck_has_avx2() && d % 8 == 0 && d <= CKA_MAX_D) {
        attend_jobs_avx2(jobs, njobs, tstride, heads, d, k0, v0, split, half, kvstride, scale);
        return;
    }
#endif
    // Portable path: one query at a time with the scalar-friendly routine.
    for (int64_t b = 0; b < njobs; b++) {
        const ck_attn_job *jb = &jobs[b];
        for (int64_t i = 0; i < jb->ntok; i++)
            for (int64_t h = 0; h < heads; h++) {
                const float *qv = jb->q + i * tstride + h * d;
                float *o = jb->out + i * tstride + h * d;
                const uint8_t *vrow = jb->vis ? jb->vis + i * jb->vstride : NULL;
                ck_attend_split(qv, k0, v0, split, jb->k, jb->v, half, kvstride, jb->first_n + i, d, scale, vrow, jb->scores, o);
            }
    }
}

void ck_attend_gqa(const float *q, float *out, int64_t tstride, int64_t ntok, int64_t heads, int64_t d,
                   int64_t first_n, const void *k, const void *v, int half, int64_t kvstride, float scale,
                   const uint8_t *vis, int64_t vstride, float *scores) {
    const ck_attn_job job = {q, out, ntok, first_n, k, v, vis, vstride, scores};
    ck_attend_gqa_jobs(&job, 1, tstride, heads, d, NULL, NULL, 0, half, kvstride, scale);
}

// Quantised dot-product kernels for the Sirius engine.
// Block layouts: formats.md §3. Each kernel has a portable scalar version; on x86-64 CPUs with
// AVX2/FMA/F16C, the hot ones (F32, F16, Q4_0, Q4_1, Q8_0) also have an intrinsics version chosen at
// run time, so the package needs no compiler flags and still runs on older CPUs.
#include "ckernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define CK_X86 1
#include <immintrin.h>
#else
#define CK_X86 0
#endif

// ---------------------------------------------------------------------------------------------
// fp16 / bf16 conversion

float ck_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {                                   // subnormal: renormalise
            int e = -1;
            do { e++; man <<= 1; } while ((man & 0x400) == 0);
            man &= 0x3FF;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (man << 13);  // inf / nan
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t ck_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7FFFFFFF;
    if (absx >= 0x7F800000u) {                          // inf or nan
        return (uint16_t)(sign | 0x7C00 | (absx > 0x7F800000u ? 0x200 : 0));
    }
    if (absx >= 0x477FF000u) return (uint16_t)(sign | 0x7C00);   // overflow → inf
    if (absx < 0x38800000u) {                            // subnormal or zero in half
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7FFFFF) | 0x800000;
        uint32_t shift = 126 - e;                        // value = m·2^(e−150); half unit = 2^−24
        uint32_t half = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((absx - 0x38000000u) >> 13);
    uint32_t rem = absx & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static inline float bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return ck_f16_to_f32(h);
}

// ---------------------------------------------------------------------------------------------
// Dispatch state

// The test switches (force scalar, hide AVX-512) belong to the calling thread, and `ck_pool_run` hands
// the caller's to its helpers for the task: a test that switches never changes the kernels of another
// test running at the same time (which may be comparing bits).
static _Thread_local int g_force_scalar = 0;
static int g_avx2 = -1;

#if CK_X86
// AVX2, FMA and F16C, detected once (the test switches aside).
static int detect_avx2(void) {
    if (g_avx2 < 0) {
        __builtin_cpu_init();
        g_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    }
    return g_avx2;
}
#endif

int ck_has_avx2(void) {
#if CK_X86
    return detect_avx2() && !g_force_scalar;
#else
    return 0;
#endif
}

void ck_force_scalar(int on) { g_force_scalar = on; }

// Wider instruction sets, detected once. `ck_limit_avx512` (tests) hides AVX-512 so the AVX2 and
// AVX-VNNI kernels a CPU without it would use run here too; every dispatch goes through these two.
static int g_avx512 = -1, g_avx512vnni = 0, g_avxvnni = 0;
static _Thread_local int g_avx512_limited = 0;
void ck_limit_avx512(int on) { g_avx512_limited = on; }

int ck_selection_get(void) { return (g_force_scalar ? 1 : 0) | (g_avx512_limited ? 2 : 0); }
void ck_selection_set(int bits) { g_force_scalar = bits & 1; g_avx512_limited = (bits >> 1) & 1; }

static void detect_wide(void) {
#if CK_X86
    if (g_avx512 < 0) {
        __builtin_cpu_init();
        g_avx512vnni = __builtin_cpu_supports("avx512vnni");
        g_avxvnni = __builtin_cpu_supports("avxvnni");
        g_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    }
#else
    g_avx512 = 0;
#endif
}

// AVX-512 F/BW/VL on top of AVX2 (attention, the sparse down accumulation).
int ck_has_avx512(void) {
    detect_wide();
    return ck_has_avx2() && g_avx512 && !g_avx512_limited;
}

int ck_cpu_level(void) {
#if CK_X86
    detect_wide();
    return detect_avx2() ? (g_avx512 ? 2 : 1) : 0;
#else
    return 0;
#endif
}

// VNNI level for the multi-token kernels (on top of AVX2): 2 = AVX-512 VNNI, 1 = AVX-VNNI, 0 = none.
static int vnni_level(void) {
    if (ck_has_avx512() && g_avx512vnni) return 2;
    return ck_has_avx2() && g_avxvnni ? 1 : 0;
}

int ck_type_supported(int type) {
    switch (type) {
    case CK_F32: case CK_F16: case CK_BF16: case CK_Q4_0: case CK_Q4_1: case CK_Q5_0: case CK_Q8_0: case CK_Q4_K: case CK_Q6_K:
        return 1;
    default:
        return 0;
    }
}

static int64_t block_elems(int type) {
    switch (type) {
    case CK_Q4_0: case CK_Q4_1: case CK_Q5_0: case CK_Q8_0: return 32;
    case CK_Q4_K: case CK_Q6_K: return 256;
    default: return 1;
    }
}

static size_t block_bytes(int type) {
    switch (type) {
    case CK_F32: return 4;
    case CK_F16: case CK_BF16: return 2;
    case CK_Q4_0: return 18;
    case CK_Q4_1: return 20;
    case CK_Q5_0: return 22;
    case CK_Q8_0: return 34;
    case CK_Q4_K: return 144;
    case CK_Q6_K: return 210;
    default: return 0;
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar dequantisation of one block (the reference semantics, formats.md §3)

static void deq_q4_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = ((int)(qs[j] & 0x0F) - 8) * d;
        y[j + 16] = ((int)(qs[j] >> 4) - 8) * d;
    }
}

static void deq_q4_1(const uint8_t *b, float *y) {
    float d = rd_f16(b), m = rd_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (qs[j] & 0x0F) * d + m;
        y[j + 16] = (qs[j] >> 4) * d + m;
    }
}

static void deq_q5_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
        int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        y[j] = (lo - 16) * d;
        y[j + 16] = (hi - 16) * d;
    }
}

static void deq_q8_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = qs[j] * d;
}

static inline void q4k_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void deq_q4_k(const uint8_t *b, float *y) {
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4;
    const uint8_t *qs = b + 16;
    for (int c = 0; c < 4; c++) {
        uint8_t sc, m;
        q4k_scale_min(2 * c, scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        q4k_scale_min(2 * c + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        const uint8_t *q = qs + 32 * c;
        for (int l = 0; l < 32; l++) y[64 * c + l] = d1 * (q[l] & 0x0F) - m1;
        for (int l = 0; l < 32; l++) y[64 * c + 32 + l] = d2 * (q[l] >> 4) - m2;
    }
}

static void deq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b;
    const uint8_t *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rd_f16(b + 208);
    for (int h = 0; h < 2; h++) {
        const uint8_t *l_ = ql + 64 * h;
        const uint8_t *h_ = qh + 32 * h;
        const int8_t *s_ = sc + 8 * h;
        float *o = y + 128 * h;
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((l_[l] & 0xF) | (((h_[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((l_[l + 32] & 0xF) | (((h_[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((l_[l] >> 4) | (((h_[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((l_[l + 32] >> 4) | (((h_[l] >> 6) & 3) << 4)) - 32;
            o[l] = d * s_[is] * q1;
            o[l + 32] = d * s_[is + 2] * q2;
            o[l + 64] = d * s_[is + 4] * q3;
            o[l + 96] = d * s_[is + 6] * q4;
        }
    }
}

static void deq_block(int type, const uint8_t *b, float *y) {
    switch (type) {
    case CK_Q4_0: deq_q4_0(b, y); break;
    case CK_Q4_1: deq_q4_1(b, y); break;
    case CK_Q5_0: deq_q5_0(b, y); break;
    case CK_Q8_0: deq_q8_0(b, y); break;
    case CK_Q4_K: deq_q4_k(b, y); break;
    case CK_Q6_K: deq_q6_k(b, y); break;
    case CK_F32: memcpy(y, b, 4); break;
    case CK_F16: y[0] = rd_f16(b); break;
    case CK_BF16: { uint16_t h; memcpy(&h, b, 2); y[0] = bf16_to_f32(h); } break;
    default: y[0] = 0; break;
    }
}

void ck_dequantize(int type, const void *src, float *dst, int64_t n) {
    const uint8_t *p = (const uint8_t *)src;
    int64_t be = block_elems(type);
    size_t bb = block_bytes(type);
    if (type == CK_F32) { memcpy(dst, src, (size_t)n * 4); return; }
    if (type == CK_F16) {
        for (int64_t i = 0; i < n; i++) dst[i] = rd_f16(p + 2 * i);
        return;
    }
    if (type == CK_BF16) {
        for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = bf16_to_f32(h); }
        return;
    }
    for (int64_t i = 0; i < n / be; i++) deq_block(type, p + i * bb, dst + i * be);
}


// ---------------------------------------------------------------------------------------------
// Scalar row dots

static float dot_f32_scalar(const float *a, const float *b, int64_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i]; s1 += a[i + 1] * b[i + 1]; s2 += a[i + 2] * b[i + 2]; s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static float row_dot_scalar(int type, const uint8_t *row, const float *x, int64_t n) {
    if (type == CK_F32) return dot_f32_scalar((const float *)row, x, n);
    float buf[256];
    int64_t be = block_elems(type);
    size_t bb = block_bytes(type);
    float sum = 0;
    if (be == 1) {
        for (int64_t i = 0; i < n; i += 256) {
            int64_t m = n - i < 256 ? n - i : 256;
            ck_dequantize(type, row + (size_t)i * bb, buf, m);
            sum += dot_f32_scalar(buf, x + i, m);
        }
        return sum;
    }
    for (int64_t b = 0; b < n / be; b++) {
        deq_block(type, row + (size_t)b * bb, buf);
        sum += dot_f32_scalar(buf, x + b * be, be);
    }
    return sum;
}

// "fast" products of the block types whose integers are not 4-bit-with-offset or 8-bit: Q5_0, Q4_K and
// Q6_K against activations quantised per 32 (a Q4_K sub-block, a Q6_K pair of 16-wide scale groups, a
// Q5_0 block each meet one activation block). Integer sums per scale group, then floats.
static float row_dot_q8_other_scalar(int type, const uint8_t *row, const ck_q8_block *xq, int64_t n) {
    float sum = 0;
    if (type == CK_Q5_0) {
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = row + b * 22;
            uint32_t qh;
            memcpy(&qh, blk + 2, 4);
            int32_t acc = 0;
            for (int j = 0; j < 16; j++) {
                int lo = (blk[6 + j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
                int hi = (blk[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
                acc += lo * xq[b].q[j] + hi * xq[b].q[j + 16];
            }
            const float d = rd_f16(blk);
            sum += d * xq[b].d * (float)acc + -16.0f * d * xq[b].s;
        }
        return sum;
    }
    for (int64_t sb = 0; sb < n / 256; sb++) {
        const ck_q8_block *x = xq + sb * 8;
        if (type == CK_Q4_K) {
            const uint8_t *blk = row + sb * 144;
            const float d = rd_f16(blk), dmin = rd_f16(blk + 2);
            for (int c = 0; c < 4; c++) {
                const uint8_t *q = blk + 16 + 32 * c;
                for (int half = 0; half < 2; half++) {
                    uint8_t sc, m;
                    q4k_scale_min(2 * c + half, blk + 4, &sc, &m);
                    const ck_q8_block *xb = x + 2 * c + half;
                    int32_t acc = 0;
                    for (int l = 0; l < 32; l++) acc += (half ? q[l] >> 4 : q[l] & 0x0F) * xb->q[l];
                    sum += d * (float)sc * xb->d * (float)acc - dmin * (float)m * xb->s;
                }
            }
        } else {   // Q6_K
            const uint8_t *blk = row + sb * 210;
            const float d = rd_f16(blk + 208);
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = blk + 64 * h, *qh = blk + 128 + 32 * h;
                const int8_t *sc = (const int8_t *)(blk + 192 + 8 * h);
                for (int k = 0; k < 4; k++) {
                    const ck_q8_block *xb = x + 4 * h + k;
                    int32_t acc = 0;
                    for (int g = 0; g < 2; g++) {
                        int32_t part = 0;
                        for (int l = 16 * g; l < 16 * g + 16; l++) {
                            const uint8_t lo = k & 1 ? ql[l + 32] : ql[l];
                            const int q = ((k & 2 ? lo >> 4 : lo & 0x0F) | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
                            part += q * xb->q[l];
                        }
                        acc += sc[2 * k + g] * part;
                    }
                    sum += d * xb->d * (float)acc;
                }
            }
        }
    }
    return sum;
}

static float row_dot_q8_scalar(int type, const uint8_t *row, const ck_q8_block *xq, int64_t n) {
    float sum = 0;
    int64_t nb = n / 32;
    for (int64_t b = 0; b < nb; b++) {
        const ck_q8_block *xb = xq + b;
        if (type == CK_Q8_0) {
            const uint8_t *blk = row + b * 34;
            const int8_t *q = (const int8_t *)(blk + 2);
            int32_t acc = 0;
            for (int j = 0; j < 32; j++) acc += (int32_t)q[j] * xb->q[j];
            sum += rd_f16(blk) * xb->d * (float)acc;
        } else {
            const uint8_t *blk = row + b * (type == CK_Q4_1 ? 20 : 18);
            const uint8_t *qs = blk + (type == CK_Q4_1 ? 4 : 2);
            int32_t acc = 0;
            for (int j = 0; j < 16; j++) acc += (int32_t)(qs[j] & 0x0F) * xb->q[j] + (int32_t)(qs[j] >> 4) * xb->q[j + 16];
            float d = rd_f16(blk);
            float m = type == CK_Q4_1 ? rd_f16(blk + 2) : -8.0f * d;
            sum += d * xb->d * (float)acc + m * xb->s;
        }
    }
    return sum;
}

// ---------------------------------------------------------------------------------------------
// AVX2 kernels

// Per-thread scratch of the multi-token kernels: grown when a call needs more, otherwise reused, so a
// steady stream of passes (the Sirius verification) allocates nothing. NULL if it cannot grow.
static _Thread_local void *tl_scratch;
static _Thread_local size_t tl_scratch_bytes;

static void *thread_scratch(size_t bytes) {
    if (bytes > tl_scratch_bytes) {
        free(tl_scratch);
        tl_scratch_bytes = 0;
        tl_scratch = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        if (!tl_scratch) return NULL;
        tl_scratch_bytes = bytes;
    }
    return tl_scratch;
}

/// Asks for the cache lines of one row ahead of its use.
static inline void prefetch_row(const uint8_t *row, size_t row_bytes) {
    for (size_t o = 0; o < row_bytes; o += 64) __builtin_prefetch(row + o, 0, 3);
}

#if CK_X86
#pragma clang attribute push (__attribute__((target("avx2,fma,f16c"))), apply_to = function)

// Hardware half → float (F16C), exact like the scalar conversion.
static inline float f16_hw(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    __m128 s = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, s);
    s = _mm_add_ss(s, sh);
    return _mm_cvtss_f32(s);
}

static float dot_f32_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

// Block types without a kernel of their own (Q5_0, Q4_K, Q6_K): each block dequantised exactly as the
// scalar reference does, then multiplied into four 8-float accumulators (rows of whole blocks).
static inline __m256i q5_0_unsigned(const uint8_t *blk);

// s[k] += w[i + 8k … i + 8k + 7] · x[…] for i = 0, 32, … < n: the four fma chains of the dequantising
// kernels below, one place for both (their bits must match).
static inline __attribute__((always_inline)) void fma_chains(__m256 s[4], const float *w, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 32)
        for (int k = 0; k < 4; k++) s[k] = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), s[k]);
}

static float dot_deq_avx2(int type, const uint8_t *row, const float *x, int64_t n) {
    if (type == CK_Q5_0) {
        // The same values and operations, the block decoded in registers: (q − 16) as an integer, to
        // float, times d (one rounding, as deq_q5_0), then the four fma chains.
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
        const __m256i sixteen = _mm256_set1_epi8(16);
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = row + b * 22;
            const __m256i q = _mm256_sub_epi8(q5_0_unsigned(blk), sixteen);
            const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
            const __m256 d = _mm256_set1_ps(f16_hw(blk));
            const float *xb = x + b * 32;
            s0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d), _mm256_loadu_ps(xb), s0);
            s1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d), _mm256_loadu_ps(xb + 8), s1);
            s2 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d), _mm256_loadu_ps(xb + 16), s2);
            s3 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d), _mm256_loadu_ps(xb + 24), s3);
        }
        return hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    }
    float buf[256];
    const int64_t be = block_elems(type);
    const size_t bb = block_bytes(type);
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < n / be; b++) {
        deq_block(type, row + (size_t)b * bb, buf);
        fma_chains(s, buf, x + b * be, be);
    }
    return hsum256(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])));
}

// dot_deq_avx2's operations on a row already decoded to floats (rows of whole 32-float groups): the
// same four fma chains in the same order, so a token's result is bit-identical to dot_deq_avx2's.
static float dot_deq_rows_avx2(const float *w, const float *x, int64_t n) {
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    fma_chains(s, w, x, n);
    return hsum256(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])));
}

static void axpy_avx2(float a, const float *x, float *y, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static float dot_f16_avx2(const uint8_t *row, const float *x, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 w = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * i)));
        acc = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i), acc);
    }
    float s = hsum256(acc);
    for (; i < n; i++) s += f16_hw(row + 2 * i) * x[i];
    return s;
}

static float dot_bf16_avx2(const uint8_t *row, const float *x, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + 2 * i)));
        __m256 w = _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
        acc = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i), acc);
    }
    float s = hsum256(acc);
    for (; i < n; i++) { uint16_t h; memcpy(&h, row + 2 * i, 2); s += bf16_to_f32(h) * x[i]; }
    return s;
}

// Σ_j (q_j·d + m)·x_j over the row, for Q4_0 (m = −8d) and Q4_1, in float.
static float dot_q4_f32_avx2(int type, const uint8_t *row, const float *x, int64_t n) {
    const int is1 = type == CK_Q4_1;
    const size_t bb = is1 ? 20 : 18;
    const __m128i mask = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *blk = row + b * bb;
        const float *xb = x + b * 32;
        float d = f16_hw(blk);
        float m = is1 ? f16_hw(blk + 2) : -8.0f * d;
        __m128i q = _mm_loadu_si128((const __m128i *)(blk + (is1 ? 4 : 2)));
        __m128i lo = _mm_and_si128(q, mask);
        __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
        __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8), x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
        __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), x0);
        t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), x1, t);
        t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), x2, t);
        t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), x3, t);
        __m256 sx = _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), t, acc);
        accm = _mm256_fmadd_ps(_mm256_set1_ps(m), sx, accm);
    }
    return hsum256(_mm256_add_ps(acc, accm));
}


static float dot_q8_0_f32_avx2(const uint8_t *row, const float *x, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *blk = row + b * 34;
        const float *xb = x + b * 32;
        __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 2));
        __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
        __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0)), _mm256_loadu_ps(xb));
        t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8))), _mm256_loadu_ps(xb + 8), t);
        t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1)), _mm256_loadu_ps(xb + 16), t);
        t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8))), _mm256_loadu_ps(xb + 24), t);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_hw(blk)), t, acc);
    }
    return hsum256(acc);
}

// The 32 weights of a Q4 block (low nibbles, then high nibbles) and of a Q8_0 block as four 8-float
// vectors, converted exactly as the single-token kernels above convert them.
static inline void block_q4_avx2(const uint8_t *qs, __m256 q[4]) {
    const __m128i mask = _mm_set1_epi8(0x0F), v = _mm_loadu_si128((const __m128i *)qs);
    const __m128i lo = _mm_and_si128(v, mask), hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
}

static inline void block_q8_avx2(const uint8_t *qs, __m256 q[4]) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)qs);
    const __m128i h0 = _mm256_castsi256_si128(v), h1 = _mm256_extracti128_si256(v, 1);
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(h0));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(h0, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(h1));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(h1, 8)));
}

// The two halves of the grouped kernels below (the AVX2 one and the AVX-512 one share them, so both
// run the same operations): a weight block's 32 weights as floats with its scale (and minimum, Q4);
// then one token's share of the block — the single-token kernel's products, fma order and accumulators.
static inline __attribute__((always_inline)) void group_block(int q8, int is1, const uint8_t *blk, __m256 q[4], __m256 *vd,
                                                              __m256 *vm) {
    const float d = f16_hw(blk);
    if (q8) {
        block_q8_avx2(blk + 2, q);
        *vm = _mm256_setzero_ps();
    } else {
        block_q4_avx2(blk + (is1 ? 4 : 2), q);
        *vm = _mm256_set1_ps(is1 ? f16_hw(blk + 2) : -8.0f * d);
    }
    *vd = _mm256_set1_ps(d);
}

static inline __attribute__((always_inline)) void group_token(int q8, const __m256 q[4], __m256 vd, __m256 vm, const float *xb,
                                                              const float *sb, __m256 *acc, __m256 *accm) {
    __m256 p = _mm256_mul_ps(q[0], _mm256_loadu_ps(xb));
    p = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xb + 8), p);
    p = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xb + 16), p);
    p = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xb + 24), p);
    *acc = _mm256_fmadd_ps(vd, p, *acc);
    if (!q8) *accm = _mm256_fmadd_ps(vm, _mm256_loadu_ps(sb), *accm);
}

// The multi-token version of dot_q4_f32_avx2 / dot_q8_0_f32_avx2 for up to four tokens: each weight
// block is loaded and converted once, then every token runs exactly the operations of the single-token
// kernel (same products, same fma order, same accumulators, same final sum; a Q4 token's block sums
// come from its `ss` row, formed as the single-token kernel forms them), so its result is bit-identical
// to that kernel on the token alone. Token t's activations are `xs[t]`; `ng` is a literal at every call
// site.
static inline __attribute__((always_inline)) void dot_f32_group_avx2(int type, const uint8_t *row, const float *const *xs,
                                                                      const float *const *ss, int ng, int64_t n, float *out) {
    const int q8 = type == CK_Q8_0, is1 = type == CK_Q4_1;
    const size_t bb = q8 ? 34 : is1 ? 20 : 18;
    const int64_t nb = n / 32;
    __m256 acc[4], accm[4];
    const float *xp[4], *sp[4];
    for (int t = 0; t < ng; t++) { acc[t] = _mm256_setzero_ps(); accm[t] = _mm256_setzero_ps(); xp[t] = xs[t]; sp[t] = q8 ? NULL : ss[t]; }
    for (int64_t b = 0; b < nb; b++) {
        __m256 q[4], vd, vm;
        group_block(q8, is1, row + b * bb, q, &vd, &vm);
#pragma clang loop unroll(full)
        for (int t = 0; t < ng; t++) group_token(q8, q, vd, vm, xp[t] + b * 32, q8 ? NULL : sp[t] + b * 8, &acc[t], &accm[t]);
    }
    for (int t = 0; t < ng; t++) out[t] = q8 ? hsum256(acc[t]) : hsum256(_mm256_add_ps(acc[t], accm[t]));
}

// One row against `ng` (1 ... 4) tokens through the grouped kernel, ng turned into a literal.
static inline void dot_f32_group_any_avx2(int type, const uint8_t *row, const float *const *xs, const float *const *ss,
                                          int ng, int64_t n, float *out) {
    switch (ng) {
    case 4: dot_f32_group_avx2(type, row, xs, ss, 4, n, out); break;
    case 3: dot_f32_group_avx2(type, row, xs, ss, 3, n, out); break;
    case 2: dot_f32_group_avx2(type, row, xs, ss, 2, n, out); break;
    default:
        // One token: the single-token kernel itself (the grouped loop's one accumulator chain runs at
        // half its speed; the bits are the same by construction).
        out[0] = type == CK_Q8_0 ? dot_q8_0_f32_avx2(row, xs[0], n) : dot_q4_f32_avx2(type, row, xs[0], n);
        break;
    }
}

// Q4_0 / Q4_1 / Q8_0 blocks to floats, eight at a time: the scalar kernels' values exactly (an integer
// converted, times the scale, plus the minimum: one rounding per operation, no fused multiply-add).
static void dequantize_q_avx2(int type, const uint8_t *p, float *y, int64_t n) {
    const int q8 = type == CK_Q8_0, is1 = type == CK_Q4_1;
    const size_t bb = q8 ? 34 : is1 ? 20 : 18;
    for (int64_t b = 0; b < n / 32; b++, y += 32) {
        const uint8_t *blk = p + b * bb;
        const __m256 d = _mm256_set1_ps(f16_hw(blk));
        __m256 q[4];
        if (q8) {
            block_q8_avx2(blk + 2, q);
            for (int k = 0; k < 4; k++) _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(q[k], d));
        } else if (is1) {
            block_q4_avx2(blk + 4, q);
            const __m256 m = _mm256_set1_ps(f16_hw(blk + 2));
            for (int k = 0; k < 4; k++) _mm256_storeu_ps(y + 8 * k, _mm256_add_ps(_mm256_mul_ps(q[k], d), m));
        } else {
            // (q − 8) · d, the subtraction exact in floats as in integers.
            block_q4_avx2(blk + 2, q);
            const __m256 eight = _mm256_set1_ps(8.0f);
            for (int k = 0; k < 4; k++) _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(_mm256_sub_ps(q[k], eight), d));
        }
    }
}

/// Per token and block, the lane sums (x0 + x1) + (x2 + x3) of the block's four 8-float vectors, as
/// dot_q4_f32_avx2 forms them: they do not depend on the row, so a product computes them once.
static void block_sums_avx2(const float *x, int64_t ldx, int64_t T, int64_t n, float *sxs) {
    const int64_t nb = n / 32;
    for (int64_t t = 0; t < T; t++) {
        for (int64_t b = 0; b < nb; b++) {
            const float *xb = x + t * ldx + b * 32;
            const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8), x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
            _mm256_storeu_ps(sxs + (t * nb + b) * 8, _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3)));
        }
    }
}

/// Per-token block sums for the Q4 grouped kernels (NULL for Q8_0, or when the scratch cannot grow;
/// `*ok` says which).
static float *group_sums_avx2(int type, const float *x, int64_t ldx, int64_t T, int64_t n, int *ok) {
    *ok = 1;
    if (type == CK_Q8_0) return NULL;
    float *sxs = (float *)thread_scratch((size_t)T * (size_t)(n / 32) * 8 * sizeof(float));
    if (!sxs) { *ok = 0; return NULL; }
    block_sums_avx2(x, ldx, T, n, sxs);
    return sxs;
}

/// Rows [r0, r1) × tokens [0, T) with the grouped kernels: four tokens a pass over a row, the last one
/// to three in one pass too (a group of one is exactly the single-token kernel).
static int matmul_f32_avx2(int type, const uint8_t *p, size_t row_bytes, const float *x, int64_t ldx, int64_t T,
                           float *y, int64_t ldy, int64_t n, int64_t r0, int64_t r1) {
    if (type != CK_Q4_0 && type != CK_Q4_1 && type != CK_Q8_0) return 0;
    int ok;
    const float *sxs = group_sums_avx2(type, x, ldx, T, n, &ok);
    if (!ok) return 0;
    const int64_t nb = n / 32;
    float out[4];
    // The tokens' activation and block-sum rows, 64 tokens at a time (the grouped kernel takes lists).
    const float *xs[64], *ss[64];
    for (int64_t c0 = 0; c0 < T; c0 += 64) {
        const int64_t cn = T - c0 < 64 ? T - c0 : 64;
        for (int64_t t = 0; t < cn; t++) {
            xs[t] = x + (c0 + t) * ldx;
            ss[t] = sxs ? sxs + (c0 + t) * nb * 8 : NULL;
        }
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = p + (size_t)r * row_bytes;
            for (int64_t t0 = 0; t0 < cn; t0 += 4) {
                const int ng = cn - t0 < 4 ? (int)(cn - t0) : 4;
                dot_f32_group_any_avx2(type, row, xs + t0, ss + t0, ng, n, out);
                for (int t = 0; t < ng; t++) y[(c0 + t0 + t) * ldy + r] = out[t];
            }
        }
    }
    return 1;
}

/// ck_matmul_masked's exact path on the grouped kernels: each listed row against the tokens its mask
/// names, four at a time.
static int matmul_masked_avx2(int type, const uint8_t *p, size_t row_bytes, const float *x, int64_t ldx, int64_t T, int64_t n,
                              const int32_t *rows, const uint64_t *masks, int64_t count, float *y, int64_t ldy) {
    if (type != CK_Q4_0 && type != CK_Q4_1 && type != CK_Q8_0) return 0;
    int ok;
    const float *sxs = group_sums_avx2(type, x, ldx, T, n, &ok);
    if (!ok) return 0;
    const int64_t nb = n / 32;
    float out[4];
    int tok[4];
    const float *xs[4], *ss[4] = {NULL, NULL, NULL, NULL};
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *row = p + (size_t)rows[i] * row_bytes;
        // Listed rows are scattered: fetch a few rows ahead, which the hardware prefetcher does not.
        if (i + 8 < count) prefetch_row(p + (size_t)rows[i + 8] * row_bytes, row_bytes);
        uint64_t m = masks[i];
        while (m) {
            int ng = 0;
            while (m && ng < 4) {
                const int t = __builtin_ctzll(m);
                m &= m - 1;
                tok[ng] = t;
                xs[ng] = x + t * ldx;
                if (sxs) ss[ng] = sxs + t * nb * 8;
                ng++;
            }
            dot_f32_group_any_avx2(type, row, xs, ss, ng, n, out);
            for (int k = 0; k < ng; k++) y[tok[k] * ldy + rows[i]] = out[k];
        }
    }
    return 1;
}

static inline __m256i bytes_from_nibbles(const uint8_t *qs) {
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

static float dot_q4_q8_avx2(int type, const uint8_t *row, const ck_q8_block *xq, int64_t n) {
    const int is1 = type == CK_Q4_1;
    const size_t bb = is1 ? 20 : 18;
    const int off = is1 ? 4 : 2;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float accm0 = 0, accm1 = 0;
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const uint8_t *k0 = row + b * bb, *k1 = k0 + bb;
        const ck_q8_block *x0 = xq + b, *x1 = x0 + 1;
        float d0 = f16_hw(k0), d1 = f16_hw(k1);
        __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(bytes_from_nibbles(k0 + off), _mm256_loadu_si256((const __m256i *)x0->q)), ones);
        __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(bytes_from_nibbles(k1 + off), _mm256_loadu_si256((const __m256i *)x1->q)), ones);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * x0->d), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d1 * x1->d), _mm256_cvtepi32_ps(p1), acc1);
        accm0 += (is1 ? f16_hw(k0 + 2) : -8.0f * d0) * x0->s;
        accm1 += (is1 ? f16_hw(k1 + 2) : -8.0f * d1) * x1->s;
    }
    for (; b < nb; b++) {
        const uint8_t *k0 = row + b * bb;
        const ck_q8_block *x0 = xq + b;
        float d0 = f16_hw(k0);
        __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(bytes_from_nibbles(k0 + off), _mm256_loadu_si256((const __m256i *)x0->q)), ones);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * x0->d), _mm256_cvtepi32_ps(p0), acc0);
        accm0 += (is1 ? f16_hw(k0 + 2) : -8.0f * d0) * x0->s;
    }
    return hsum256(_mm256_add_ps(acc0, acc1)) + (accm0 + accm1);
}

// Byte j of the result is 0xFF where bit j of v is set.
static inline __m256i bits_to_bytes(uint32_t v) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), spread);
    return _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
}

// row_dot_q8_other_scalar's sums with AVX2 (the integers are the same; the float sums run in lanes).
// One Q5_0 block against one activation block: the unsigned 5-bit values' integer products (as floats)
// and the block's scale (the offset −16·d goes through the activation block sum s, as Q4_0's −8·d).
// A Q5_0 block's 32 values before the offset, 0 … 31 (low nibbles, then high nibbles, each with its
// fifth bit from qh), as bytes: shared by the exact and the fast kernels.
static inline __m256i q5_0_unsigned(const uint8_t *blk) {
    uint32_t qh;
    memcpy(&qh, blk + 2, 4);
    return _mm256_or_si256(bytes_from_nibbles(blk + 6), _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(16)));
}

static inline __m256 q5_0_block_q8(const uint8_t *blk, const ck_q8_block *xb, float *d) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i q = q5_0_unsigned(blk);
    *d = f16_hw(blk);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)xb->q)), ones));
}

static float dot_q5_0_q8_avx2(const uint8_t *row, const ck_q8_block *xq, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float accm0 = 0, accm1 = 0, d0, d1;
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256 p0 = q5_0_block_q8(row + b * 22, xq + b, &d0), p1 = q5_0_block_q8(row + (b + 1) * 22, xq + b + 1, &d1);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * xq[b].d), p0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d1 * xq[b + 1].d), p1, acc1);
        accm0 += -16.0f * d0 * xq[b].s;
        accm1 += -16.0f * d1 * xq[b + 1].s;
    }
    if (b < nb) {
        const __m256 p0 = q5_0_block_q8(row + b * 22, xq + b, &d0);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * xq[b].d), p0, acc0);
        accm0 += -16.0f * d0 * xq[b].s;
    }
    return hsum256(_mm256_add_ps(acc0, acc1)) + (accm0 + accm1);
}

static float dot_q4_k_q8_avx2(const uint8_t *row, const ck_q8_block *xq, int64_t n) {
    const __m256i ones = _mm256_set1_epi16(1), low = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int64_t sb = 0; sb < n / 256; sb++) {
        const uint8_t *blk = row + sb * 144;
        const ck_q8_block *x = xq + sb * 8;
        const float d = f16_hw(blk), dmin = f16_hw(blk + 2);
        for (int c = 0; c < 4; c++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * c));
            const __m256i qv[2] = {_mm256_and_si256(q, low), _mm256_and_si256(_mm256_srli_epi16(q, 4), low)};
            for (int half = 0; half < 2; half++) {
                uint8_t sc, m;
                q4k_scale_min(2 * c + half, blk + 4, &sc, &m);
                const ck_q8_block *xb = x + 2 * c + half;
                const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(qv[half], _mm256_loadu_si256((const __m256i *)xb->q)), ones);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (float)sc * xb->d), _mm256_cvtepi32_ps(p), acc);
                accm += dmin * (float)m * xb->s;
            }
        }
    }
    return hsum256(acc) - accm;
}

static float dot_q6_k_q8_avx2(const uint8_t *row, const ck_q8_block *xq, int64_t n) {
    const __m256i low = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3), bias = _mm256_set1_epi8(32);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < n / 256; sb++) {
        const uint8_t *blk = row + sb * 210;
        const ck_q8_block *x = xq + sb * 8;
        const float d = f16_hw(blk + 208);
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32));
            const __m256i hb = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
            const int8_t *sc = (const int8_t *)(blk + 192 + 8 * h);
            const __m256i lows[4] = {_mm256_and_si256(l0, low), _mm256_and_si256(l1, low),
                                     _mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(_mm256_srli_epi16(l1, 4), low)};
            for (int k = 0; k < 4; k++) {
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * k), three);
                const __m256i q = _mm256_or_si256(lows[k], _mm256_slli_epi16(hi, 4));      // 0 … 63
                const __m256i xv = _mm256_loadu_si256((const __m256i *)x[4 * h + k].q);
                const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q, xv), _mm256_maddubs_epi16(bias, xv));
                const __m256i scales = _mm256_setr_m128i(_mm_set1_epi16(sc[2 * k]), _mm_set1_epi16(sc[2 * k + 1]));
                const __m256i p = _mm256_madd_epi16(p16, scales);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * x[4 * h + k].d), _mm256_cvtepi32_ps(p), acc);
            }
        }
    }
    return hsum256(acc);
}

static float dot_q8_0_q8_avx2(const uint8_t *row, const ck_q8_block *xq, int64_t n) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    const int64_t nb = n / 32, paired = (nb / 2) * 2;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * 34;
        const ck_q8_block *xb = xq + b;
        __m256i w = _mm256_loadu_si256((const __m256i *)(blk + 2));
        __m256i xv = _mm256_loadu_si256((const __m256i *)xb->q);
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w)), ones);
        const int k = b < paired ? (int)(b & 1) : 0;
        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(f16_hw(blk) * xb->d), _mm256_cvtepi32_ps(p), acc[k]);
    }
    return hsum256(_mm256_add_ps(acc[0], acc[1]));
}

static void quantize_q8_avx2(const float *x, int64_t n, ck_q8_block *out) {
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8), v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(signbit, v0), _mm256_andnot_ps(signbit, v1)),
                                  _mm256_max_ps(_mm256_andnot_ps(signbit, v2), _mm256_andnot_ps(signbit, v3)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, vid), _MM_ROUND_NEAREST | _MM_FROUND_NO_EXC));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, vid), _MM_ROUND_NEAREST | _MM_FROUND_NO_EXC));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, vid), _MM_ROUND_NEAREST | _MM_FROUND_NO_EXC));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, vid), _MM_ROUND_NEAREST | _MM_FROUND_NO_EXC));
        __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_hadd_epi32(s4, s4);
        s4 = _mm_hadd_epi32(s4, s4);
        // pack int32 → int16 → int8; packs interleave 128-bit lanes, fixed by the permute.
        __m256i p01 = _mm256_packs_epi32(i0, i1);
        __m256i p23 = _mm256_packs_epi32(i2, i3);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out[b].q, p);
        out[b].d = d;
        out[b].s = d * (float)_mm_cvtsi128_si32(s4);
    }
}

// Up to 4 tokens per decoded weight block. Accumulates in exactly the order of the single-token
// kernels (even and odd blocks apart), so a token's result is bit-identical
// whether it is computed alone or in a multi-token pass.
static void matmul_q8_group_avx2(int type, const uint8_t *row, const ck_q8_block *xq, int64_t nb, int ng, float *out) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][2];
    float accm[4][2];
    for (int t = 0; t < 4; t++) { acc[t][0] = acc[t][1] = _mm256_setzero_ps(); accm[t][0] = accm[t][1] = 0; }
    const int is1 = type == CK_Q4_1;
    const size_t bb = type == CK_Q8_0 ? 34 : (is1 ? 20 : 18);
    // The kernels pair blocks (b, b+1) while two remain; a trailing odd block goes to accumulator 0.
    const int64_t paired = (nb / 2) * 2;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * bb;
        float d = f16_hw(blk);
        const int k = (b < paired) ? (int)(b & 1) : 0;
        if (type == CK_Q8_0) {
            __m256i wv = _mm256_loadu_si256((const __m256i *)(blk + 2));
            __m256i aw = _mm256_sign_epi8(wv, wv);
            for (int t = 0; t < ng; t++) {
                const ck_q8_block *xb = xq + t * nb + b;
                __m256i sx = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)xb->q), wv);
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones);
                acc[t][k] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb->d), _mm256_cvtepi32_ps(p), acc[t][k]);
            }
        } else {
            float m = is1 ? f16_hw(blk + 2) : -8.0f * d;
            __m256i qq = bytes_from_nibbles(blk + (is1 ? 4 : 2));
            for (int t = 0; t < ng; t++) {
                const ck_q8_block *xb = xq + t * nb + b;
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(qq, _mm256_loadu_si256((const __m256i *)xb->q)), ones);
                acc[t][k] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb->d), _mm256_cvtepi32_ps(p), acc[t][k]);
                accm[t][k] += m * xb->s;
            }
        }
    }
    for (int t = 0; t < ng; t++) {
        out[t] = type == CK_Q8_0 ? hsum256(_mm256_add_ps(acc[t][0], acc[t][1]))
                                 : hsum256(_mm256_add_ps(acc[t][0], acc[t][1])) + (accm[t][0] + accm[t][1]);
    }
}

// y[0 ..< 32·nb) += Σ_i coef[i] · dequant(row_i) over Q8_0 rows (rows == NULL: rows 0 ..< count), two
// blocks of the output at a time held in registers while every row passes. Each element adds its rows
// in order with one fma each, so the split of the output over threads changes nothing.
static inline void acc_q8_0_block(const uint8_t *blk, float c, __m256 *a) {
    __m256 s = _mm256_set1_ps(c * f16_hw(blk));
    __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 2));
    __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    a[0] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0)), a[0]);
    a[1] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8))), a[1]);
    a[2] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1)), a[2]);
    a[3] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8))), a[3]);
}

static void acc_rows_q8_0_avx2(const uint8_t *w, size_t row_bytes, int64_t nb, const float *coef,
                               const int32_t *rows, int64_t count, float *y) {
    for (int64_t b = 0; b < nb; b += 2) {
        const int nblk = nb - b >= 2 ? 2 : 1;
        float *yb = y + b * 32;
        __m256 a[8];
        for (int k = 0; k < 4 * nblk; k++) a[k] = _mm256_loadu_ps(yb + 8 * k);
        for (int64_t i = 0; i < count; i++) {
            const float c = coef[i];
            if (c == 0.0f) continue;
            const uint8_t *blk = w + (size_t)(rows ? rows[i] : i) * row_bytes + (size_t)b * 34;
            if (i + 4 < count) {
                // The next rows' slices of this pass (up to 136 bytes: three cache lines).
                const char *ahead = (const char *)(w + (size_t)(rows ? rows[i + 4] : i + 4) * row_bytes + (size_t)b * 34);
                _mm_prefetch(ahead, _MM_HINT_T0);
                _mm_prefetch(ahead + 64, _MM_HINT_T0);
                _mm_prefetch(ahead + 34 * nblk - 1, _MM_HINT_T0);
            }
            acc_q8_0_block(blk, c, a);
            if (nblk == 2) acc_q8_0_block(blk + 34, c, a + 4);
        }
        for (int k = 0; k < 4 * nblk; k++) _mm256_storeu_ps(yb + 8 * k, a[k]);
    }
}

static float dot_f32_f16_avx2(const float *a, const uint16_t *b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), acc);
    float s = hsum256(acc);
    for (; i < n; i++) s += a[i] * _cvtsh_ss(b[i]);
    return s;
}

static void axpy_f16_avx2(float a, const uint16_t *x, float *y, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * _cvtsh_ss(x[i]);
}

static void f32_to_f16_avx2(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) y[i] = ck_f32_to_f16(x[i]);
}

#pragma clang attribute pop

// ---------------------------------------------------------------------------------------------
// VNNI kernels: the multi-token product register-blocked over rows × tokens, bit-identical to the AVX2
// kernels above. AVX-512 VNNI: 512-bit vectors over block pairs, tiles of 4 rows × 4 tokens
// (matmul_q8_avx512.h); AVX-VNNI: 256-bit vectors, 1 row × 4 tokens (matmul_q8_vnni.h).


#pragma clang attribute push (__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), apply_to = function)
#include "matmul_q8_avx512.h"

// acc_rows_q8_0_avx2 on 512-bit vectors, the same fma per element and row in the same order, so the results
// are bit-identical to it. Up to eight output blocks (sixteen registers) per pass over the rows: each
// listed row is read as one run of up to 272 bytes per pass, fetched `ACC_AHEAD` rows ahead (the rows are
// scattered, so the hardware prefetcher does not see them coming).
enum { ACC_AHEAD = 12 };

static inline __attribute__((always_inline)) void acc_rows_q8_0_avx512_pass(
    const uint8_t *w, size_t row_bytes, int64_t b, const int nblk, const float *coef, const int32_t *rows,
    int64_t count, float *y) {
    float *yb = y + b * 32;
    __m512 a[16];
    for (int k = 0; k < 2 * nblk; k++) a[k] = _mm512_loadu_ps(yb + 16 * k);
    for (int64_t i = 0; i < count; i++) {
        if (i + ACC_AHEAD < count) {
            const char *ahead = (const char *)(w + (size_t)(rows ? rows[i + ACC_AHEAD] : i + ACC_AHEAD) * row_bytes + (size_t)b * 34);
            for (int o = 0; o < 34 * nblk; o += 64) _mm_prefetch(ahead + o, _MM_HINT_T0);
            _mm_prefetch(ahead + 34 * nblk - 1, _MM_HINT_T0);
        }
        const float c = coef[i];
        if (c == 0.0f) continue;
        const uint8_t *blk = w + (size_t)(rows ? rows[i] : i) * row_bytes + (size_t)b * 34;
        for (int k = 0; k < nblk; k++) {
            const uint8_t *bk = blk + 34 * k;
            const __m512 sc = _mm512_set1_ps(c * f16_hw(bk));
            a[2 * k] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(bk + 2)))), a[2 * k]);
            a[2 * k + 1] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(bk + 18)))), a[2 * k + 1]);
        }
    }
    for (int k = 0; k < 2 * nblk; k++) _mm512_storeu_ps(yb + 16 * k, a[k]);
}

static void acc_rows_q8_0_avx512(const uint8_t *w, size_t row_bytes, int64_t nb, const float *coef,
                                 const int32_t *rows, int64_t count, float *y) {
    // As few passes over the rows as eight blocks a pass allow, the blocks shared evenly between them
    // (18 blocks: 6 + 6 + 6; a thread's 9: 5 + 4), each pass compiled for its block count.
    const int64_t passes = (nb + 7) / 8;
    int64_t b = 0;
    for (int64_t p = 0; p < passes; p++) {
        const int64_t m = (nb - b) / (passes - p);
        switch (m) {
        case 8: acc_rows_q8_0_avx512_pass(w, row_bytes, b, 8, coef, rows, count, y); break;
        case 7: acc_rows_q8_0_avx512_pass(w, row_bytes, b, 7, coef, rows, count, y); break;
        case 6: acc_rows_q8_0_avx512_pass(w, row_bytes, b, 6, coef, rows, count, y); break;
        case 5: acc_rows_q8_0_avx512_pass(w, row_bytes, b, 5, coef, rows, count, y); break;
        case 4: acc_rows_q8_0_avx512_pass(w, row_bytes, b, 4, coef, rows, count, y); break;
        case 3: acc_rows_q8_0_avx512_pass(w, row_bytes, b, 3, coef, rows, count, y); break;
        case 2: acc_rows_q8_0_avx512_pass(w, row_bytes, b, 2, coef, rows, count, y); break;
        default: acc_rows_q8_0_avx512_pass(w, row_bytes, b, 1, coef, rows, count, y); break;
        }
        b += m;
    }
}

// The exact multi-token product on CPUs with AVX-512: dot_f32_group_avx2's products (its group_block
// and group_token operations, the same final sum per token) with two tokens in each 512-bit vector:
// token 2i in the low 256 bits, 2i + 1 in the high ones. Every 256-bit half runs exactly group_token's
// operations for its token (the block's weights, scale and minimum are the same vectors in both halves;
// the activations, block sums and accumulators are the token's own), so each token's result is
// bit-identical to the single-token kernel. A CPU with two 512-bit FMA units (Sapphire Rapids) does two
// tokens' arithmetic per instruction, and one pass over a row's blocks serves sixteen tokens (32 vector
// registers). Activations and block sums are first interleaved by pairs (`pairs_avx512`).
static inline __m512 both_halves(__m256 v) {
    const __m512 z = _mm512_castps256_ps512(v);
    return _mm512_shuffle_f32x4(z, z, 0x44);
}

// Per pair of tokens (the second one zero when T is odd) and block: the four activation vectors of the
// block, then (Q4) the lane sums (x0 + x1) + (x2 + x3) that block_sums_avx2 forms, each as one 512-bit
// vector of both tokens. Pair-major: pair i's blocks at i · nb · vb vectors (vb = 4, or 5 with sums).
static float *pairs_avx512(int type, const float *x, int64_t ldx, int64_t T, int64_t n) {
    const int64_t nb = n / 32, np = (T + 1) / 2, vb = type == CK_Q8_0 ? 4 : 5;
    float *buf = (float *)thread_scratch((size_t)np * (size_t)nb * (size_t)vb * 16 * sizeof(float));
    if (!buf) return NULL;
    for (int64_t i = 0; i < np; i++) {
        const float *x0 = x + 2 * i * ldx, *x1 = 2 * i + 1 < T ? x0 + ldx : NULL;
        for (int64_t b = 0; b < nb; b++) {
            float *o = buf + (i * nb + b) * vb * 16;
            __m512 v[4];
            for (int k = 0; k < 4; k++) {
                const __m256 lo = _mm256_loadu_ps(x0 + b * 32 + 8 * k);
                const __m256 hi = x1 ? _mm256_loadu_ps(x1 + b * 32 + 8 * k) : _mm256_setzero_ps();
                v[k] = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
                _mm512_storeu_ps(o + 16 * k, v[k]);
            }
            if (vb == 5) _mm512_storeu_ps(o + 64, _mm512_add_ps(_mm512_add_ps(v[0], v[1]), _mm512_add_ps(v[2], v[3])));
        }
    }
    return buf;
}

// `np` (1 … 8) pairs of tokens against blocks b0 … b1 of a row; `xp[t]` is pair t's interleaved data. `state` (2·np vectors) carries the accumulators
// between block ranges (stored and reloaded unchanged, so splitting the row changes no bit); the last
// range writes the 2·np sums to `out`.
static inline __attribute__((always_inline)) void dot_f32_pairs_avx512(int type, const uint8_t *row, const float *const *xp,
                                                                       int np, int64_t b0, int64_t b1, int first, int last,
                                                                       __m512 *state, float *out) {
    const int q8 = type == CK_Q8_0, is1 = type == CK_Q4_1;
    const size_t bb = q8 ? 34 : is1 ? 20 : 18;
    const int64_t vb = q8 ? 4 : 5;
    __m512 acc[8], accm[8];
#pragma clang loop unroll(full)
    for (int t = 0; t < np; t++) {
        acc[t] = first ? _mm512_setzero_ps() : state[2 * t];
        accm[t] = first ? _mm512_setzero_ps() : state[2 * t + 1];
    }
    for (int64_t b = b0; b < b1; b++) {
        __m256 q[4], vd, vm;
        group_block(q8, is1, row + b * bb, q, &vd, &vm);
        const __m512 q0 = both_halves(q[0]), q1 = both_halves(q[1]), q2 = both_halves(q[2]), q3 = both_halves(q[3]);
        const __m512 d = both_halves(vd), m = both_halves(vm);
#pragma clang loop unroll(full)
        for (int t = 0; t < np; t++) {
            // group_token's operations, in both halves at once.
            const float *xb = xp[t] + b * vb * 16;
            __m512 pr = _mm512_mul_ps(q0, _mm512_loadu_ps(xb));
            pr = _mm512_fmadd_ps(q1, _mm512_loadu_ps(xb + 16), pr);
            pr = _mm512_fmadd_ps(q2, _mm512_loadu_ps(xb + 32), pr);
            pr = _mm512_fmadd_ps(q3, _mm512_loadu_ps(xb + 48), pr);
            acc[t] = _mm512_fmadd_ps(d, pr, acc[t]);
            if (!q8) accm[t] = _mm512_fmadd_ps(m, _mm512_loadu_ps(xb + 64), accm[t]);
        }
    }
#pragma clang loop unroll(full)
    for (int t = 0; t < np; t++) {
        if (last) {
            const __m512 z = q8 ? acc[t] : _mm512_add_ps(acc[t], accm[t]);
            out[2 * t] = hsum256(_mm512_castps512_ps256(z));
            out[2 * t + 1] = hsum256(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(z), 1)));
        } else {
            state[2 * t] = acc[t];
            state[2 * t + 1] = accm[t];
        }
    }
}

static inline void dot_f32_pairs_any_avx512(int type, const uint8_t *row, const float *const *xp, int np, int64_t b0,
                                            int64_t b1, int first, int last, __m512 *state, float *out) {
    switch (np) {
    case 8: dot_f32_pairs_avx512(type, row, xp, 8, b0, b1, first, last, state, out); break;
    case 7: dot_f32_pairs_avx512(type, row, xp, 7, b0, b1, first, last, state, out); break;
    case 6: dot_f32_pairs_avx512(type, row, xp, 6, b0, b1, first, last, state, out); break;
    case 5: dot_f32_pairs_avx512(type, row, xp, 5, b0, b1, first, last, state, out); break;
    case 4: dot_f32_pairs_avx512(type, row, xp, 4, b0, b1, first, last, state, out); break;
    case 3: dot_f32_pairs_avx512(type, row, xp, 3, b0, b1, first, last, state, out); break;
    case 2: dot_f32_pairs_avx512(type, row, xp, 2, b0, b1, first, last, state, out); break;
    default: dot_f32_pairs_avx512(type, row, xp, 1, b0, b1, first, last, state, out); break;
    }
}

enum {
    MMP_ROWS = 16,        // rows whose accumulators are carried between block ranges (32 KiB of state)
    MMP_PAIRS = 8,        // pairs of tokens (16 tokens) per pass over a row
    MMP_CHUNK_BLOCKS = 9  // blocks a range: 8 pairs' interleaved data, 2.5 KiB a block, stay within the
                          // L1 data cache beside the chunk's rows
};

/// Rows [r0, r1) × tokens [0, T) with the paired kernel: tokens in groups of up to 16 (8 pairs), rows
/// in chunks of MMP_ROWS, and a row's blocks in even ranges of at most MMP_CHUNK_BLOCKS, so that a
/// group's activations stay in L1 while the chunk's rows (in L1 / L2) are read once per group. Every
/// (row, token) result is bit-identical to the single-token kernel's.
static int matmul_f32_pairs_avx512(int type, const uint8_t *p, size_t row_bytes, const float *x, int64_t ldx, int64_t T,
                                   float *y, int64_t ldy, int64_t n, int64_t r0, int64_t r1) {
    if (type != CK_Q4_0 && type != CK_Q4_1 && type != CK_Q8_0) return 0;
    const float *xp = pairs_avx512(type, x, ldx, T, n);
    if (!xp) return 0;
    const int64_t nb = n / 32, np = (T + 1) / 2, ps = nb * (type == CK_Q8_0 ? 4 : 5) * 16;
    const int64_t ranges = (nb + MMP_CHUNK_BLOCKS - 1) / MMP_CHUNK_BLOCKS;
    _Alignas(64) __m512 state[MMP_ROWS][2 * MMP_PAIRS];
    float out[2 * MMP_PAIRS];
    for (int64_t rc = r0; rc < r1; rc += MMP_ROWS) {
        const int64_t re = r1 - rc < MMP_ROWS ? r1 : rc + MMP_ROWS;
        for (int64_t g0 = 0; g0 < np; g0 += MMP_PAIRS) {
            const int ng = np - g0 < MMP_PAIRS ? (int)(np - g0) : MMP_PAIRS;
            const int64_t t0 = 2 * g0, tn = T - t0 < 2 * ng ? T - t0 : 2 * ng;
            const float *pairs[MMP_PAIRS];
            for (int t = 0; t < ng; t++) pairs[t] = xp + (g0 + t) * ps;
            int64_t b0 = 0;
            for (int64_t c = 0; c < ranges; c++) {
                const int64_t b1 = b0 + (nb - b0) / (ranges - c);
                for (int64_t r = rc; r < re; r++) {
                    dot_f32_pairs_any_avx512(type, p + (size_t)r * row_bytes, pairs, ng, b0, b1, c == 0,
                                             c == ranges - 1, state[r - rc], out);
                    if (c == ranges - 1)
                        for (int64_t t = 0; t < tn; t++) y[(t0 + t) * ldy + r] = out[t];
                }
                b0 = b1;
            }
        }
    }
    return 1;
}
/// ck_matmul_masked's exact path with the paired kernel: the pass's tokens paired in order (0 with 1,
/// 2 with 3, …); each listed row against every pair with a token its mask names, up to MMP_PAIRS pairs
/// at a time (a pair with one such token costs what one token costs in the grouped AVX2 kernel; a
/// whole pair, half). Only the named tokens' results are written.
static int matmul_masked_pairs_avx512(int type, const uint8_t *p, size_t row_bytes, const float *x, int64_t ldx, int64_t T,
                                      int64_t n, const int32_t *rows, const uint64_t *masks, int64_t count, float *y, int64_t ldy) {
    if (type != CK_Q4_0 && type != CK_Q4_1 && type != CK_Q8_0) return 0;
    const float *xp = pairs_avx512(type, x, ldx, T, n);
    if (!xp) return 0;
    const int64_t nb = n / 32, ps = nb * (type == CK_Q8_0 ? 4 : 5) * 16;
    float out[2 * MMP_PAIRS];
    const float *pairs[MMP_PAIRS];
    int first[MMP_PAIRS];
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *row = p + (size_t)rows[i] * row_bytes;
        if (i + 8 < count) prefetch_row(p + (size_t)rows[i + 8] * row_bytes, row_bytes);
        const uint64_t m = masks[i];
        // Bit 2k of `touched`: pair k has a named token.
        uint64_t touched = (m | (m >> 1)) & 0x5555555555555555ull;
        while (touched) {
            int np = 0;
            while (touched && np < MMP_PAIRS) {
                const int t = __builtin_ctzll(touched);
                touched &= touched - 1;
                first[np] = t;
                pairs[np] = xp + (t / 2) * ps;
                np++;
            }
            dot_f32_pairs_any_avx512(type, row, pairs, np, 0, nb, 1, 1, NULL, out);
            for (int k = 0; k < np; k++) {
                const int t = first[k];
                if (m >> t & 1) y[t * ldy + rows[i]] = out[2 * k];
                if (t + 1 < 64 && (m >> (t + 1) & 1)) y[(t + 1) * ldy + rows[i]] = out[2 * k + 1];
            }
        }
    }
    return 1;
}
#pragma clang attribute pop

#pragma clang attribute push (__attribute__((target("avx2,fma,f16c,avxvnni"))), apply_to = function)
#include "matmul_q8_vnni.h"
#pragma clang attribute pop
#endif

// ---------------------------------------------------------------------------------------------
// Public entry points

static inline float row_dot(int type, const uint8_t *row, const float *x, int64_t n, int avx) {
#if CK_X86
    if (avx) {
        switch (type) {
        case CK_F32: return dot_f32_avx2((const float *)row, x, n);
        case CK_F16: return dot_f16_avx2(row, x, n);
        case CK_BF16: return dot_bf16_avx2(row, x, n);
        case CK_Q4_0: case CK_Q4_1: return dot_q4_f32_avx2(type, row, x, n);
        case CK_Q8_0: return dot_q8_0_f32_avx2(row, x, n);
        case CK_Q5_0: case CK_Q4_K: case CK_Q6_K: if (n % block_elems(type) == 0) return dot_deq_avx2(type, row, x, n); break;
        default: break;
        }
    }
#endif
    (void)avx;
    return row_dot_scalar(type, row, x, n);
}

static inline float row_dot_q8(int type, const uint8_t *row, const ck_q8_block *xq, const float *x, int64_t n, int avx) {
    if ((type == CK_Q5_0 && n % 32 == 0) || ((type == CK_Q4_K || type == CK_Q6_K) && n % 256 == 0)) {
#if CK_X86
        if (avx) return type == CK_Q5_0 ? dot_q5_0_q8_avx2(row, xq, n) : type == CK_Q4_K ? dot_q4_k_q8_avx2(row, xq, n) : dot_q6_k_q8_avx2(row, xq, n);
#endif
        return row_dot_q8_other_scalar(type, row, xq, n);
    }
    if (type != CK_Q4_0 && type != CK_Q4_1 && type != CK_Q8_0) return row_dot(type, row, x, n, avx);
#if CK_X86
    if (avx) return type == CK_Q8_0 ? dot_q8_0_q8_avx2(row, xq, n) : dot_q4_q8_avx2(type, row, xq, n);
#endif
    return row_dot_q8_scalar(type, row, xq, n);
}

void ck_matvec_f32(int type, const void *w, size_t row_bytes, const float *x, float *y, int64_t n, int64_t r0, int64_t r1) {
    const uint8_t *p = (const uint8_t *)w;
    int avx = ck_has_avx2();
    for (int64_t r = r0; r < r1; r++) y[r - r0] = row_dot(type, p + (size_t)r * row_bytes, x, n, avx);
}

void ck_dequantize_rows(int type, const void *w, size_t row_bytes, int64_t n, int64_t r0, int64_t r1, float *dst) {
    const uint8_t *p = (const uint8_t *)w;
#if CK_X86
    if (ck_has_avx2() && n % 32 == 0 && (type == CK_Q4_0 || type == CK_Q4_1 || type == CK_Q8_0)) {
        for (int64_t r = r0; r < r1; r++) dequantize_q_avx2(type, p + (size_t)r * row_bytes, dst + (r - r0) * n, n);
        return;
    }
#endif
    for (int64_t r = r0; r < r1; r++) ck_dequantize(type, p + (size_t)r * row_bytes, dst + (r - r0) * n, n);
}

void ck_matmul_f32(int type, const void *w, size_t row_bytes, const float *x, int64_t ldx, int64_t T,
                   float *y, int64_t ldy, int64_t n, int64_t r0, int64_t r1) {
    const uint8_t *p = (const uint8_t *)w;
    int avx = ck_has_avx2();
#if CK_X86
    if (avx && T > 1 && ck_has_avx512() && matmul_f32_pairs_avx512(type, p, row_bytes, x, ldx, T, y, ldy, n, r0, r1)) return;
    if (avx && matmul_f32_avx2(type, p, row_bytes, x, ldx, T, y, ldy, n, r0, r1)) return;
#endif
#if CK_X86
    // Q5_0, Q4_K, Q6_K: each row decoded once (the values dot_deq_avx2 decodes), then every token through
    // dot_deq_avx2's fma chains: the same bits as the one-token kernel, without decoding per token.
    if (avx && T > 1 && (type == CK_Q5_0 || type == CK_Q4_K || type == CK_Q6_K) && n % block_elems(type) == 0 && n <= 16384) {
        float row_f[16384];
        for (int64_t r = r0; r < r1; r++) {
            ck_dequantize(type, p + (size_t)r * row_bytes, row_f, n);
            for (int64_t t = 0; t < T; t++) y[t * ldy + r] = dot_deq_rows_avx2(row_f, x + t * ldx, n);
        }
        return;
    }
#endif
    // Other types: the single-token kernel per token, the row still in cache for the next token.
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = p + (size_t)r * row_bytes;
        for (int64_t t = 0; t < T; t++) y[t * ldy + r] = row_dot(type, row, x + t * ldx, n, avx);
    }
}

void ck_matvec_f32_rows(int type, const void *w, size_t row_bytes, const float *x, float *y, int64_t n, const int32_t *rows, int64_t count) {
    const uint8_t *p = (const uint8_t *)w;
    int avx = ck_has_avx2();
    for (int64_t i = 0; i < count; i++) {
        if (i + 8 < count) prefetch_row(p + (size_t)rows[i + 8] * row_bytes, row_bytes);
        y[i] = row_dot(type, p + (size_t)rows[i] * row_bytes, x, n, avx);
    }
}

void ck_matmul_masked(int type, const void *w, size_t row_bytes, const float *x, int64_t ldx, const ck_q8_block *xq,
                      int64_t T, int64_t n, const int32_t *rows, const uint64_t *masks, int64_t count, float *y, int64_t ldy) {
    const uint8_t *p = (const uint8_t *)w;
    int avx = ck_has_avx2();
    const int64_t nb = n / 32;
#if CK_X86
    if (!xq && avx && T > 1 && ck_has_avx512() && matmul_masked_pairs_avx512(type, p, row_bytes, x, ldx, T, n, rows, masks, count, y, ldy)) return;
    if (!xq && avx && matmul_masked_avx2(type, p, row_bytes, x, ldx, T, n, rows, masks, count, y, ldy)) return;
#endif
    // Other types and fast numerics: the one-token kernel per (row, token), the row still in cache for
    // the next token.
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *row = p + (size_t)rows[i] * row_bytes;
        if (i + 8 < count) prefetch_row(p + (size_t)rows[i + 8] * row_bytes, row_bytes);
        for (uint64_t m = masks[i]; m; m &= m - 1) {
            const int t = __builtin_ctzll(m);
            y[t * ldy + rows[i]] = xq ? row_dot_q8(type, row, xq + t * nb, x + t * ldx, n, avx)
                                      : row_dot(type, row, x + t * ldx, n, avx);
        }
    }
}

void ck_quantize_q8(const float *x, int64_t n, ck_q8_block *out) {
#if CK_X86
    if (ck_has_avx2()) { quantize_q8_avx2(x, n, out); return; }
#endif
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++) { float a = fabsf(xb[j]); if (a > amax) amax = a; }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int32_t s = 0;
        for (int j = 0; j < 32; j++) {
            int v = (int)nearbyintf(xb[j] * id);
            out[b].q[j] = (int8_t)v;
            s += v;
        }
        out[b].d = d;
        out[b].s = d * (float)s;
    }
}

// One token on Q4_0 / Q4_1 / Q8_0 rows with AVX-512 VNNI: the multi-token tile kernel with one token,
// which gives the 256-bit kernels' bits (its lanes do the same operations; the tests compare both) in
// fewer instructions per block. On a Sapphire Rapids core, a layer stack of SmolLM2-135M's shapes with
// the weights in cache: 21–27 % less time for all rows (Q4_1 and Q8_0); for half the rows listed,
// 7–9 % less on Q4_1 but 27 % more on Q8_0, so listed Q8_0 rows keep the 256-bit kernel.
static int matvec_q8_wide(int type, const uint8_t *p, size_t row_bytes, const ck_q8_block *xq, float *y, int64_t n,
                          int64_t r0, int64_t r1, const int32_t *list) {
#if CK_X86
    if ((type == CK_Q4_0 || type == CK_Q4_1 || (type == CK_Q8_0 && !list)) && n % 32 == 0 && vnni_level() == 2)
        return matmul_q8_avx512(type, p, row_bytes, xq, 1, y, 0, n / 32, r0, r1, list);
#else
    (void)type; (void)p; (void)row_bytes; (void)xq; (void)y; (void)n; (void)r0; (void)r1; (void)list;
#endif
    return 0;
}

void ck_matvec_q8(int type, const void *w, size_t row_bytes, const ck_q8_block *xq, const float *x, float *y, int64_t n, int64_t r0, int64_t r1) {
    const uint8_t *p = (const uint8_t *)w;
    // y starts at row r0: the wide kernel gets the rows from r0 on as rows 0 ..< r1 − r0.
    if (matvec_q8_wide(type, p + (size_t)r0 * row_bytes, row_bytes, xq, y, n, 0, r1 - r0, NULL)) return;
    int avx = ck_has_avx2();
    for (int64_t r = r0; r < r1; r++) y[r - r0] = row_dot_q8(type, p + (size_t)r * row_bytes, xq, x, n, avx);
}

void ck_matvec_q8_rows(int type, const void *w, size_t row_bytes, const ck_q8_block *xq, const float *x, float *y, int64_t n, const int32_t *rows, int64_t count) {
    const uint8_t *p = (const uint8_t *)w;
    if (matvec_q8_wide(type, p, row_bytes, xq, y, n, 0, count, rows)) return;
    int avx = ck_has_avx2();
    for (int64_t i = 0; i < count; i++) {
        // Listed rows are scattered: fetch a few rows ahead, which the hardware prefetcher does not.
        if (i + 8 < count) prefetch_row(p + (size_t)rows[i + 8] * row_bytes, row_bytes);
        y[i] = row_dot_q8(type, p + (size_t)rows[i] * row_bytes, xq, x, n, avx);
    }
}

float ck_dot(const float *a, const float *b, int64_t n) {
#if CK_X86
    if (ck_has_avx2()) return dot_f32_avx2(a, b, n);
#endif
    return dot_f32_scalar(a, b, n);
}

void ck_axpy(float a, const float *x, float *y, int64_t n) {
#if CK_X86
    if (ck_has_avx2()) { axpy_avx2(a, x, y, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void ck_quantize_row_q8_0(const float *x, int64_t n, void *dst) {
    uint8_t *o = (uint8_t *)dst;
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++) { float a = fabsf(xb[j]); if (a > amax) amax = a; }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t h = ck_f32_to_f16(d);
        memcpy(o + b * 34, &h, 2);
        int8_t *q = (int8_t *)(o + b * 34 + 2);
        for (int j = 0; j < 32; j++) q[j] = (int8_t)nearbyintf(xb[j] * id);
    }
}

void ck_accumulate_rows(int type, const void *w, size_t row_bytes, int64_t n, const float *coef,
                        const int32_t *rows, int64_t count, float *y) {
    const uint8_t *p = (const uint8_t *)w;
    int avx = ck_has_avx2();
#if CK_X86
    if (avx && type == CK_Q8_0 && n % 32 == 0) {
        if (ck_has_avx512()) acc_rows_q8_0_avx512(p, row_bytes, n / 32, coef, rows, count, y);
        else acc_rows_q8_0_avx2(p, row_bytes, n / 32, coef, rows, count, y);
        return;
    }
#endif
    float buf[4096];
    for (int64_t i = 0; i < count; i++) {
        float c = coef[i];
        if (c == 0.0f) continue;
        const uint8_t *row = p + (size_t)(rows ? rows[i] : i) * row_bytes;
#if CK_X86
        if (avx && type == CK_F32) { axpy_avx2(c, (const float *)row, y, n); continue; }
#endif
        for (int64_t j0 = 0; j0 < n; j0 += 4096) {
            int64_t m = n - j0 < 4096 ? n - j0 : 4096;
            int64_t be = block_elems(type);
            ck_dequantize(type, row + (size_t)(j0 / be) * block_bytes(type), buf, m);
            for (int64_t j = 0; j < m; j++) y[j0 + j] += c * buf[j];
        }
    }
    (void)avx;
}

void ck_accumulate_rows_tokens(int type, const void *w, size_t row_bytes, int64_t b0, int64_t b1, int64_t T,
                               const float *const *coef, const int32_t *const *rows, const int64_t *counts, float *const *y) {
    const int64_t be = block_elems(type);
    const size_t bb = block_bytes(type);
    // Four blocks at a time (the AVX-512 kernel's step, two of the AVX2 kernel's): a few hundred bytes
    // of each listed row, which stay in cache from the first token that lists the row to the last.
    for (int64_t c0 = b0; c0 < b1; c0 += 4) {
        const int64_t c1 = b1 - c0 < 4 ? b1 : c0 + 4;
        for (int64_t t = 0; t < T; t++)
            ck_accumulate_rows(type, (const uint8_t *)w + (size_t)c0 * bb, row_bytes, (c1 - c0) * be, coef[t], rows[t],
                               counts[t], y[t] + c0 * be);
    }
}

int ck_matmul_q8(int type, const void *w, size_t row_bytes, const ck_q8_block *xq, int64_t T,
                 float *y, int64_t ldy, int64_t n, int64_t r0, int64_t r1) {
    const uint8_t *p = (const uint8_t *)w;
    const int64_t nb = n / 32;
    if (type == CK_Q5_0 || type == CK_Q4_K || type == CK_Q6_K) {
        if (n % block_elems(type) != 0) return 0;
        // The one-token kernel per token (so each token's bits are its own), the row still in cache.
        const int avx = ck_has_avx2();
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = p + (size_t)r * row_bytes;
            for (int64_t t = 0; t < T; t++) y[t * ldy + r] = row_dot_q8(type, row, xq + t * nb, NULL, n, avx);
        }
        return 1;
    }
    if (type != CK_Q4_0 && type != CK_Q4_1 && type != CK_Q8_0) return 0;
#if CK_X86
    if (ck_has_avx2()) {
        const int vnni = vnni_level();
        if (vnni == 2 && matmul_q8_avx512(type, p, row_bytes, xq, T, y, ldy, nb, r0, r1, NULL)) return 1;
        if (vnni == 1 && matmul_q8_avxvnni(type, p, row_bytes, xq, T, y, ldy, nb, r0, r1)) return 1;
        float out[4];
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = p + (size_t)r * row_bytes;
            for (int64_t t0 = 0; t0 < T; t0 += 4) {
                int ng = T - t0 < 4 ? (int)(T - t0) : 4;
                matmul_q8_group_avx2(type, row, xq + t0 * nb, nb, ng, out);
                for (int t = 0; t < ng; t++) y[(t0 + t) * ldy + r] = out[t];
            }
        }
        return 1;
    }
#endif
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = p + (size_t)r * row_bytes;
        for (int64_t t = 0; t < T; t++) y[t * ldy + r] = row_dot_q8_scalar(type, row, xq + t * nb, n);
    }
    return 1;
}


static float dot_f32_f16(const float *a, const uint16_t *b, int64_t n) {
#if CK_X86
    if (ck_has_avx2()) return dot_f32_f16_avx2(a, b, n);
#endif
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * ck_f16_to_f32(b[i]);
    return s;
}

static void axpy_f16(float a, const uint16_t *x, float *y, int64_t n) {
#if CK_X86
    if (ck_has_avx2()) { axpy_f16_avx2(a, x, y, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) y[i] += a * ck_f16_to_f32(x[i]);
}

void ck_f32_to_f16_row(const float *x, uint16_t *y, int64_t n) {
#if CK_X86
    if (ck_has_avx2()) { f32_to_f16_avx2(x, y, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) y[i] = ck_f32_to_f16(x[i]);
}

// One attention head; keys/values are floats, or IEEE halves when `half`; positions below `split` are
// read from k0 / v0, the others from k / v (both indexed by absolute position).
static void attend(const float *q, const void *k0, const void *v0, int64_t split, const void *k, const void *v, int half,
                   int64_t stride, int64_t n, int64_t d, float scale, const uint8_t *visible, float *scores, float *out) {
    const size_t esize = half ? 2 : 4;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        if (visible && !visible[j]) { scores[j] = -INFINITY; continue; }
        const void *kj = (const uint8_t *)(j < split ? k0 : k) + (size_t)(j * stride) * esize;
        float s = (half ? dot_f32_f16(q, (const uint16_t *)kj, d) : ck_dot(q, (const float *)kj, d)) * scale;
        scores[j] = s;
        if (s > mx) mx = s;
    }
    float sum = 0;
    for (int64_t j = 0; j < n; j++) {
        float e = scores[j] == -INFINITY ? 0.0f : expf(scores[j] - mx);
        scores[j] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (int64_t i = 0; i < d; i++) out[i] = 0;
    for (int64_t j = 0; j < n; j++) {
        if (scores[j] == 0.0f) continue;
        const void *vj = (const uint8_t *)(j < split ? v0 : v) + (size_t)(j * stride) * esize;
        if (half) axpy_f16(scores[j] * inv, (const uint16_t *)vj, out, d);
        else ck_axpy(scores[j] * inv, (const float *)vj, out, d);
    }
}

void ck_attend(const float *q, const float *k, const float *v, int64_t stride, int64_t n, int64_t d,
               float scale, const uint8_t *visible, float *scores, float *out) {
    attend(q, NULL, NULL, 0, k, v, 0, stride, n, d, scale, visible, scores, out);
}

void ck_attend_f16(const float *q, const uint16_t *k, const uint16_t *v, int64_t stride, int64_t n, int64_t d,
                   float scale, const uint8_t *visible, float *scores, float *out) {
    attend(q, NULL, NULL, 0, k, v, 1, stride, n, d, scale, visible, scores, out);
}

void ck_attend_split(const float *q, const void *k0, const void *v0, int64_t split, const void *k, const void *v, int half,
                     int64_t stride, int64_t n, int64_t d, float scale, const uint8_t *visible, float *scores, float *out) {
    attend(q, k0, v0, split, k, v, half, stride, n, d, scale, visible, scores, out);
}

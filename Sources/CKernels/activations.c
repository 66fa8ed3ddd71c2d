// Elementwise activations and softmax statistics, vectorised with AVX2 where available.

#include "ckernels.h"
#include <math.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define CKV_X86 1
#else
#define CKV_X86 0
#endif

#if CKV_X86
#pragma clang attribute push (__attribute__((target("avx2,fma,f16c"))), apply_to = function)

// e^x for every float x: 0 below −87.3, +∞ above 88.3 (e^88.3 ≈ 2.2e38; the few larger finite values are
// not needed here). Range reduction by ln 2 in two parts, the
// Cephes expf polynomial on |r| ≤ ln2/2 (about 1 ulp), 2^n built in the exponent field.
static inline __m256 vexp(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3f), hi = _mm256_set1_ps(88.3f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // n reaches 127 at x = 88.3: build 2^n as 2^(n−1)·2 so the exponent field never overflows.
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(126)), 23);
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), _mm256_set1_ps(2.0f));
    y = _mm256_andnot_ps(under, y);
    return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
}

static void silu_mul_avx2(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, vexp(_mm256_xor_ps(x, sign))));
        if (u) s = _mm256_mul_ps(s, _mm256_loadu_ps(u + i));
        _mm256_storeu_ps(g + i, s);
    }
    for (; i < n; i++) { float s = g[i] / (1.0f + expf(-g[i])); g[i] = u ? s * u[i] : s; }
}

static float softmax_at_avx2(const float *z, int64_t n, float inv_t, int64_t token) {
    __m256 mx = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(z + i));
    float m = -INFINITY;
    float lanes[8];
    _mm256_storeu_ps(lanes, mx);
    for (int l = 0; l < 8; l++) if (lanes[l] > m) m = lanes[l];
    for (int64_t j = i; j < n; j++) if (z[j] > m) m = z[j];
    const __m256 vm = _mm256_set1_ps(m), vt = _mm256_set1_ps(inv_t);
    __m256 acc = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) acc = _mm256_add_ps(acc, vexp(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(z + i), vm), vt)));
    _mm256_storeu_ps(lanes, acc);
    float sum = 0;
    for (int l = 0; l < 8; l++) sum += lanes[l];
    for (int64_t j = i; j < n; j++) sum += expf((z[j] - m) * inv_t);
    return expf((z[token] - m) * inv_t) / sum;
}

#pragma clang attribute pop
#endif

void ck_silu_mul(float *g, const float *u, int64_t n) {
#if CKV_X86
    if (ck_has_avx2()) { silu_mul_avx2(g, u, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) { float s = g[i] / (1.0f + expf(-g[i])); g[i] = u ? s * u[i] : s; }
}

float ck_softmax_at(const float *z, int64_t n, float inv_t, int64_t token) {
#if CKV_X86
    if (ck_has_avx2()) return softmax_at_avx2(z, n, inv_t, token);
#endif
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) if (z[j] > m) m = z[j];
    float sum = 0;
    for (int64_t j = 0; j < n; j++) sum += expf((z[j] - m) * inv_t);
    return expf((z[token] - m) * inv_t) / sum;
}

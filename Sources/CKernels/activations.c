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

#include "vexp.h"

static void silu_mul_avx2(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, ck_vexp256(_mm256_xor_ps(x, sign))));
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
    for (i = 0; i + 8 <= n; i += 8) acc = _mm256_add_ps(acc, ck_vexp256(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(z + i), vm), vt)));
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

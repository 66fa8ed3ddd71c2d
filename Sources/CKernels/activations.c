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

// GELU (tanh approximation) through 0.5·(1 + tanh(y)) = 1 / (1 + e^(−2y)), y = √(2/π)·(x + 0.044715·x³).
static inline __m256 gelu_tanh_avx2(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f), k0 = _mm256_set1_ps(-2.0f * 0.7978845608028654f), k1 = _mm256_set1_ps(0.044715f);
    const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(k1, x), _mm256_mul_ps(x, x), x);
    return _mm256_div_ps(x, _mm256_add_ps(one, ck_vexp256(_mm256_mul_ps(k0, inner))));
}

// Every element through the 8-wide function (the tail padded), so a value never depends on its index.
static void gelu_tanh_mul_avx2(float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 s = gelu_tanh_avx2(_mm256_loadu_ps(g + i));
        if (u) s = _mm256_mul_ps(s, _mm256_loadu_ps(u + i));
        _mm256_storeu_ps(g + i, s);
    }
    if (i < n) {
        float gt[8] = {0}, ut[8] = {0};
        for (int64_t j = i; j < n; j++) { gt[j - i] = g[j]; ut[j - i] = u ? u[j] : 0; }
        __m256 s = gelu_tanh_avx2(_mm256_loadu_ps(gt));
        if (u) s = _mm256_mul_ps(s, _mm256_loadu_ps(ut));
        _mm256_storeu_ps(gt, s);
        for (int64_t j = i; j < n; j++) g[j] = gt[j - i];
    }
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

static inline float gelu_tanh_scalar(float x) {
    const float inner = 0.044715f * x * (x * x) + x;
    return x / (1.0f + expf(-2.0f * 0.7978845608028654f * inner));
}

void ck_gelu_tanh_mul(float *g, const float *u, int64_t n) {
#if CKV_X86
    if (ck_has_avx2()) { gelu_tanh_mul_avx2(g, u, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) { float s = gelu_tanh_scalar(g[i]); g[i] = u ? s * u[i] : s; }
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

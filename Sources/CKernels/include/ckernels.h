#pragma once
#include <stddef.h>
#include <stdint.h>
#include "ckpool.h"

#ifdef __cplusplus
extern "C" {
#endif

/// ggml type ids (formats.md §1) understood by these kernels.
enum {
    CK_F32 = 0, CK_F16 = 1, CK_Q4_0 = 2, CK_Q4_1 = 3, CK_Q5_0 = 6, CK_Q8_0 = 8,
    CK_Q4_K = 12, CK_Q6_K = 14, CK_BF16 = 30
};

/// Activations quantised to 8 bits in blocks of 32 ("fast" numerics): x[j] ≈ d * q[j]; s = d * Σ q[j].
typedef struct {
    float d;
    float s;
    int8_t q[32];
} ck_q8_block;

/// 1 when the AVX2/FMA/F16C kernels are in use on this CPU, 0 for the portable scalar kernels.
int ck_has_avx2(void);
/// Force the portable scalar kernels (for tests comparing both paths). 1 = scalar only. Per thread:
/// it applies to this thread's kernel calls (and to the pool helpers working for them), not to others.
void ck_force_scalar(int on);

/// 1 when the AVX-512 (F, BW, VL) kernels are in use on this CPU.
int ck_has_avx512(void);
/// Tests: 1 = use the AVX2 / AVX-VNNI kernels even where AVX-512 is available (per thread, like
/// ck_force_scalar).
void ck_limit_avx512(int on);
/// The calling thread's switches as bits (1: scalar forced, 2: AVX-512 hidden), and setting them:
/// how the thread pool gives its helpers the kernels of the thread that handed them the work.
int ck_selection_get(void);
void ck_selection_set(int bits);

/// Chooses OpenBLAS's kernels by the CPU's class, whatever the library detected (unless
/// OPENBLAS_CORETYPE is set): SkylakeX's with AVX-512, Haswell's with AVX2 and FMA, so that machines of
/// one class compute the same sgemm bits and none falls back to a generic core; returns the name of the
/// kernels in use ("unknown" if the library does not say). Call once, before the first BLAS call of the
/// process (blas_kernels.c).
const char *ck_blas_pin_kernels(void);

/// The kernels this CPU runs, whatever the calling thread's test switches say: 2 = AVX-512 (F, BW, VL),
/// 1 = AVX2 / FMA / F16C, 0 = the portable scalar ones.
int ck_cpu_level(void);

/// Whether `type` is supported by these kernels.
int ck_type_supported(int type);

/// IEEE half → float and back (round to nearest even).
float ck_f16_to_f32(uint16_t h);
uint16_t ck_f32_to_f16(float f);

/// Dequantise `n` elements (a whole number of blocks) of `type` from `src` into `dst`.
void ck_dequantize(int type, const void *src, float *dst, int64_t n);

/// Dequantise rows [r0, r1) of a matrix whose rows are `row_bytes` apart, `n` elements each,
/// into `dst` (row-major, (r1 - r0) × n floats).
void ck_dequantize_rows(int type, const void *w, size_t row_bytes, int64_t n, int64_t r0, int64_t r1, float *dst);

/// "exact" numerics: y[r - r0] = Σ_j dequant(w_r)[j] · x[j] for rows r in [r0, r1), in float.
void ck_matvec_f32(int type, const void *w, size_t row_bytes, const float *x, float *y,
                   int64_t n, int64_t r0, int64_t r1);

/// Multi-token "exact" product: y[t·ldy + r] = w_r · x_t for rows r in [r0, r1) and tokens t in [0, T),
/// x_t at `x + t·ldx`. Each result is bit-identical to ck_matvec_f32 on that token alone (a token's bits
/// never depend on the other tokens of the call); Q4_0, Q4_1 and Q8_0 rows are decoded once per four tokens.
void ck_matmul_f32(int type, const void *w, size_t row_bytes, const float *x, int64_t ldx, int64_t T,
                   float *y, int64_t ldy, int64_t n, int64_t r0, int64_t r1);

/// Same, for an arbitrary list of rows: y[i] = w_{rows[i]} · x.
void ck_matvec_f32_rows(int type, const void *w, size_t row_bytes, const float *x, float *y,
                        int64_t n, const int32_t *rows, int64_t count);

/// Chosen (row, token) products of one pass: for each listed row `rows[i]` and each token t whose bit
/// is set in `masks[i]`, y[t·ldy + rows[i]] = w_{rows[i]} · x_t (x_t at `x + t·ldx`; T ≤ 64). Nothing
/// else is written. Exact numerics (`xq` NULL): each value is ck_matvec_f32's on that token alone;
/// fast numerics (`xq`: the T tokens' quantised rows, n/32 blocks each): ck_matvec_q8's. A weight row
/// is read once for all the tokens that want it (Griffin's MLPs of several sequences in one pass).
void ck_matmul_masked(int type, const void *w, size_t row_bytes, const float *x, int64_t ldx, const ck_q8_block *xq,
                      int64_t T, int64_t n, const int32_t *rows, const uint64_t *masks, int64_t count, float *y, int64_t ldy);

/// Quantise `n` floats (a multiple of 32) into n/32 blocks.
void ck_quantize_q8(const float *x, int64_t n, ck_q8_block *out);

/// "fast" numerics: integer dot products against quantised activations for Q4_0, Q4_1, Q5_0, Q8_0,
/// Q4_K and Q6_K; other types fall back to the float kernel on `x`.
void ck_matvec_q8(int type, const void *w, size_t row_bytes, const ck_q8_block *xq, const float *x,
                  float *y, int64_t n, int64_t r0, int64_t r1);
void ck_matvec_q8_rows(int type, const void *w, size_t row_bytes, const ck_q8_block *xq, const float *x,
                       float *y, int64_t n, const int32_t *rows, int64_t count);

/// Multi-token "fast" product for Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K weights: for rows r in [r0, r1)
/// and tokens t in [0, T): y[t·ldy + r] = w_r · x_t, where x_t is given quantised as `xq + t·(n/32)`.
/// Q4/Q8 weight blocks are decoded once per group of four tokens. Returns 0 (and does nothing) for
/// other types.
int ck_matmul_q8(int type, const void *w, size_t row_bytes, const ck_q8_block *xq, int64_t T,
                 float *y, int64_t ldy, int64_t n, int64_t r0, int64_t r1);

/// Quantise `n` floats (a multiple of 32) into ggml Q8_0 blocks (fp16 scale + 32 int8) at `dst`.
void ck_quantize_row_q8_0(const float *x, int64_t n, void *dst);

/// Neuron-major accumulate: y[0..<n] += Σ_i coef[i] · dequant(w_{rows[i]}) for `count` rows of `n`
/// elements (`rows == NULL` means rows 0..<count). The sparse down projection over active neurons.
void ck_accumulate_rows(int type, const void *w, size_t row_bytes, int64_t n, const float *coef,
                        const int32_t *rows, int64_t count, float *y);

/// ck_accumulate_rows for T tokens, each with its own rows and coefficients, over output blocks
/// [b0, b1) of the rows: y[t][e] += Σ_i coef[t][i] · dequant(w_{rows[t][i]})[e] for e in those blocks.
/// The output is walked a few blocks at a time, every token in turn, so a row's part is read from
/// memory once for all the tokens that list it. Each token's values equal ck_accumulate_rows on it alone.
void ck_accumulate_rows_tokens(int type, const void *w, size_t row_bytes, int64_t b0, int64_t b1, int64_t T,
                               const float *const *coef, const int32_t *const *rows, const int64_t *counts, float *const *y);

/// One attention head over `n` cached positions: scores_j = (q·k_j)·scale for visible j (`visible`
/// NULL = all, else visible[j] != 0), softmax, out = Σ_j p_j v_j. Keys and values of position j are at
/// `k + j·stride` and `v + j·stride`; `scores` needs room for n floats.
void ck_attend(const float *q, const float *k, const float *v, int64_t stride, int64_t n, int64_t d,
               float scale, const uint8_t *visible, float *scores, float *out);

/// The same with keys and values stored as IEEE halves (the f16 KV cache of fast numerics).
void ck_attend_f16(const float *q, const uint16_t *k, const uint16_t *v, int64_t stride, int64_t n, int64_t d,
                   float scale, const uint8_t *visible, float *scores, float *out);

/// Attention of `heads` query heads sharing one KV head, for `ntok` consecutive tokens. Query (i, h)
/// is `q + i·tstride + h·d` and sees cached positions 0 ..< first_n + i (minus those with
/// `vis[i·vstride + j] == 0` when `vis` is not NULL); its output goes to `out + i·tstride + h·d`.
/// Keys/values of position j are at `k + j·kvstride` and `v + j·kvstride` (floats, or IEEE halves
/// when `half`). `scores` needs ntok·heads·round_up(first_n + ntok − 1, 8) floats. A query's result
/// does not depend on the other queries of the call.
void ck_attend_gqa(const float *q, float *out, int64_t tstride, int64_t ntok, int64_t heads, int64_t d,
                   int64_t first_n, const void *k, const void *v, int half, int64_t kvstride, float scale,
                   const uint8_t *vis, int64_t vstride, float *scores);

/// One sequence's run of tokens in `ck_attend_gqa_jobs`: queries `q`, outputs `out` (row i at
/// `i·tstride`, head h at `h·d`), causal length of the first token `first_n`, its own keys / values
/// (position j at `k + j·kvstride`, used for j ≥ split), visibility rows as in `ck_attend_gqa`, and
/// its scores scratch (ntok·heads·round_up(first_n + ntok − 1, 8) floats).
typedef struct {
    const float *q;
    float *out;
    int64_t ntok;
    int64_t first_n;
    const void *k;
    const void *v;
    const uint8_t *vis;
    int64_t vstride;
    float *scores;
} ck_attn_job;

/// `ck_attend_gqa` for several jobs whose positions below `split` (a multiple of 8) are one shared
/// prefix at `k0` / `v0` (same layout): each tile of the prefix is read once for all jobs. Every
/// query's result is bit-identical to `ck_attend_gqa` on its job alone over a cache holding a copy of
/// the prefix.
void ck_attend_gqa_jobs(const ck_attn_job *jobs, int64_t njobs, int64_t tstride, int64_t heads, int64_t d,
                        const void *k0, const void *v0, int64_t split, int half, int64_t kvstride, float scale);

/// `ck_attend` / `ck_attend_f16` (by `half`) with positions below `split` read from `k0` / `v0`.
void ck_attend_split(const float *q, const void *k0, const void *v0, int64_t split, const void *k, const void *v, int half,
                     int64_t stride, int64_t n, int64_t d, float scale, const uint8_t *visible, float *scores, float *out);

/// CATS's active neurons for one step of `T` rows of activations `g` (`[T][d]`): the magnitudes
/// mag[j] = Σ_t |g[t·d + j]| (summed in row order) go to `mag`, and `active` gets, in ascending order,
/// either the neurons with mag > `threshold` (`by_threshold`) or the `k` largest (ties: the lower index),
/// chosen by a radix select, no sort. Returns how many were listed.
int64_t ck_cats_select(const float *g, int64_t T, int64_t d, int64_t k, float threshold, int by_threshold,
                       float *mag, int32_t *active);

/// g[i] = silu(g[i]) · u[i] (or silu(g[i]) when `u` is NULL), silu(x) = x / (1 + e^−x).
void ck_silu_mul(float *g, const float *u, int64_t n);

/// g[i] = gelu(g[i]) · u[i] (or gelu(g[i]) when `u` is NULL), GELU's tanh approximation
/// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) computed as x / (1 + e^(−2·√(2/π)·(x + 0.044715·x³))); an
/// element's value does not depend on its index.
void ck_gelu_tanh_mul(float *g, const float *u, int64_t n);

/// softmax(z · inv_t)[token] over n logits (maximum subtracted first).
float ck_softmax_at(const float *z, int64_t n, float inv_t, int64_t token);

/// Floats → IEEE halves, round to nearest even (same result as ck_f32_to_f16 per element).
void ck_f32_to_f16_row(const float *x, uint16_t *y, int64_t n);

/// Float helpers for attention and norms.
float ck_dot(const float *a, const float *b, int64_t n);
/// y += a * x
void ck_axpy(float a, const float *x, float *y, int64_t n);

#ifdef __cplusplus
}
#endif

// Register-blocked multi-token product for Q4_0 / Q4_1 / Q8_0 weights against q8 activations on 256-bit
// vectors with AVX-VNNI (vpdpbusd) for the integer part: the kernel for CPUs with AVX-VNNI but not
// AVX-512 (matmul_q8_avx512.h). Private to kernels.c, included inside a target("avx2,fma,f16c,avxvnni")
// region; uses hsum256 from there.
//
// Numerics: every (row, token) result goes through exactly the float operations of dot_q4_q8_avx2 /
// dot_q8_0_q8_avx2: per block b, acc[k] = fma(set1(d_w · d_x), cvt(p_b), acc[k]) with k = b & 1 while
// blocks come in pairs and k = 0 for a trailing odd block; for Q4 also accm[k] = fma(m, x.s, accm[k]);
// the result is hsum256(acc0 + acc1), + (accm0 + accm1) for Q4. Only the order of independent work
// changes. The int32 partial sums p_b are the same integers that maddubs + madd produce (no int16
// saturation can occur there with q8 activations, which lie in [-127, 127]):
//   Q4:   p = dpbusd(0, nibbles (u8), x.q (s8)).
//   Q8_0: p = dpbusd(-128·Σw, x.q + 128 (u8), w (s8)) = Σ x·w.
// The scales d_w · d_x are single float products, four tokens per vector multiply; the Q4 min terms
// are vector FMAs with one lane per token.

// Weight rows per tile (a tile is VNNI256_NR rows × up to 4 tokens): these CPUs have 16 vector registers,
// which one row's 8 accumulators and its operands already fill.
#define VNNI256_NR 1

// Per-call scratch, for one group of (up to) four tokens.
typedef struct {
    float *dx, *sx;  // token scales and sums, [nb][4]
    float *sc;       // d_w · d_x for one tile, [nb][VNNI256_NR][4]
    float *dm;       // weight scales of the current chunk of rows as floats: [row][nb][d, m] (Q4_1 min m)
    int8_t *xp;      // quantised tokens, [nb][4][32], 32-byte aligned; Q8_0: stored as x + 128 (u8)
} vnni256_scratch;

// One weight block b of every tile row against every token: acc[i][t][k] += scale · p (k constant).
static inline __attribute__((always_inline)) void
vnni256_block(const int type, const int nt, const uint8_t *const *rows, const vnni256_scratch *s, int64_t b,
                __m256 acc[][4][2], const int k) {
    const int q8 = type == CK_Q8_0, is1 = type == CK_Q4_1;
    const size_t bb = q8 ? 34 : (is1 ? 20 : 18);
    const int off = q8 ? 2 : (is1 ? 4 : 2);
    const __m256i zero = _mm256_setzero_si256();
    __m256i wq[VNNI256_NR], init[VNNI256_NR];
    for (int i = 0; i < VNNI256_NR; i++) {
        const uint8_t *q = rows[i] + b * bb + off;
        if (q8) {
            wq[i] = _mm256_loadu_si256((const __m256i *)q);
            // −128·Σw per lane cancels the +128 offset of the unsigned x operand.
            init[i] = _mm256_sub_epi32(zero, _mm256_dpbusd_avx_epi32(zero, _mm256_set1_epi8((char)0x80), wq[i]));
        } else {
            __m128i v = _mm_loadu_si128((const __m128i *)q);
            wq[i] = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1),
                                     _mm256_set1_epi8(0x0F));
            init[i] = zero;
        }
    }
    const float *sc = s->sc + b * VNNI256_NR * 4;
    const int8_t *xb = s->xp + b * 128;
    for (int t = 0; t < nt; t++) {
        const __m256i xv = _mm256_load_si256((const __m256i *)(xb + t * 32));
        for (int i = 0; i < VNNI256_NR; i++) {
            const __m256i p = q8 ? _mm256_dpbusd_avx_epi32(init[i], xv, wq[i]) : _mm256_dpbusd_avx_epi32(init[i], wq[i], xv);
            acc[i][t][k] = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + i * 4 + t), _mm256_cvtepi32_ps(p), acc[i][t][k]);
        }
    }
}

// Pass 1 for block b: the tile's scales sc[b][i][t] = d_w(i, b) · d_x(t, b) and, for Q4, the min terms
// accm[i][k] (one lane per token) = fma(m_i, x_t.s, accm[i][k]) (k constant). `dm` points at the tile's
// first row in the chunk's converted scales.
static inline __attribute__((always_inline)) void
vnni256_scales(const int type, const float *dm, const vnni256_scratch *s, int64_t nb, int64_t b, __m128 accm[][2],
                 const int k) {
    const __m128 dxv = _mm_loadu_ps(s->dx + b * 4);
    for (int i = 0; i < VNNI256_NR; i++) {
        const float *p = dm + (i * nb + b) * 2;
        const __m128 d = _mm_broadcast_ss(p);
        _mm_storeu_ps(s->sc + (b * VNNI256_NR + i) * 4, _mm_mul_ps(d, dxv));
        if (type != CK_Q8_0) {
            const __m128 m = type == CK_Q4_1 ? _mm_broadcast_ss(p + 1) : _mm_mul_ps(_mm_set1_ps(-8.0f), d);
            accm[i][k] = _mm_fmadd_ps(m, _mm_loadu_ps(s->sx + b * 4), accm[i][k]);
        }
    }
}

// Converts the f16 scale (and Q4_1 min) of every block of rows [r, r + count) to floats, four blocks per
// conversion: dm[row][b] = {d, m} (m is garbage for Q4_0 / Q8_0, whose blocks hold other data there).
static void vnni256_convert_scales(const uint8_t *w, size_t row_bytes, size_t bb, int64_t nb, int64_t r,
                                     int64_t count, float *dm) {
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *row = w + (size_t)(r + i) * row_bytes;
        float *out = dm + i * nb * 2;
        int64_t b = 0;
        for (; b + 4 <= nb; b += 4) {
            uint32_t h[4];
            for (int j = 0; j < 4; j++) memcpy(&h[j], row + (b + j) * bb, 4);
            const __m128i v = _mm_setr_epi32((int)h[0], (int)h[1], (int)h[2], (int)h[3]);
            _mm256_storeu_ps(out + b * 2, _mm256_cvtph_ps(v));
        }
        for (; b < nb; b++) {
            uint32_t h;
            memcpy(&h, row + b * bb, 4);
            _mm_storel_pi((__m64 *)(out + b * 2), _mm_cvtph_ps(_mm_cvtsi32_si128((int)h)));
        }
    }
}

// One tile: rows `rows[0..VNNI256_NR)` × the first `nt` tokens of the scratch group; writes out[i][t].
// `type` and `nt` are constants at every call site (always_inline), so each combination compiles to
// straight-line code with the accumulators in registers.
static inline __attribute__((always_inline)) void
vnni256_tile(const int type, const int nt, const uint8_t *const *rows, const float *dm, const vnni256_scratch *s,
               int64_t nb, float out[][4]) {
    const int q8 = type == CK_Q8_0;
    // Blocks are taken in pairs (b, b + 1) → accumulators (0, 1); a trailing odd block → 0.
    __m128 accm[VNNI256_NR][2];
    for (int i = 0; i < VNNI256_NR; i++) accm[i][0] = accm[i][1] = _mm_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        vnni256_scales(type, dm, s, nb, b, accm, 0);
        vnni256_scales(type, dm, s, nb, b + 1, accm, 1);
    }
    if (b < nb) vnni256_scales(type, dm, s, nb, b, accm, 0);

    __m256 acc[VNNI256_NR][4][2];
    for (int i = 0; i < VNNI256_NR; i++)
        for (int t = 0; t < 4; t++) acc[i][t][0] = acc[i][t][1] = _mm256_setzero_ps();
    for (b = 0; b + 2 <= nb; b += 2) {
        vnni256_block(type, nt, rows, s, b, acc, 0);
        vnni256_block(type, nt, rows, s, b + 1, acc, 1);
    }
    if (b < nb) vnni256_block(type, nt, rows, s, b, acc, 0);

    for (int i = 0; i < VNNI256_NR; i++) {
        float m0[4], m1[4];
        _mm_storeu_ps(m0, accm[i][0]);
        _mm_storeu_ps(m1, accm[i][1]);
        for (int t = 0; t < nt; t++) {
            const float sum = hsum256(_mm256_add_ps(acc[i][t][0], acc[i][t][1]));
            out[i][t] = q8 ? sum : sum + (m0[t] + m1[t]);
        }
    }
}

// Rows [r0, r1) × tokens [0, T): y[t·ldy + r] = w_r · x_t. Returns 0 (the caller falls back to another
// kernel) if its scratch cannot be allocated.
static int matmul_q8_avxvnni(int type, const uint8_t *w, size_t row_bytes, const ck_q8_block *xq, int64_t T, float *y,
                             int64_t ldy, int64_t nb, int64_t r0, int64_t r1) {
    // Rows in chunks that stay in cache while each token group passes over them.
    const int64_t chunk = 64;
    const size_t bb = type == CK_Q8_0 ? 34 : (type == CK_Q4_1 ? 20 : 18);
    const size_t xp_bytes = (size_t)nb * 128, f_count = (size_t)nb * 4 * (2 + VNNI256_NR) + (size_t)nb * 2 * (chunk + VNNI256_NR);
    void *mem = thread_scratch(xp_bytes + f_count * sizeof(float));
    if (!mem) return 0;
    vnni256_scratch s;
    s.xp = (int8_t *)mem;
    s.dx = (float *)((char *)mem + xp_bytes);
    s.sx = s.dx + nb * 4;
    s.sc = s.sx + nb * 4;
    s.dm = s.sc + nb * 4 * VNNI256_NR;
    const __m256i flip = _mm256_set1_epi8(type == CK_Q8_0 ? (char)0x80 : 0);
    float out[VNNI256_NR][4];
    for (int64_t rc = r0; rc < r1; rc += chunk) {
        const int64_t rce = rc + chunk < r1 ? rc + chunk : r1;
        for (int64_t t0 = 0; t0 < T; t0 += 4) {
            const int nt = T - t0 < 4 ? (int)(T - t0) : 4;
            // Gather the group's blocks (missing tokens repeat token t0; their results are dropped).
            for (int64_t b = 0; b < nb; b++)
                for (int t = 0; t < 4; t++) {
                    const ck_q8_block *xb = xq + (t0 + (t < nt ? t : 0)) * nb + b;
                    s.dx[b * 4 + t] = xb->d;
                    s.sx[b * 4 + t] = xb->s;
                    _mm256_store_si256((__m256i *)(s.xp + b * 128 + t * 32),
                                       _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)xb->q), flip));
                }
            for (int64_t r = rc; r < rce; r += VNNI256_NR) {
                // A short last tile repeats the chunk's last row (computed, not stored).
                const uint8_t *rows[VNNI256_NR];
                for (int i = 0; i < VNNI256_NR; i++) {
                    const int64_t ri = r + i < rce ? r + i : rce - 1;
                    rows[i] = w + (size_t)ri * row_bytes;
                    // The first token group converts the tile's scales, for every group to use.
                    if (t0 == 0) vnni256_convert_scales(w, row_bytes, bb, nb, ri, 1, s.dm + (r - rc + i) * nb * 2);
                }
                const float *dm = s.dm + (r - rc) * nb * 2;
                // While the first token group works on this chunk, fetch the next chunk's rows from memory.
                if (t0 == 0 && rce < r1) {
                    const int64_t next = rce + (r - rc), end = next + VNNI256_NR < r1 ? next + VNNI256_NR : r1;
                    const char *p0 = (const char *)(w + (size_t)next * row_bytes), *p1 = (const char *)(w + (size_t)end * row_bytes);
                    for (const char *p = p0; p < p1; p += 64) _mm_prefetch(p, _MM_HINT_T0);
                }
#define VNNI256_TILE(TY)                                                                                \
                switch (nt) {                                                                           \
                case 4: vnni256_tile(TY, 4, rows, dm, &s, nb, out); break;                              \
                case 3: vnni256_tile(TY, 3, rows, dm, &s, nb, out); break;                              \
                case 2: vnni256_tile(TY, 2, rows, dm, &s, nb, out); break;                              \
                default: vnni256_tile(TY, 1, rows, dm, &s, nb, out); break;                             \
                }
                if (type == CK_Q8_0) { VNNI256_TILE(CK_Q8_0) } else if (type == CK_Q4_1) { VNNI256_TILE(CK_Q4_1) } else { VNNI256_TILE(CK_Q4_0) }
#undef VNNI256_TILE
                for (int i = 0; i < VNNI256_NR && r + i < rce; i++)
                    for (int t = 0; t < nt; t++) y[(t0 + t) * ldy + r + i] = out[i][t];
            }
        }
    }
    return 1;
}

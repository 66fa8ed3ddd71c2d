// AVX-512 VNNI version of the register-blocked multi-token product (see matmul_q8_vnni.h for the
// 256-bit one and the numerics). Private to kernels.c, included once inside a target("avx512...")
// region; uses hsum256 from there. Tiles are AVX512_NR rows × up to 4 tokens.
//
// Layout: a 512-bit vector covers a PAIR of blocks (b, b + 1), their int32 partial sums interleaved:
// lane 2j holds block b's partial sum j (elements 4j..4j+3) and lane 2j + 1 block b + 1's. So one
// accumulator per (row, token) holds both float accumulators of the 256-bit kernels, acc0 in the even
// lanes and acc1 in the odd ones, and the scale vector is the pair (d_w·d_x of b, of b + 1) repeated.
// A trailing odd block is paired with nothing and goes to the even lanes only (masked FMA), so every
// lane sees exactly the operations of the 256-bit kernels. Operand bytes are interleaved to match:
// dwords (4 bytes = one partial sum) alternate between the two blocks.

#define AVX512_NR 4  // avx512_tile reduces four accumulators at a time: of a row, or (one token) of the rows

// What a tile reads besides the weights, for one group of (up to) four tokens. Block pairs are padded
// with a zero block where nb is odd; "pairs" = (nb + 1) / 2.
typedef struct {
    float *dx, *sx;  // token scales and sums by pair: [pair][4 tokens][2 blocks]
    float *sc;       // (d_w·d_x of b, of b + 1) for one tile: [pair][AVX512_NR][4 tokens][2 blocks]
    float *d, *m;    // weight scales (and Q4_1 mins) of the current chunk of rows as floats: [row][2·pairs]
    int8_t *xp;      // tokens with interleaved block pairs: [pair][4][64], 64-byte aligned; Q8_0: x + 128
} avx512_scratch;

// Interleaves the dwords of two 32-byte blocks: the 64 bytes dword 2j = a's dword j, 2j + 1 = b's.
static inline __m512i avx512_interleave(__m256i a, __m256i b) {
    // Per 128-bit lane: unpacklo gives dword pairs j = 0, 1 (lane 0) and 4, 5 (lane 1); unpackhi 2, 3 / 6, 7.
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_unpacklo_epi32(a, b)), _mm256_unpackhi_epi32(a, b), 1);
    return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}

// Weights of blocks (b, b + 1) of one row as interleaved operand bytes (`two` = 0: block b alone, the
// other half zero). Q4: nibbles 0..15 (u8); Q8_0: the int8 weights.
static inline __attribute__((always_inline)) __m512i
avx512_weights(const int type, const uint8_t *blk, size_t bb, int two) {
    if (type == CK_Q8_0) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)(blk + 2));
        __m256i w1 = two ? _mm256_loadu_si256((const __m256i *)(blk + bb + 2)) : _mm256_setzero_si256();
        return avx512_interleave(w0, w1);
    }
    const int off = type == CK_Q4_1 ? 4 : 2;
    __m128i n0 = _mm_loadu_si128((const __m128i *)(blk + off));
    __m128i n1 = two ? _mm_loadu_si128((const __m128i *)(blk + bb + off)) : _mm_setzero_si128();
    // Nibble byte j holds elements j (low) and j + 16 (high): dword pairs for partial sums 0..3, then 4..7.
    __m256i l = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi32(n0, n1)), _mm_unpackhi_epi32(n0, n1), 1);
    return _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(l), _mm256_srli_epi16(l, 4), 1), _mm512_set1_epi8(0x0F));
}

// Pass 1 for blocks (b, b + 1) (two = 0: b alone) of tile row i, all four tokens at once, lanes
// (token t, block k) = 2t + k: sc = d_w · d_x and, for Q4, the min terms accm[i] = fma(m, x.s, accm[i]).
static inline __attribute__((always_inline)) void
avx512_scales(const int type, const float *d, const float *m, const avx512_scratch *s, int64_t b, int two,
              __m256 *accm) {
    const int64_t pair = b / 2;
    const __m256 dv = _mm256_castpd_ps(_mm256_broadcast_sd((const double *)(const void *)(d + b)));
    _mm256_storeu_ps(s->sc + pair * AVX512_NR * 8, _mm256_mul_ps(dv, _mm256_loadu_ps(s->dx + pair * 8)));
    if (type != CK_Q8_0) {
        const __m256 mv = type == CK_Q4_1 ? _mm256_castpd_ps(_mm256_broadcast_sd((const double *)(const void *)(m + b)))
                                          : _mm256_mul_ps(_mm256_set1_ps(-8.0f), dv);
        const __m256 sxv = _mm256_loadu_ps(s->sx + pair * 8);
        *accm = two ? _mm256_fmadd_ps(mv, sxv, *accm) : _mm256_mask3_fmadd_ps(mv, sxv, *accm, 0x55);
    }
}

// Pass 2 for blocks (b, b + 1) (two = 0: b alone, even lanes only): acc[i][t] += scales · p.
static inline __attribute__((always_inline)) void
avx512_pair(const int type, const int nt, const uint8_t *const *rows, const avx512_scratch *s, int64_t b, int two,
            __m512 acc[][4]) {
    const size_t bb = type == CK_Q8_0 ? 34 : (type == CK_Q4_1 ? 20 : 18);
    __m512i wq[AVX512_NR], init[AVX512_NR];
    for (int i = 0; i < AVX512_NR; i++) {
        wq[i] = avx512_weights(type, rows[i] + b * bb, bb, two);
        // Q8_0: −128·Σw per lane cancels the +128 offset of the unsigned x operand.
        init[i] = type == CK_Q8_0 ? _mm512_sub_epi32(_mm512_setzero_si512(),
                                                     _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), wq[i]))
                                  : _mm512_setzero_si512();
    }
    const float *sc = s->sc + (b / 2) * AVX512_NR * 8;
    const int8_t *xb = s->xp + (b / 2) * 256;
    for (int t = 0; t < nt; t++) {
        const __m512i xv = _mm512_load_si512((const void *)(xb + t * 64));
        for (int i = 0; i < AVX512_NR; i++) {
            const __m512i p = type == CK_Q8_0 ? _mm512_dpbusd_epi32(init[i], xv, wq[i]) : _mm512_dpbusd_epi32(init[i], wq[i], xv);
            double pair;  // the two floats (scale of b, of b + 1), broadcast as one 64-bit element
            memcpy(&pair, sc + i * 8 + t * 2, 8);
            const __m512 scale = _mm512_castpd_ps(_mm512_set1_pd(pair));
            acc[i][t] = two ? _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(p), acc[i][t])
                            : _mm512_mask3_fmadd_ps(scale, _mm512_cvtepi32_ps(p), acc[i][t], 0x5555);
        }
    }
}

// hsum256(acc0 + acc1) of four accumulators at once, with exactly hsum256's additions:
// ((v0 + v4) + (v1 + v5)) + ((v2 + v6) + (v3 + v7)) where v = acc0 + acc1 (the even plus the odd lanes).
static inline __m128 avx512_reduce4(__m512 z0, __m512 z1, __m512 z2, __m512 z3) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    // v of z0 | v of z1, v of z2 | v of z3.
    const __m512 v01 = _mm512_add_ps(_mm512_permutex2var_ps(z0, even, z1), _mm512_permutex2var_ps(z0, odd, z1));
    const __m512 v23 = _mm512_add_ps(_mm512_permutex2var_ps(z2, even, z3), _mm512_permutex2var_ps(z2, odd, z3));
    // (v0..v3) + (v4..v7) of each, as four 128-bit lanes.
    __m512 l = _mm512_add_ps(_mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(3, 1, 3, 1)));
    l = _mm512_add_ps(l, _mm512_movehdup_ps(l));                                   // lanes 0, 2: l0 + l1, l2 + l3
    l = _mm512_add_ps(l, _mm512_permute_ps(l, _MM_SHUFFLE(2, 2, 2, 2)));           // lane 0: (l0 + l1) + (l2 + l3)
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), l));
}

// One tile: rows `rows[0..AVX512_NR)` × the first `nt` tokens of the group; writes out[i][t].
static inline __attribute__((always_inline)) void
avx512_tile(const int type, const int nt, const uint8_t *const *rows, int64_t row_in_chunk, const avx512_scratch *s,
            int64_t nb, float out[][4]) {
    const int64_t stride = (nb + 1) / 2 * 2;  // of the chunk's d / m arrays
    __m256 accm[AVX512_NR];
    for (int i = 0; i < AVX512_NR; i++) {
        const float *d = s->d + (row_in_chunk + i) * stride, *m = s->m + (row_in_chunk + i) * stride;
        avx512_scratch si = *s;
        si.sc = s->sc + i * 8;
        accm[i] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b += 2) avx512_scales(type, d, m, &si, b, b + 1 < nb, &accm[i]);
    }

    __m512 acc[AVX512_NR][4];
    for (int i = 0; i < AVX512_NR; i++)
        for (int t = 0; t < 4; t++) acc[i][t] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) avx512_pair(type, nt, rows, s, b, 1, acc);
    if (b < nb) avx512_pair(type, nt, rows, s, b, 0, acc);  // a trailing odd block

    if (nt == 1) {  // one token: reduce the four rows together instead
        __m128 r = avx512_reduce4(acc[0][0], acc[1][0], acc[2][0], acc[3][0]);
        if (type != CK_Q8_0) {
            float m[AVX512_NR];  // accm0 + accm1 of each row: lanes 0 + 1
            for (int i = 0; i < AVX512_NR; i++) {
                const __m128 a = _mm256_castps256_ps128(accm[i]);
                m[i] = _mm_cvtss_f32(_mm_add_ss(a, _mm_movehdup_ps(a)));
            }
            r = _mm_add_ps(r, _mm_loadu_ps(m));
        }
        float v[4];
        _mm_storeu_ps(v, r);
        for (int i = 0; i < AVX512_NR; i++) out[i][0] = v[i];
        return;
    }
    for (int i = 0; i < AVX512_NR; i++) {
        __m128 r = avx512_reduce4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
        if (type != CK_Q8_0) {
            // + (accm0 + accm1) per token: lanes 2t + 2t + 1, then the even lanes.
            const __m256 m = _mm256_add_ps(accm[i], _mm256_permute_ps(accm[i], 0xB1));
            r = _mm_add_ps(r, _mm256_castps256_ps128(_mm256_permutevar8x32_ps(m, _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0))));
        }
        _mm_storeu_ps(out[i], r);
    }
}

// Converts the f16 scale (and Q4_1 min) of every block of rows [r, r + count) to floats: d[row][b],
// m[row][b] (row stride `stride`; m is garbage for Q4_0 / Q8_0, whose blocks hold other data there).
// Entries from nb to the stride are zero. One 64-byte load spans the headers of four Q4 blocks (two
// Q8_0 blocks); a word permute collects them for one F16C conversion.
static void avx512_convert_scales(int type, const uint8_t *w, size_t row_bytes, int64_t nb, int64_t stride, int64_t r,
                                  int64_t count, float *d, float *m) {
    const size_t bb = type == CK_Q8_0 ? 34 : (type == CK_Q4_1 ? 20 : 18);
    const int g = type == CK_Q8_0 ? 2 : 4;  // blocks per load
    // Word index of block k's scale (and the next word) within the load; lanes past g repeat.
    const int wd = (int)bb / 2;
    const __m512i idx = _mm512_setr_epi32(0 | 1 << 16, wd | (wd + 1) << 16, 2 * wd % 32 | (2 * wd % 32 + 1) << 16,
                                          3 * wd % 32 | (3 * wd % 32 + 1) << 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *row = w + (size_t)(r + i) * row_bytes;
        float *di = d + i * stride, *mi = m + i * stride;
        int64_t b = 0;
        // The g blocks from b span at least 64 bytes, so the load stays within the row.
        for (; b + g <= nb; b += g) {
            const __m512i words = _mm512_permutexvar_epi16(idx, _mm512_loadu_si512((const void *)(row + b * bb)));
            const __m256 v = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm512_castsi512_si128(words)), split);
            if (g == 4) {
                _mm_storeu_ps(di + b, _mm256_castps256_ps128(v));
                _mm_storeu_ps(mi + b, _mm256_extractf128_ps(v, 1));
            } else {
                _mm_storel_pi((__m64 *)(di + b), _mm256_castps256_ps128(v));
                _mm_storel_pi((__m64 *)(mi + b), _mm256_extractf128_ps(v, 1));
            }
        }
        for (; b < nb; b++) {
            uint32_t h;
            memcpy(&h, row + b * bb, 4);
            const __m128 v = _mm_cvtph_ps(_mm_cvtsi32_si128((int)h));
            di[b] = _mm_cvtss_f32(v);
            mi[b] = _mm_cvtss_f32(_mm_movehdup_ps(v));
        }
        for (; b < stride; b++) di[b] = mi[b] = 0;
    }
}

// Rows [r0, r1) × tokens [0, T): y[t·ldy + r] = w_r · x_t. With a `list`, output row r is weight row
// list[r] (listed rows: a sparse product over the active neurons). Returns 0 (the caller falls back to
// another kernel) if its scratch cannot be allocated.
static int matmul_q8_avx512(int type, const uint8_t *w, size_t row_bytes, const ck_q8_block *xq, int64_t T, float *y,
                            int64_t ldy, int64_t nb, int64_t r0, int64_t r1, const int32_t *list) {
    // Rows in chunks that stay in cache while each token group passes over them.
    const int64_t chunk = 64;
    const int64_t pairs = (nb + 1) / 2, stride = pairs * 2, groups = (T + 3) / 4;
    const size_t xp_bytes = (size_t)(groups * pairs) * 256;
    const size_t f_count = (size_t)(groups * pairs) * 16 + (size_t)pairs * AVX512_NR * 8 + (size_t)stride * 2 * (chunk + AVX512_NR);
    void *mem = thread_scratch(xp_bytes + f_count * sizeof(float));
    if (!mem) return 0;
    int8_t *xp = (int8_t *)mem;                              // [group][pair][4][64]
    float *dx = (float *)((char *)mem + xp_bytes);           // [group][pair][4][2]
    float *sx = dx + groups * pairs * 8;                     // [group][pair][4][2]
    float *sc = sx + groups * pairs * 8;
    float *d = sc + pairs * AVX512_NR * 8, *m = d + stride * (chunk + AVX512_NR);

    // The tokens in groups of four (missing tokens of the last group repeat its first; results dropped).
    const __m256i flip = _mm256_set1_epi8(type == CK_Q8_0 ? (char)0x80 : 0);
    for (int64_t g = 0; g < groups; g++) {
        const int64_t t0 = g * 4;
        for (int t = 0; t < 4; t++) {
            const ck_q8_block *xt = xq + (t0 + (t0 + t < T ? t : 0)) * nb;
            float *dxg = dx + g * pairs * 8, *sxg = sx + g * pairs * 8;
            for (int64_t b = 0; b < stride; b++) {
                dxg[(b / 2) * 8 + t * 2 + (b & 1)] = b < nb ? xt[b].d : 0;
                sxg[(b / 2) * 8 + t * 2 + (b & 1)] = b < nb ? xt[b].s : 0;
            }
            for (int64_t b = 0; b < nb; b += 2) {
                __m256i x0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)xt[b].q), flip);
                __m256i x1 = b + 1 < nb ? _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)xt[b + 1].q), flip)
                                        : _mm256_setzero_si256();
                _mm512_store_si512((void *)(xp + (g * pairs + b / 2) * 256 + t * 64), avx512_interleave(x0, x1));
            }
        }
    }

    float out[AVX512_NR][4];
    for (int64_t rc = r0; rc < r1; rc += chunk) {
        const int64_t rce = rc + chunk < r1 ? rc + chunk : r1;
        for (int64_t g = 0; g < groups; g++) {
            const int64_t t0 = g * 4;
            const int nt = T - t0 < 4 ? (int)(T - t0) : 4;
            const avx512_scratch s = {dx + g * pairs * 8, sx + g * pairs * 8, sc, d, m, xp + g * pairs * 256};
            for (int64_t r = rc; r < rce; r += AVX512_NR) {
                // A short last tile repeats the chunk's last row (computed, not stored).
                const uint8_t *rows[AVX512_NR];
                for (int i = 0; i < AVX512_NR; i++) {
                    const int64_t at = r + i < rce ? r + i : rce - 1, ri = list ? list[at] : at;
                    rows[i] = w + (size_t)ri * row_bytes;
                    // The first token group converts the tile's scales, for every group to use.
                    if (g == 0) avx512_convert_scales(type, w, row_bytes, nb, stride, ri, 1, d + (r - rc + i) * stride, m + (r - rc + i) * stride);
                }
                // While the first token group works on this chunk, fetch the next chunk's rows from memory,
                // a tile's share at a time (few tokens are compute-light enough to wait on memory otherwise).
                if (g == 0 && rce < r1) {
                    const int64_t next = rce + (r - rc), end = next + AVX512_NR < r1 ? next + AVX512_NR : r1;
                    if (list) {
                        for (int64_t q = next; q < end; q++) prefetch_row(w + (size_t)list[q] * row_bytes, row_bytes);
                    } else {
                        const char *p0 = (const char *)(w + (size_t)next * row_bytes), *p1 = (const char *)(w + (size_t)end * row_bytes);
                        for (const char *p = p0; p < p1; p += 64) _mm_prefetch(p, _MM_HINT_T0);
                    }
                }
#define AVX512_TILE(TY)                                                                                 \
                switch (nt) {                                                                           \
                case 4: avx512_tile(TY, 4, rows, r - rc, &s, nb, out); break;                           \
                case 3: avx512_tile(TY, 3, rows, r - rc, &s, nb, out); break;                           \
                case 2: avx512_tile(TY, 2, rows, r - rc, &s, nb, out); break;                           \
                default: avx512_tile(TY, 1, rows, r - rc, &s, nb, out); break;                          \
                }
                if (type == CK_Q8_0) { AVX512_TILE(CK_Q8_0) } else if (type == CK_Q4_1) { AVX512_TILE(CK_Q4_1) } else { AVX512_TILE(CK_Q4_0) }
#undef AVX512_TILE
                for (int i = 0; i < AVX512_NR && r + i < rce; i++)
                    for (int t = 0; t < nt; t++) y[(t0 + t) * ldy + r + i] = out[i][t];
            }
        }
    }
    return 1;
}

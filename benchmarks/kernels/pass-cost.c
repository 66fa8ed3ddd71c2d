// What a T-token dense pass costs against a one-token step, on the engine's own product kernel alone:
// SmolLM2-135M's products (30 layers of q, k, v, o, gate, up, down in Q4_1, then the 49,152-row Q8_0
// head), fast numerics, T = 1..4 tokens, one thread.
// Three weight sets: "resident", one layer's weights used by all 30 layers (2.2 MB: the products run on
// cached weights, so the time is the kernel's instructions); "model", 30 distinct layers and a head (the
// model's bytes, as a decode step reads them); "8 models", eight such copies, a repetition reading the
// copy after the previous one's (770 MB, more than any cache holds: the weights come from memory, as a
// model larger than the cache would). Best of 16 repetitions. Random weights and inputs.
#include "ckernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { H = 576, KV = 192, D = 1536, L = 30, V = 49152, TMAX = 4 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// Random blocks with small positive f16 scales (and Q4_1 mins), so the sums stay finite.
static uint8_t *random_rows(size_t rows, size_t cols, int type) {
    const size_t bb = type == CK_Q8_0 ? 34 : 20, nb = cols / 32, bytes = rows * nb * bb;
    uint8_t *w = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)rand();
    for (size_t b = 0; b < rows * nb; b++) {
        const uint16_t d = 0x2000 | (rand() & 0x3ff), m = 0xa000 | (rand() & 0x3ff);
        memcpy(w + b * bb, &d, 2);
        if (type == CK_Q4_1) memcpy(w + b * bb + 2, &m, 2);
    }
    return w;
}

typedef struct { const uint8_t *w; int type; size_t row_bytes; int64_t rows, cols; } product;

int main(void) {
    static const int64_t shape[7][2] = {{H, H}, {KV, H}, {KV, H}, {H, H}, {D, H}, {D, H}, {H, D}};
    enum { COPIES = 8 };
    static product layers[COPIES][L][7], head[COPIES];
    uint8_t *one[7];
    for (int k = 0; k < 7; k++) one[k] = random_rows(shape[k][0], shape[k][1], CK_Q4_1);
    float *x = malloc(sizeof(float) * TMAX * D), *y = malloc(sizeof(float) * TMAX * V);
    ck_q8_block *xq = malloc(sizeof(ck_q8_block) * TMAX * D / 32);
    for (int i = 0; i < TMAX * D; i++) x[i] = (rand() % 2001 - 1000) / 1000.0f;
    for (int c = 0; c < COPIES; c++) {
        head[c] = (product){random_rows(V, H, CK_Q8_0), CK_Q8_0, H / 32 * 34, V, H};
        for (int l = 0; l < L; l++)
            for (int k = 0; k < 7; k++)
                layers[c][l][k] = (product){random_rows(shape[k][0], shape[k][1], CK_Q4_1), CK_Q4_1, shape[k][1] / 32 * 20,
                                            shape[k][0], shape[k][1]};
    }
    printf("%-9s %10s %10s %10s %10s   %s\n", "weights", "T=1 ms", "T=2", "T=3", "T=4", "T=2..4 / T=1");
    const char *names[3] = {"resident", "model", "8 models"};
    for (int set = 0; set < 3; set++) {
        {
            double best[TMAX + 1];
            for (int T = 1; T <= TMAX; T++) {
                best[T] = 1e9;
                for (int rep = 0; rep < 16; rep++) {
                    const int c = set == 2 ? rep % COPIES : 0;
                    const double t0 = now();
                    for (int l = 0; l <= L; l++) {
                        const int count = l < L ? 7 : 1;
                        for (int k = 0; k < count; k++) {
                            product p = l < L ? layers[c][l][k] : head[c];
                            if (set == 0 && l < L) p.w = one[k];
                            ck_quantize_q8(x, p.cols * T, xq);
                            ck_matmul_q8(p.type, p.w, p.row_bytes, xq, T, y, p.rows, p.cols, 0, p.rows);
                        }
                    }
                    const double dt = now() - t0;
                    if (dt < best[T]) best[T] = dt;
                }
            }
            printf("%-9s %10.3f %10.3f %10.3f %10.3f   %.2f %.2f %.2f\n", names[set], best[1] * 1e3, best[2] * 1e3,
                   best[3] * 1e3, best[4] * 1e3, best[2] / best[1], best[3] / best[1], best[4] / best[1]);
        }
    }
    return 0;
}

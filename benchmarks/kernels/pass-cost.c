// What a T-token dense pass costs against a one-token step, on the engine's own product kernel alone:
// SmolLM2-135M's products (30 layers of q, k, v, o, gate, up, down in Q4_1, then the 49,152-row Q8_0
// head), fast numerics, T = 1..4 tokens, one thread.
// Three weight sets: "resident", one layer's weights used by all 30 layers (2.2 MB: the products run on
// cached weights, so the time is the kernel's instructions); "model", 30 distinct layers and a head (the
// model's bytes, as a decode step reads them); "8 models", eight such copies, a repetition reading the
// copy after the previous one's (770 MB, more than any cache holds: the weights come from memory, as a
// model larger than the cache would). Best of 16 repetitions. Random weights and inputs.
#include "bench-weights.h"
#include <stdio.h>

enum { H = 576, KV = 192, D = 1536, L = 30, V = 49152, TMAX = 4, COPIES = 8 };

typedef struct { const uint8_t *w; int type; size_t row_bytes; int64_t rows, cols; } product;

int main(void) {
    static const int64_t shape[7][2] = {{H, H}, {KV, H}, {KV, H}, {H, H}, {D, H}, {D, H}, {H, D}};
    static product layers[COPIES][L][7], head[COPIES];
    float *x = malloc(sizeof(float) * TMAX * D), *y = malloc(sizeof(float) * TMAX * V);
    ck_q8_block *xq = malloc(sizeof(ck_q8_block) * TMAX * D / 32);
    for (int i = 0; i < TMAX * D; i++) x[i] = (rand() % 2001 - 1000) / 1000.0f;
    for (int c = 0; c < COPIES; c++) {
        head[c] = (product){bench_random_rows(V, H, CK_Q8_0), CK_Q8_0, H / 32 * 34, V, H};
        for (int l = 0; l < L; l++)
            for (int k = 0; k < 7; k++)
                layers[c][l][k] = (product){bench_random_rows(shape[k][0], shape[k][1], CK_Q4_1), CK_Q4_1, shape[k][1] / 32 * 20,
                                            shape[k][0], shape[k][1]};
    }
    printf("%-9s %10s %10s %10s %10s   %s\n", "weights", "T=1 ms", "T=2", "T=3", "T=4", "T=2..4 / T=1");
    const char *names[3] = {"resident", "model", "8 models"};
    for (int set = 0; set < 3; set++) {
        double best[TMAX + 1];
        for (int T = 1; T <= TMAX; T++) {
            best[T] = 1e9;
            for (int rep = 0; rep < 16; rep++) {
                const int c = set == 2 ? rep % COPIES : 0;
                const double t0 = bench_now();
                for (int l = 0; l < L; l++)
                    for (int k = 0; k < 7; k++) {
                        // "resident": the first layer's weights for every layer.
                        const product *p = &layers[c][set == 0 ? 0 : l][k];
                        ck_quantize_q8(x, p->cols * T, xq);
                        ck_matmul_q8(p->type, p->w, p->row_bytes, xq, T, y, p->rows, p->cols, 0, p->rows);
                    }
                ck_quantize_q8(x, H * T, xq);
                ck_matmul_q8(head[c].type, head[c].w, head[c].row_bytes, xq, T, y, V, H, 0, V);
                const double dt = bench_now() - t0;
                if (dt < best[T]) best[T] = dt;
            }
        }
        printf("%-9s %10.3f %10.3f %10.3f %10.3f   %.2f %.2f %.2f\n", names[set], best[1] * 1e3, best[2] * 1e3,
               best[3] * 1e3, best[4] * 1e3, best[2] / best[1], best[3] / best[1], best[4] / best[1]);
    }
    return 0;
}

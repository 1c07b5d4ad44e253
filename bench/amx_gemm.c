/*
 * amx_gemm.c: `matmulDtype: "bf16"`'s products alone (lk_gemm_bf16, Intel AMX) beside OpenBLAS's
 * sgemm on the same shapes and threads, alternated, best of 7 each: a SmolLM2-135M LoRA step's
 * products against the frozen weights (4 × 256 = 1,024 rows):
 *
 *   q/o forward    1024 × 576 × 576     x·Wᵀ
 *   up forward     1024 × 1536 × 576    x·Wᵀ (gate the same)
 *   down forward   1024 × 576 × 1536    x·Wᵀ
 *   up dX          1024 × 576 × 1536    dy·W
 *   head forward   256 × 49152 × 576    x·Wᵀ (the loss works on 256 rows at a time)
 *   head dX        256 × 576 × 49152    dy·W (the depth in passes of at most 1,024)
 *
 * Weights are bf16 for lk_gemm_bf16 (as SmolLM2 is held) and fp32 for sgemm. Before timing, each
 * shape's product is checked against a double-precision sum of the bf16-rounded operands on
 * sampled elements (within 1e-5 of Σ|terms|). Prints GFLOP/s and the ratio.
 *
 * Build and run (from the repository root; needs a CPU with AMX-BF16):
 *   gcc -O3 -march=native -I Sources/CKernels/include bench/amx_gemm.c Sources/CKernels/amx.c \
 *       Sources/CKernels/pool.c -lopenblas -lpthread -lm -o /tmp/amx_gemm && /tmp/amx_gemm 2
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "CKernels.h"

void openblas_set_num_threads(int);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static unsigned short bf16(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static double wide(unsigned short h) {
    unsigned u = (unsigned)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static unsigned long long state = 88172645463325252ull;
static float uniform(void) {  // xorshift64: [-1, 1)
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return (float)((state >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}

typedef struct { const char *name; long m, n, k; int transposed; } Shape;

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (!lk_amx_available()) { printf("no AMX-BF16 on this machine (or LORAMD_NO_AMX is set)\n"); return 1; }
    openblas_set_num_threads(threads);
    Shape shapes[] = { {"q/o forward", 1024, 576, 576, 1}, {"up forward", 1024, 1536, 576, 1},
                       {"down forward", 1024, 576, 1536, 1}, {"up dX", 1024, 576, 1536, 0},
                       {"head forward", 256, 49152, 576, 1}, {"head dX", 256, 576, 49152, 0} };
    printf("%d threads; GFLOP/s, best of 7 alternated rounds\n%-14s %24s %10s %10s %7s\n", threads, "product", "m x n x k",
           "sgemm", "amx bf16", "ratio");
    int failed = 0;
    for (int s = 0; s < 6; s++) {
        Shape h = shapes[s];
        long wr = h.transposed ? h.n : h.k, wc = h.transposed ? h.k : h.n;  // w is (n, k) or (k, n)
        float *a = malloc(sizeof(float) * h.m * h.k), *c = malloc(sizeof(float) * h.m * h.n);
        float *w32 = malloc(sizeof(float) * wr * wc);
        unsigned short *w16 = malloc(2 * wr * wc);
        for (long i = 0; i < h.m * h.k; i++) a[i] = uniform();
        for (long i = 0; i < wr * wc; i++) { w16[i] = bf16(uniform()); w32[i] = (float)wide(w16[i]); }
        lk_gemm_bf16(a, h.k, h.m, h.k, w16, 1, wc, h.transposed, h.n, c, h.n, 0, threads);
        for (int t = 0; t < 200; t++) {  // sampled elements against the rounded operands' exact sum
            long i = (long)((uniform() + 1) / 2 * h.m) % h.m, j = (long)((uniform() + 1) / 2 * h.n) % h.n;
            double sum = 0, size = 0;
            for (long e = 0; e < h.k; e++) {
                double term = wide(bf16(a[i * h.k + e])) * wide(w16[h.transposed ? j * h.k + e : e * h.n + j]);
                sum += term;
                size += fabs(term);
            }
            if (fabs(c[i * h.n + j] - sum) > 1e-5 * size) { failed++; break; }
        }
        double best32 = 1e9, best16 = 1e9;
        for (int r = 0; r < 7; r++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, h.transposed ? CblasTrans : CblasNoTrans, (int)h.m, (int)h.n, (int)h.k,
                        1, a, (int)h.k, w32, (int)wc, 0, c, (int)h.n);
            double t1 = now();
            lk_gemm_bf16(a, h.k, h.m, h.k, w16, 1, wc, h.transposed, h.n, c, h.n, 0, threads);
            double t2 = now();
            if (t1 - t0 < best32) best32 = t1 - t0;
            if (t2 - t1 < best16) best16 = t2 - t1;
        }
        double flop = 2.0 * h.m * h.n * h.k;
        char dims[32];
        snprintf(dims, sizeof dims, "%ld x %ld x %ld", h.m, h.n, h.k);
        printf("%-14s %24s %10.0f %10.0f %6.2fx\n", h.name, dims, flop / best32 / 1e9, flop / best16 / 1e9, best32 / best16);
        free(a); free(c); free(w32); free(w16);
    }
    printf(failed ? "%d shapes FAILED the check against the rounded operands\n" : "every shape matched the rounded operands' sums\n", failed);
    return failed != 0;
}

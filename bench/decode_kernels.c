/*
 * decode_kernels.c: decode's one-row products alone, against the bytes they read. SmolLM2-135M's
 * 211 weight matrices (30 layers of q, k, v, o, gate, up, down, and the 49152 x 576 head) in
 * distinct buffers, one token's y = W·x over all of them, split by rows over 2 threads (a spinning
 * worker, as loramd's pool), best of 15 passes, two rounds:
 *
 *   sum       a streaming float sum over the same bf16 bytes, per matrix as the products read them
 *   bf16      lk_gemv16 (the AVX-512 kernel where the CPU has it)
 *   fp32      lk_gemv32 over an fp32 copy (twice the bytes)
 *   openblas  cblas_sgemv over the fp32 copy with OpenBLAS's own 2 threads (measured first,
 *             before the spinning worker exists)
 *   nf4       lk_gemv_nf4 over the layers (block 64, double-quantized absmax; the head left out),
 *             and on one 1536 x 576 matrix in cache on one thread (G elements/s: NF4 is bound by
 *             its arithmetic, not its bytes)
 *
 * Build and run (from the repository root):
 *   gcc -O3 -march=native -I Sources/CKernels/include bench/decode_kernels.c Sources/CKernels/kernels.c \
 *       Sources/CKernels/avx512.c -lopenblas -lpthread -lm -o /tmp/decode_kernels && /tmp/decode_kernels
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "CKernels.h"

void openblas_set_num_threads(int);

#define LAYERS 30
#define MATS (LAYERS * 7 + 1)

typedef struct { long n, k; unsigned short *b; float *f; unsigned char *q, *index; float *scales; } Matrix;
static Matrix mats[MATS];
static float x[2048], y[49152], nf4code[16], nf4map[256];
static atomic_int generation, finished;
static int mode;
static double sink;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

typedef float v16f __attribute__((vector_size(64)));

static void half(int t) {
    for (int i = 0; i < MATS; i++) {
        Matrix *m = &mats[i];
        long r0 = m->n * t / 2, r1 = m->n * (t + 1) / 2;
        if (mode == 0) {
            const v16f *v = (const v16f *)(m->b + r0 * m->k);
            v16f a = {0}, b = {0};
            for (long j = 0; j + 2 <= (r1 - r0) * m->k / 32; j += 2) { a += v[j]; b += v[j + 1]; }
            sink += a[0] + b[0];
        } else if (mode == 1) lk_gemv16(m->b, 1, x, y, m->k, r0, r1, 0);
        else if (mode == 2) lk_gemv32(m->f, x, y, m->k, r0, r1, 0);
        else if (m->q) lk_gemv_nf4(m->q, nf4code, 64, NULL, m->index, nf4map, m->scales, 0.01f, x, y, m->k, r0, r1, 0);
    }
}

static void *worker(void *unused) {
    (void)unused;
    for (int seen = 0;;) {
        while (atomic_load(&generation) == seen) {}
        seen = atomic_load(&generation);
        if (seen < 0) return NULL;
        half(1);
        atomic_fetch_add(&finished, 1);
    }
}

static double best_pass(int which) {
    double best = 1e9;
    for (int r = 0; r < 15; r++) {
        double t0 = now();
        if (which == 3) {
            for (int i = 0; i < MATS; i++)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, mats[i].n, mats[i].k, 1, mats[i].f, mats[i].k, x, 1, 0, y, 1);
        } else {
            mode = which == 4 ? 3 : which;
            atomic_store(&finished, 0);
            atomic_fetch_add(&generation, 1);
            half(0);
            while (atomic_load(&finished) < 1) {}
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

static void report(int round, const char *name, double t, double bytes) {
    printf("round %d  %-8s %7.2f ms/token  %5.1f GB/s  (%.0f MB)\n", round + 1, name, t * 1e3, bytes / t / 1e9, bytes / 1e6);
}

int main(void) {
    const long shapes[7][2] = {{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}};
    double bf16Bytes = 0, nf4Bytes = 0;
    for (int i = 0; i < 16; i++) nf4code[i] = i / 8.0f - 1;
    for (int i = 0; i < 256; i++) nf4map[i] = i / 256.0f;
    for (int i = 0; i < 2048; i++) x[i] = 0.001f * (i % 97);
    for (int i = 0; i < MATS; i++) {
        Matrix *m = &mats[i];
        int layer = i < LAYERS * 7;
        m->n = layer ? shapes[i % 7][0] : 49152;
        m->k = layer ? shapes[i % 7][1] : 576;
        long e = m->n * m->k;
        m->b = aligned_alloc(64, e * 2);
        m->f = aligned_alloc(64, e * 4);
        for (long j = 0; j < e; j++) { m->b[j] = 0x3f80 + (j & 7); m->f[j] = 1 + (j & 7) / 128.0f; }
        bf16Bytes += e * 2;
        if (layer) {
            m->q = malloc(e / 2); m->index = malloc(e / 64); m->scales = malloc((e / 64 / 256 + 1) * 4);
            for (long j = 0; j < e / 2; j++) m->q[j] = (unsigned char)(j * 7);
            for (long j = 0; j < e / 64; j++) m->index[j] = (unsigned char)j;
            for (long j = 0; j <= e / 64 / 256; j++) m->scales[j] = 1;
            nf4Bytes += e / 2 + e / 64;
        }
    }
    const char *names[] = {"sum", "bf16", "fp32", "openblas", "nf4"};
    // OpenBLAS first, before the spinning worker exists: it would take a core from OpenBLAS's threads.
    openblas_set_num_threads(2);
    for (int round = 0; round < 2; round++) report(round, names[3], best_pass(3), 2 * bf16Bytes);
    pthread_t thread;
    pthread_create(&thread, NULL, worker, NULL);
    for (int round = 0; round < 2; round++) {
        report(round, names[0], best_pass(0), bf16Bytes);
        report(round, names[1], best_pass(1), bf16Bytes);
        report(round, names[2], best_pass(2), 2 * bf16Bytes);
        report(round, names[4], best_pass(4), nf4Bytes);
    }
    Matrix *m = &mats[4];
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        for (int it = 0; it < 500; it++) lk_gemv_nf4(m->q, nf4code, 64, NULL, m->index, nf4map, m->scales, 0.01f, x, y, m->k, 0, m->n, 0);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("nf4 in cache, 1 thread, 1536 x 576: %.1f G elements/s\n", 500.0 * m->n * m->k / best / 1e9);
    printf("(checksum %g)\n", sink + y[0]);
    return 0;
}
